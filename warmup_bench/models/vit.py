"""Vision Transformer for 28x28 digits: 7x7 patches (16 tokens + CLS), 16 pre-LayerNorm
blocks of width 96 with 4 heads and a 384-wide GELU MLP, dropout 0.1; 1,797,130 params."""

from __future__ import annotations

import torch
from torch import nn

from .dropout import Dropout, attention


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, self.dropout, self.training)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio), nn.GELU(), Dropout(dropout),
            nn.Linear(dim * mlp_ratio, dim), Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT for 28x28 images: 7x7 patches, 16 pre-LN blocks of width 96, 4 heads."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 patch: int = 7, dim: int = 96, depth: int = 16, heads: int = 4,
                 mlp_ratio: int = 4, dropout: float = 0.1):
        super().__init__()
        tokens = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.pos_drop = Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, dropout)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            # the reference's nn.MultiheadAttention keeps its fused q/k/v projection (a bare
            # Parameter, which its init loop skips) at PyTorch's xavier_uniform, bias 0
            nn.init.xavier_uniform_(block.attn.qkv.weight)
            nn.init.zeros_(block.attn.qkv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
        # x.shape[0], not len(x): it stays symbolic, so ONNX export keeps a dynamic batch
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(self.pos_drop(x + self.pos_embed))
        return self.head(self.norm(x[:, 0]))
