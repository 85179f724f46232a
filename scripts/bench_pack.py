"""Packed training against one run per process: aggregate training images/s of a set of
runs trained sequentially, two at a time (one thread each), and as one pack.

    python scripts/bench_pack.py digits       # the digits grid (experiments/digits.toml)
    python scripts/bench_pack.py emnist-cnn   # 8 EMNIST-CNN runs on synthetic data
    python scripts/bench_pack.py emnist-cnn --device cuda --sizes 1,8,32   # on a GPU

Each mode trains the same runs from scratch into its own temporary folder; the images
counted are every member's training images (runs x epochs x iterations x batch), over
the wall time of the whole mode. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from warmup_bench.data.catalog import Dataset, Split
from warmup_bench.execution import RunOptions
from warmup_bench.experiments import load_experiment
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train, train_pack


def synthetic(n_train: int, n_test: int, shape=(1, 28, 28), classes: int = 47) -> Dataset:
    g = torch.Generator().manual_seed(0)
    split = lambda n: Split(torch.randint(0, 256, (n, *shape), generator=g,  # noqa: E731
                                          dtype=torch.uint8), torch.randint(0, classes, (n,),
                                                                            generator=g))
    return Dataset("emnist", split(n_train), split(n_test), classes, (0.17,), (0.33,),
                   "synthetic")


def workload(name: str, epochs: int):
    """(configs, data or None, images trained in all)."""
    if name == "digits":
        configs = [c.__class__(**{**c.to_dict(), "epochs": epochs}) for c in
                   load_experiment(Path(__file__).parent.parent / "experiments/digits.toml"
                                   ).resolved]
        data = None
        per_run = 1437 // 32 * 32  # the digits' training split, full batches of 32
    else:
        warmups = ["none", "untuned-linear", "untuned-exponential", "radam"]
        configs = [resolve_config("emnist-cnn", {"epochs": epochs, "seed": s, "warmup": w})
                   for s in (1, 2) for w in warmups]
        data = synthetic(6400, 1000)
        per_run = 6400 // configs[0].batch_size * configs[0].batch_size
    return configs, data, per_run * epochs * len(configs)


def _one(args) -> None:
    cfg, out, device, name, epochs = args
    torch.set_num_threads(1)
    data = workload(name, epochs)[1]
    train(cfg, Path(out), RunOptions(device=device, threads=1, on_note=None,
                                     diagnostics=False), data=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=["digits", "emnist-cnn"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default=None, help="pack sizes to time (default: all runs)")
    args = parser.parse_args()
    configs, data, images = workload(args.workload, args.epochs)
    options = RunOptions(device=args.device, on_note=None, diagnostics=False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for cfg in configs:
            train(cfg, Path(tmp) / "sequential", options, data=data)
        results["sequential (1 process)"] = time.perf_counter() - started
        if args.device == "cpu":
            started = time.perf_counter()
            with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
                list(pool.map(_one, [(cfg, str(Path(tmp) / "jobs2"), args.device,
                                      args.workload, args.epochs) for cfg in configs]))
            results["--jobs 2 (1 thread each)"] = time.perf_counter() - started
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [len(configs)]
        for size in sizes:
            started = time.perf_counter()
            for i in range(0, len(configs), size):
                train_pack(configs[i:i + size], Path(tmp) / f"pack{size}", options, data=data)
            results[f"--pack {size}"] = time.perf_counter() - started
    print(f"{args.workload}: {len(configs)} runs x {args.epochs} epochs on {args.device} "
          f"({torch.get_num_threads()} threads), {images:,} training images")
    base = results["sequential (1 process)"]
    for mode, seconds in results.items():
        print(f"  {mode:<26} {seconds:7.1f} s  {images / seconds:9,.0f} images/s  "
              f"{base / seconds:5.2f}x")


if __name__ == "__main__":
    main()
