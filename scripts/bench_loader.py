"""Measures the data path alone and compares it with the model compute it feeds.

  python scripts/bench_loader.py [--device cpu|cuda] [--epochs 2]

Loader: one CIFAR-sized training epoch (50,000 random uint8 images, batch 128, crop+flip,
normalisation), images/s. Model: ResNet-20 forward/backward/AdamW step on the same batch
shape, timed over a few batches and scaled to an epoch. Prints measurements only.
"""

from __future__ import annotations

import argparse
import time

import torch

from warmup_bench.data import BatchLoader, CropFlip, Split
from warmup_bench.models import build_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_epoch_seconds(device: torch.device, epochs: int) -> float:
    split = Split(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8),
                  torch.randint(0, 10, (50_000,)))
    loader = BatchLoader(split, 128, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                         train=True, augment=CropFlip(), device=device)
    times = []
    for epoch in range(epochs + 1):  # the first epoch warms up allocators
        sync(device)
        start = time.perf_counter()
        checksum = torch.zeros((), device=device)
        for x, _ in loader.batches(epoch):
            checksum += x[0, 0, 0, 0]  # touch each batch so nothing is skipped
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def resnet_epoch_seconds(device: torch.device, batches: int) -> float:
    model = build_model("resnet20", 10, 3).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(128, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync(device)
    return (time.perf_counter() - start) / batches * (50_000 // 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model-batches", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    loader = loader_epoch_seconds(device, args.epochs)
    model = resnet_epoch_seconds(device, args.model_batches)
    print(f"device {device} ({torch.get_num_threads()} CPU threads)")
    print(f"loader : {loader:8.2f} s per augmented CIFAR epoch ({49_920 / loader:,.0f} images/s)")
    print(f"ResNet-20 train compute: {model:8.2f} s per epoch (estimated from "
          f"{args.model_batches} batches)")
    print(f"loader / compute: {loader / model:.3f}")


if __name__ == "__main__":
    main()
