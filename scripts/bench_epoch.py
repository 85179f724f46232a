"""EMNIST-CNN epoch time through the training loop versus the pure compute of the same
batches (forward, backward, AdamW step, nothing else), on random EMNIST-shaped data.

  python scripts/bench_epoch.py [--samples 112800] [--device cpu]

The loop adds the loader, warmup dampening + schedule, metric accumulation and CSV logging
every 10 iterations; the difference is its overhead. Prints measurements only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from warmup_bench.data import Dataset, Split
from warmup_bench.models import build_model
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train


def fake_emnist(n: int) -> Dataset:
    g = torch.Generator().manual_seed(0)
    split = lambda k: Split(torch.randint(0, 256, (k, 1, 28, 28), dtype=torch.uint8, generator=g),  # noqa: E731
                            torch.randint(0, 47, (k,), generator=g))
    return Dataset("emnist", split(n), split(1000), 47, (0.1751,), (0.3332,), "synthetic")


def pure_compute_seconds(n: int, device: torch.device) -> float:
    torch.manual_seed(1)
    model = build_model("emnist-cnn", 47, 1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    data = fake_emnist(n).train.to(device)
    batches = [(data.images[i:i + 64].float() / 255, data.labels[i:i + 64])
               for i in range(0, n - 63, 64)]  # prepared up front: not timed
    start = time.perf_counter()
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    return time.perf_counter() - start


def loop_epoch_seconds(n: int, device: str) -> float:
    cfg = resolve_config("emnist-cnn", dict(epochs=1))
    with tempfile.TemporaryDirectory() as out, \
            mock.patch("warmup_bench.train.load_dataset", lambda *a, **k: fake_emnist(n)):
        result = train(cfg, Path(out), device=device)
        epochs = (result.directory / "epochs.csv").read_text().splitlines()
    header, row = epochs[0].split(","), epochs[1].split(",")
    ips = float(row[header.index("images_per_second")])
    return (n // 64 * 64) / ips  # training part of the epoch, evaluation excluded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=112_800)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pure_compute_seconds(6400, torch.device(args.device))  # warm thread pools and allocator
    loop_epoch_seconds(6400, args.device)
    pure = pure_compute_seconds(args.samples, torch.device(args.device))
    loop = loop_epoch_seconds(args.samples, args.device)
    print(f"EMNIST CNN, {args.samples:,} samples, batch 64, {args.device}")
    print(f"pure forward/backward/step: {pure:7.2f} s")
    print(f"training loop epoch       : {loop:7.2f} s  ({100 * (loop / pure - 1):+.1f}%)")


if __name__ == "__main__":
    main()
