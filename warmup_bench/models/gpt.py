"""A decoder-only Transformer language model (GPT-2's shapes) in the block forms warmup
research compares: Pre-LN (LayerNorm inside each residual branch, plus a final one; GPT-2)
and Post-LN (LayerNorm after each residual add; the original Transformer, which Xiong et
al. 2020 show needs warmup), with optional qk-layernorm (Wortsman et al. 2023).

Tied input/output embeddings, learned positions, a GELU MLP of 4x width, biases in the
linear and LayerNorm layers or none (`bias=False`, nanoGPT's default). Initialised as
GPT-2: normal(0, 0.02) weights, zero biases, and the residual projections scaled by
1/sqrt(2 * layers).
Attention is torch's SDPA, causal (its math kernel where double backward is needed: the
sharpness probe selects it); dropout, when on, takes the tool's own mask path."""

from __future__ import annotations

import math

import torch
from torch import nn

from .dropout import Dropout, attention

NORMS = ("pre", "post")
NORM_LABELS = {"pre": "Pre-LN", "post": "Post-LN"}  # as tables write them


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, qk_norm: bool, bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.dropout = dropout
        head = width // heads
        self.q_norm = nn.LayerNorm(head, bias=bias) if qk_norm else None
        self.k_norm = nn.LayerNorm(head, bias=bias) if qk_norm else None

    def heads_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of input x (B, T, width), each (B, heads, T, head width)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads_of(x)
        out = attention(q, k, v, self.dropout, self.training, causal=True)
        return self.proj(out.transpose(1, 2).reshape(x.shape))

    def logit_stats(self, x: torch.Tensor) -> torch.Tensor:
        """The largest and the root-mean-square causal attention logit q.k / sqrt(d) over
        input x: the signal of attention-logit growth (Wortsman et al.)."""
        q, k, _ = self.heads_of(x)
        logits = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])
        t = logits.shape[-1]
        seen = logits[..., torch.ones(t, t, dtype=torch.bool, device=x.device).tril()]
        return torch.stack([seen.amax(), seen.square().mean().sqrt()])


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, norm: str, qk_norm: bool,
                 bias: bool):
        super().__init__()
        self.pre = norm == "pre"
        self.norm1 = nn.LayerNorm(width, bias=bias)
        self.attn = CausalSelfAttention(width, heads, dropout, qk_norm, bias)
        self.norm2 = nn.LayerNorm(width, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width, bias=bias), nn.GELU(),
                                 nn.Linear(4 * width, width, bias=bias))
        self.drop1, self.drop2 = Dropout(dropout), Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.drop1(self.attn(self.norm1(x)))
            return x + self.drop2(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x)))
        return self.norm2(x + self.drop2(self.mlp(x)))


class GPT(nn.Module):
    """Decoder-only Transformer LM: token indices (B, T) -> next-token logits (B, T, V)."""

    def __init__(self, num_classes: int, in_channels: int = 1, *, layers: int = 4,
                 heads: int = 4, width: int = 128, context: int = 64, norm: str = "pre",
                 qk_norm: bool = False, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of heads {heads}")
        self.context = context
        self.token_embed = nn.Embedding(num_classes, width)
        self.pos_embed = nn.Embedding(context, width)
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, dropout, norm, qk_norm, bias)
                                    for _ in range(layers))
        # Post-LN ends every block normalised: a final norm is Pre-LN's alone
        self.norm = nn.LayerNorm(width, bias=bias) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(width, num_classes, bias=False)
        self.head.weight = self.token_embed.weight  # tied
        self.apply(_init)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[-1]
        if t > self.context:
            raise ValueError(f"{t} tokens exceed the model's context of {self.context}")
        positions = torch.arange(t, device=tokens.device)
        x = self.drop(self.token_embed(tokens) + self.pos_embed(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
