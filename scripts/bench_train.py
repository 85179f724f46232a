"""A task's epoch time through the training loop versus the pure compute of the same
batches (forward, backward, optimizer step, nothing else), on random data of the task's
shape, so no data set is needed.

  python scripts/bench_train.py --task emnist-cnn                 # CPU, the issue's check
  python scripts/bench_train.py --task cifar10-resnet20 --device cuda --amp --compile
  python scripts/bench_train.py --task mnist-vit --device cuda
  python scripts/bench_train.py --task emnist-cnn --samples 25600 --diagnostics-cost

The loop adds the device-resident loader (augmentation included), warmup dampening and the
schedule, metric accumulation and CSV rows every 10 iterations; the difference is its
overhead. Evaluation is excluded from both. Prints measurements only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from warmup_bench.data import DATASETS, Dataset, Split
from warmup_bench.models import build_model
from warmup_bench.optim import OPTIMIZERS
from warmup_bench.tasks import resolve_config
from warmup_bench.train import RunOptions, resolve_device, train


def synthetic(dataset: str, n: int) -> Dataset:
    spec = DATASETS[dataset]
    g = torch.Generator().manual_seed(0)

    def split(k: int) -> Split:
        return Split(torch.randint(0, 256, (k, *spec.shape), dtype=torch.uint8, generator=g),
                     torch.randint(0, spec.num_classes, (k,), generator=g))

    channels = spec.shape[0]
    return Dataset(dataset, split(n), split(1000), spec.num_classes,
                   spec.mean or (0.5,) * channels, spec.std or (0.25,) * channels, "synthetic")


def pure_compute_seconds(cfg, n: int, device: torch.device) -> float:
    torch.manual_seed(1)
    data = synthetic(cfg.dataset, n)
    model = build_model(cfg.model, data.num_classes, data.input_shape[0]).to(device)
    forward = torch.compile(model) if cfg.compile else model
    optimizer = OPTIMIZERS[cfg.opt].build(model.parameters(), cfg)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) \
        if cfg.amp and device.type == "cuda" else nullcontext
    train_split = data.train.to(device)
    b = cfg.batch_size
    batches = [(train_split.images[i:i + b].float() / 255, train_split.labels[i:i + b])
               for i in range(0, n - b + 1, b)]  # prepared up front: not timed
    for x, y in batches[:3]:  # warm-up (and compilation)
        with autocast():
            loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
        loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for x, y in batches:
        with autocast():
            loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    loss.item()
    return time.perf_counter() - start


def loop_epoch_seconds(cfg, n: int, device: str, diagnostics: bool = False) -> float:
    """The training part of one epoch through train(), from its images/s column."""
    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(device=device, diagnostics=diagnostics)
        result = train(cfg, Path(out), options, data=synthetic(cfg.dataset, n))
        ips = float(result.run.read_epochs()["images_per_second"].iloc[0])
    return (n // cfg.batch_size * cfg.batch_size) / ips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="emnist-cnn")
    parser.add_argument("--samples", type=int, default=None, help="default: the full split")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--diagnostics-cost", action="store_true",
                        help="loop epochs with --diagnostics off and on, alternating")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = resolve_config(args.task, {"epochs": 1, "amp": args.amp, "compile": args.compile,
                                     "val_fraction": 0.0})
    n = args.samples or DATASETS[cfg.dataset].sizes[0]
    device = resolve_device(args.device)
    if args.diagnostics_cost:
        diagnostics_cost(cfg, n, args.device, args.repeats)
        return
    # warm thread pools, allocator and compilation caches with a short run of each
    pure_compute_seconds(cfg, 50 * cfg.batch_size, device)
    loop_epoch_seconds(cfg, 50 * cfg.batch_size, args.device)
    pure = pure_compute_seconds(cfg, n, device)
    loop = loop_epoch_seconds(cfg, n, args.device)
    flags = " ".join(f for f, on in (("--amp", args.amp), ("--compile", args.compile)) if on)
    print(f"{args.task} ({cfg.model}), {n:,} samples, batch {cfg.batch_size}, {device} {flags}")
    print(f"pure forward/backward/step: {pure:8.2f} s per epoch")
    print(f"training loop epoch       : {loop:8.2f} s per epoch ({100 * (loop / pure - 1):+.1f}%)")


def diagnostics_cost(cfg, n: int, device: str, repeats: int) -> None:
    """Median loop-epoch seconds without and with diagnostics (at the default log interval),
    the two alternating so drifts in the machine's speed hit both alike."""
    import statistics

    loop_epoch_seconds(cfg, 20 * cfg.batch_size, device, diagnostics=True)  # warm-up
    times = {False: [], True: []}
    for _ in range(repeats):
        for on in (False, True):
            times[on].append(loop_epoch_seconds(cfg, n, device, diagnostics=on))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"{cfg.task} ({cfg.model}), {n:,} samples, {device}, {repeats} alternating repeats")
    print(f"without diagnostics: {off:8.2f} s per epoch (median of {times[False]})")
    print(f"with diagnostics   : {on:8.2f} s per epoch (median of {times[True]})")
    print(f"cost               : {100 * (on / off - 1):+.1f}%")


if __name__ == "__main__":
    main()
