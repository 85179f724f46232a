"""CPU speed of warmup-bench's training loop against a plain PyTorch baseline that feeds
data the way the reference scripts do, per workload, measured side by side.

The baseline (written here, after the references' recipes): a torch Dataset that turns one
uint8 image at a time into a normalised float tensor (CIFAR: zero-pad 4, random 32x32
crop, random flip, per image), a DataLoader with 0 workers, the model contiguous in
float32 with its forward as the references write it (out-of-place ReLUs, each before its
max-pool; the ViT built on nn.MultiheadAttention), AdamW + the warmup protocol + the
recipe's scheduler, `loss.item()` every step; then an evaluation pass the same way.
warmup-bench: `train()` on the same synthetic data, with its defaults for the device
(diagnostics included).

  python scripts/bench_cpu.py                          # every workload, 3 alternating repeats
  python scripts/bench_cpu.py --workloads vit --repeats 5 --threads 2
  python scripts/bench_cpu.py --variants ours,contiguous,compile   # other levers

Each repeat runs the baseline and ours for one epoch of --samples training images (plus
--eval-samples test images), alternating so that drifts of the machine's speed hit both
alike; the table gives medians and the speed-ups (baseline seconds / ours). Synthetic data
of each data set's shape: no data set is needed. Prints measurements only. Variants of
ours: `no-diagnostics` (the per-step probes off: the baseline computes none), `amp`
(bf16 autocast, where the CPU has it natively), `contiguous` (conv nets without
channels_last), `unfused` (the multi-tensor optimizer step instead of the fused one),
`compile` (torch.compile, its compilation inside the epoch).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import synthetic  # noqa: E402  (a sibling script)

from warmup_bench.models import build_model  # noqa: E402
from warmup_bench.tasks import resolve_config  # noqa: E402
from warmup_bench.train import RunOptions, device_name, train  # noqa: E402
from warmup_bench.warmup import NoWarmup, UntunedLinearWarmup  # noqa: E402

WORKLOADS = {"resnet20": "cifar10-resnet20", "emnist-cnn": "emnist-cnn", "vit": "mnist-vit"}


# ---- the baseline: the references' way of feeding data and stepping -------------------


class PerImage(torch.utils.data.Dataset):
    """One image at a time, the way torchvision's data sets and transforms do it: a PIL
    image from the stored array; for CIFAR, pad by 4 (black), a random 32x32 crop and a
    random horizontal flip on the PIL image; then to a float tensor / 255 (ToTensor) and
    normalised (Normalize)."""

    def __init__(self, images, labels, mean, std, crop_flip: bool):
        self.images = images.permute(0, 2, 3, 1).numpy()  # stored HWC, as torchvision's
        self.labels, self.crop_flip, self.mean, self.std = labels.numpy(), crop_flip, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        array = self.images[index]
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        if self.crop_flip:
            padded = ImageOps.expand(image, border=4, fill=0)
            top, left = (int(v) for v in torch.randint(0, 9, (2,)))
            image = padded.crop((left, top, left + 32, top + 32))
            if torch.rand(1) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(image, np.uint8, copy=True))
        x = pixels.view(image.size[1], image.size[0], -1).permute(2, 0, 1).contiguous()
        x = x.float().div(255)
        mean = torch.as_tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return x.sub_(mean).div_(std), int(self.labels[index])


class ReferenceBlock(nn.Module):
    """The write-up's pre-LN block, built on nn.MultiheadAttention."""

    def __init__(self, dim: int = 96, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ReferenceViT(nn.Module):
    def __init__(self, num_classes: int = 10, dim: int = 96, depth: int = 16):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, 7, stride=7)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.pos_drop = nn.Dropout(0.1)
        self.blocks = nn.Sequential(*[ReferenceBlock(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(self.pos_drop(x + self.pos_embed))
        return self.head(self.norm(x)[:, 0])


class ReferenceResNet20(nn.Module):
    """warmup-bench's ResNet-20 modules, in the forward the reference scripts write:
    out-of-place ReLUs, relu(out + shortcut)."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.net = build_model("resnet20", num_classes, in_channels)

    def forward(self, x):
        net = self.net
        x = F.relu(net.bn(net.conv(x)))
        for block in net.layers:
            out = F.relu(block.bn1(block.conv1(x)))
            x = F.relu(block.bn2(block.conv2(out)) + block.shortcut(x))
        return net.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ReferenceEmnistCNN(nn.Module):
    """warmup-bench's EMNIST CNN modules, in pytorch_warmup's forward: out-of-place ReLUs,
    each before its max-pool."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.net = build_model("emnist-cnn", num_classes, in_channels)

    def forward(self, x):
        net = self.net
        x = F.max_pool2d(F.relu(net.conv1(x)), 2)
        x = F.max_pool2d(F.relu(net.conv2(x)), 2)
        return net.fc2(F.relu(net.fc1(torch.flatten(x, 1))))


REFERENCE_MODELS = {"vit": lambda classes, channels: ReferenceViT(classes),
                    "resnet20": ReferenceResNet20, "emnist-cnn": ReferenceEmnistCNN}


def baseline_epoch(cfg, data) -> tuple[float, float]:
    """(train seconds, evaluation seconds) of one epoch of the plain loop."""
    torch.manual_seed(cfg.seed)
    model = REFERENCE_MODELS[cfg.model](data.num_classes, data.input_shape[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                  weight_decay=cfg.weight_decay)
    iters = len(data.train) // cfg.batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iters)
    warmup = UntunedLinearWarmup(optimizer) if cfg.warmup == "untuned-linear" else \
        NoWarmup(optimizer)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    crop_flip = cfg.augment == "crop-flip"
    train_loader = torch.utils.data.DataLoader(
        PerImage(data.train.images, data.train.labels, data.mean, data.std, crop_flip),
        batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(
        PerImage(data.test.images, data.test.labels, data.mean, data.std, False),
        batch_size=cfg.test_batch_size, num_workers=0)

    started = time.perf_counter()
    model.train()
    for x, y in train_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        with warmup.dampening():
            scheduler.step()
        loss.item()  # the references read the loss every step
    trained = time.perf_counter()
    model.eval()
    correct, total = 0, 0.0
    with torch.no_grad():
        for x, y in test_loader:
            logits = model(x)
            total += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return trained - started, time.perf_counter() - trained


# ---- warmup-bench ------------------------------------------------------------------------


VARIANTS = {  # name -> (config overrides, RunOptions fields)
    "ours": ({}, {}),
    "no-diagnostics": ({}, {"diagnostics": False}),
    "amp": ({"amp": True}, {}),
    "contiguous": ({}, {"channels_last": False}),
    "unfused": ({}, {"fused_optimizer": False}),
    "compile": ({"compile": True}, {}),
}


def ours_epoch(cfg, data, threads: int, options: dict) -> tuple[float, float]:
    """(train seconds, evaluation seconds) of one epoch through train()."""
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out), RunOptions(device="cpu", threads=threads,
                                                  on_note=lambda _: None, **options),
                       data=data)
        row = result.run.read_epochs().iloc[0]
    train_seconds = (len(data.train) // cfg.batch_size * cfg.batch_size) / \
        row["images_per_second"]
    return train_seconds, row["seconds"] - train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--samples", type=int, default=12_800)
    parser.add_argument("--eval-samples", type=int, default=2_560)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variants", default="ours,no-diagnostics,amp",
                        help=f"of ours, each its own column: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    rows = []
    for workload in args.workloads.split(","):
        base_cfg = resolve_config(WORKLOADS[workload], {"epochs": 1, "val_fraction": 0.0})
        configs = {v: resolve_config(WORKLOADS[workload], {
            "epochs": 1, "val_fraction": 0.0, **VARIANTS[v][0]}) for v in variants}
        data = synthetic(base_cfg.dataset, args.samples)
        data.test = synthetic(base_cfg.dataset, args.eval_samples).train
        warm = synthetic(base_cfg.dataset, 4 * base_cfg.batch_size)
        warm.test = warm.train
        baseline_epoch(base_cfg, warm)  # thread pools, allocator, kernels' first-use costs
        for v in variants:
            ours_epoch(configs[v], warm, args.threads, VARIANTS[v][1])
        times = {k: [] for k in ("baseline", *variants)}
        for _ in range(args.repeats):
            times["baseline"].append(baseline_epoch(base_cfg, data))
            for v in variants:
                times[v].append(ours_epoch(configs[v], data, args.threads, VARIANTS[v][1]))
        rows.append((workload, {k: (statistics.median(t for t, _ in v),
                                    statistics.median(t + e for t, e in v))
                                for k, v in times.items()}))
        for k, v in times.items():
            print(f"{workload} {k}: train {[round(float(t), 2) for t, _ in v]} s, train+eval "
                  f"{[round(float(t + e), 2) for t, e in v]} s", flush=True)
    print(f"\n{device_name(torch.device('cpu'))}, {args.threads} threads, torch "
          f"{torch.__version__}, python {platform.python_version()}, {date.today()}; "
          f"{args.samples:,} train / {args.eval_samples:,} test images, median of "
          f"{args.repeats} alternating repeats; seconds (speed-up over the baseline)")
    for part, index in (("train", 0), ("train + eval", 1)):
        print(f"\n| {part} | baseline | " + " | ".join(variants) + " |")
        print("|---|---:|" + "---:|" * len(variants))
        for workload, m in rows:
            base = m["baseline"][index]
            print(f"| {workload} | {base:.2f} | " + " | ".join(
                f"{m[v][index]:.2f} ({base / m[v][index]:.2f}x)" for v in variants) + " |")


if __name__ == "__main__":
    main()
