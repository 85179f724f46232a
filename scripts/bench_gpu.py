"""GPU speed of the reference workloads, for scripts/gpu_check.sh: seconds per epoch and
images/s of ResNet-20 (CIFAR-shaped), the EMNIST CNN and the ViT (MNIST-shaped) on
synthetic data generated on the device, each in float32, --amp (bf16) and --compile; the
aggregate throughput of ResNet-20 with 1, 4 and 8 runs at once (sweep --jobs N); and from
those, the GPU-hours of the CIFAR-10 paper grids. Writes bench.json after every
measurement (a time limit never loses what was measured) and bench.md at the end.

    python scripts/bench_gpu.py --out DIR [--fraction 0.5] [--budget 300]
    python scripts/bench_gpu.py --report DIR/bench.json      # the table of a recorded run

A measurement, not a test. Without CUDA it says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name -> (task, model, images per epoch at full size, image shape, classes)
    "ResNet-20": ("cifar10-resnet20", "resnet20", 50_000, (3, 32, 32), 10),
    "EMNIST CNN": ("emnist-cnn", "emnist-cnn", 112_800, (1, 28, 28), 47),
    "ViT": ("mnist-vit", "vit", 54_000, (1, 28, 28), 10),
}
VARIANTS = {"fp32": {}, "amp (bf16)": {"amp": True}, "compile": {"compile": True}}
CONCURRENCY = (1, 4, 8)
PAPER_GRIDS = ("cifar10-warmup", "cifar10-no-warmup", "cifar10-beta2-0.99", "cifar10-sgd-depth")


def paper_runs() -> dict[str, int]:
    """The CIFAR-10 paper grids' distinct runs (a run two grids share counts once), by
    model, and their epochs."""
    from warmup_bench.experiments import load_experiment

    configs = {cfg for name in PAPER_GRIDS
               for cfg in load_experiment(ROOT / "experiments" / f"{name}.toml").configs()}
    epochs: dict[str, int] = {}
    for cfg in configs:
        epochs[cfg.model] = epochs.get(cfg.model, 0) + cfg.epochs
    return epochs


def depth_cost(model: str) -> float:
    """ResNet-N's compute per image relative to ResNet-20's: (N - 2) / 18 blocks."""
    return (int(model.removeprefix("resnet")) - 2) / 18


def one_run(workload: str, variant: str, fraction: float, epochs: int = 2) -> dict:
    """Trains `workload` on synthetic device data for `epochs`; the last epoch's speed."""
    import torch

    from warmup_bench.data.catalog import Dataset, Split
    from warmup_bench.execution import RunOptions
    from warmup_bench.tasks import resolve_config
    from warmup_bench.train import train

    task, model, images, shape, classes = WORKLOADS[workload]
    n = max(2048, int(images * fraction))
    generator = torch.Generator(device="cuda").manual_seed(0)
    data = Dataset("synthetic", Split(torch.randint(0, 256, (n, *shape), dtype=torch.uint8,
                                                    device="cuda", generator=generator),
                                      torch.randint(0, classes, (n,), device="cuda",
                                                    generator=generator)),
                   Split(torch.zeros((1000, *shape), dtype=torch.uint8, device="cuda"),
                         torch.zeros(1000, dtype=torch.long, device="cuda")), classes,
                   (0.5,) * shape[0], (0.25,) * shape[0], "synthetic (on the GPU)")
    cfg = resolve_config(task, {"model": model, "epochs": epochs, "val_fraction": 0.0,
                                **VARIANTS[variant]})
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out), RunOptions(device="cuda", diagnostics=False,
                                                  on_note=None), data)
        epochs_csv = result.run.read_epochs()
    last = epochs_csv.iloc[-1]
    return {"workload": workload, "variant": variant, "images": n,
            "seconds_per_epoch": float(last["seconds"]) * images / n,
            "images_per_second": float(last["images_per_second"]),
            "first_epoch_seconds": float(epochs_csv["seconds"].iloc[0])}


def concurrent(jobs: int, fraction: float) -> dict:
    """ResNet-20 runs at once through `sweep --jobs N` on the one GPU: their aggregate
    images/s (each run's last-epoch speed, summed)."""
    with tempfile.TemporaryDirectory() as scratch:
        grid = Path(scratch) / "grid.toml"
        seeds = list(range(1, jobs + 1))
        grid.write_text(f'task = "cifar10-resnet20"\nseeds = {seeds}\n[fixed]\nepochs = 2\n'
                        f"train_samples = {int(50_000 * fraction)}\n")
        data = Path(scratch) / "data"
        write_cifar_like(data, int(50_000 * fraction))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "warmup_bench", "sweep", str(grid),
                               "--devices", "cuda", "--jobs", str(jobs), "--no-diagnostics",
                               "--data-dir", str(data), "--out", str(Path(scratch) / "out")],
                              capture_output=True, text=True)
        if done.returncode:
            return {"jobs": jobs, "error": done.stderr.strip().splitlines()[-1:]}
        speeds = []
        for epochs in (Path(scratch) / "out").glob("cifar10-resnet20/*/epochs.csv"):
            speeds.append(float(epochs.read_text().strip().splitlines()[-1].split(",")[-1]))
    return {"jobs": jobs, "aggregate_images_per_second": sum(speeds),
            "wall_seconds": time.perf_counter() - started}


def write_cifar_like(folder: Path, n: int) -> None:
    """CIFAR-10 python batches of random pixels (the sweep reads data from disk)."""
    import pickle

    import numpy as np

    target = folder / "cifar-10-batches-py"
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per = -(-n // 5)
    for name, count in [(f"data_batch_{i}", per) for i in range(1, 6)] + [("test_batch", 1000)]:
        batch = {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, count).tolist()}
        (target / name).write_bytes(pickle.dumps(batch, protocol=2))


def paper_grid_hours(results: dict) -> dict | None:
    """GPU-hours of the CIFAR-10 paper grids from ResNet-20's measured seconds per epoch:
    one run at a time (fp32), and at the best measured concurrency."""
    single = next((r for r in results.get("runs", []) if r["workload"] == "ResNet-20"
                   and r["variant"] == "fp32"), None)
    if single is None:
        return None
    epochs = sum(count * depth_cost(model) for model, count in paper_runs().items())
    hours = {"resnet20_equivalent_epochs": epochs,
             "one_at_a_time": epochs * single["seconds_per_epoch"] / 3600}
    rates = [c for c in results.get("concurrency", []) if "aggregate_images_per_second" in c]
    if rates:
        best = max(rates, key=lambda c: c["aggregate_images_per_second"])
        hours["best_concurrency"] = best["jobs"]
        hours["at_best_concurrency"] = epochs * 50_000 / best["aggregate_images_per_second"] \
            / 3600
    return hours


def markdown(results: dict) -> str:
    """The recorded measurements as the README's tables."""
    lines = [f"{results['device']}, torch {results['torch']}, {results['date']}", "",
             "| workload | variant | s / epoch (full data) | images / s |",
             "|---|---|---:|---:|"]
    lines += [f"| {r['workload']} | {r['variant']} | {r['seconds_per_epoch']:.2f} | "
              f"{r['images_per_second']:,.0f} |" for r in results.get("runs", [])]
    if results.get("concurrency"):
        lines += ["", "| ResNet-20 runs at once | aggregate images / s |", "|---:|---:|"]
        lines += [f"| {c['jobs']} | " + (f"{c['aggregate_images_per_second']:,.0f} |"
                                        if "aggregate_images_per_second" in c else
                                        f"failed: {' '.join(c['error'])} |")
                  for c in results["concurrency"]]
    hours = paper_grid_hours(results)
    if hours:
        lines += ["", f"CIFAR-10 paper grids ({hours['resnet20_equivalent_epochs']:,.0f} "
                  f"ResNet-20-epochs): {hours['one_at_a_time']:.1f} GPU-hours one run at a "
                  "time" + (f", {hours['at_best_concurrency']:.1f} with "
                            f"{hours['best_concurrency']} at once"
                            if "at_best_concurrency" in hours else "") + "."]
    if results.get("skipped"):
        lines += ["", f"Not measured (time budget): {', '.join(results['skipped'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="of each data set's size per epoch (seconds are scaled to it)")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds: what would start after it is skipped")
    parser.add_argument("--report", type=Path, help="print the table of a recorded bench.json")
    args = parser.parse_args(argv)
    if args.report is not None:
        try:
            print(markdown(json.loads(args.report.read_text())), end="")
        except (OSError, ValueError, KeyError) as error:
            print(f"error: {args.report}: not a recorded bench.json ({error})", file=sys.stderr)
            return 2
        return 0
    if not 0 < args.fraction <= 1:
        print(f"error: --fraction {args.fraction} must be in (0, 1]", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device here: nothing to measure", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
               "fraction": args.fraction, "runs": [], "concurrency": [], "skipped": []}
    deadline = time.monotonic() + args.budget

    def record() -> None:
        (args.out / "bench.json").write_text(json.dumps(results, indent=1) + "\n")

    for workload in WORKLOADS:
        for variant in VARIANTS:
            if time.monotonic() > deadline:
                results["skipped"].append(f"{workload} {variant}")
                continue
            results["runs"].append(one_run(workload, variant, args.fraction))
            record()
    for jobs in CONCURRENCY:
        if time.monotonic() > deadline:
            results["skipped"].append(f"{jobs} ResNet-20 runs at once")
            continue
        results["concurrency"].append(concurrent(jobs, args.fraction / 2))
        record()
    record()
    (args.out / "bench.md").write_text(markdown(results))
    print(markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
