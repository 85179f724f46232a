"""GPU speed of the reference workloads, for scripts/gpu_check.sh: seconds per epoch and
images/s of ResNet-20 (CIFAR-shaped), the EMNIST CNN and the ViT (MNIST-shaped) on
synthetic data generated on the device, in float32 and --amp (bf16); ResNet-20 with and
without the diagnostics probe; several ResNet-20 runs at once (processes) and packs of 1, 8
and 32 runs (sweep --pack) of ResNet-20 and the EMNIST CNN; last, --compile and CUDA graphs
(--compile-mode reduce-overhead), whose first epochs spend tens of seconds compiling. From
those, the GPU-hours of the CIFAR-10 paper grids. Every measurement is recorded as it
ends, its error included (one failure loses nothing else): bench.json and bench.md are
rewritten after each, and what the time budget leaves out is listed.

    python scripts/bench_gpu.py --out DIR [--fraction 0.5] [--budget 300]
    python scripts/bench_gpu.py --report DIR/bench.json      # the table of a recorded run

A measurement, not a test. Without CUDA it says so in one line and exits 2 (`--device cpu`
runs the same plan on the CPU, for the tests of this script).
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
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name -> (task, model, images per epoch at full size, image shape, classes)
    "ResNet-20": ("cifar10-resnet20", "resnet20", 50_000, (3, 32, 32), 10),
    "EMNIST CNN": ("emnist-cnn", "emnist-cnn", 112_800, (1, 28, 28), 47),
    "ViT": ("mnist-vit", "vit", 54_000, (1, 28, 28), 10),
}
VARIANTS = {"fp32": ({}, {}), "amp (bf16)": ({"amp": True}, {}),
            "no diagnostics": ({}, {"diagnostics": False}),
            "compile": ({"compile": True}, {}),
            "CUDA graphs": ({"compile": True}, {"compile_mode": "reduce-overhead"})}
CONCURRENCY = (1, 4, 8)
PACKS = (1, 8, 32)
PAPER_GRIDS = ("cifar10-warmup", "cifar10-no-warmup", "cifar10-beta2-0.99", "cifar10-sgd-depth")
CHILD_SECONDS = 600  # a process of the concurrency step that runs longer has failed


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


def synthetic(workload: str, n: int, device: str):
    """`n` training images of the workload's shape (and 1,000 test ones), made on the
    device: no data files, no copy to the device."""
    import torch

    from warmup_bench.data.catalog import Dataset, Split

    _, _, _, shape, classes = WORKLOADS[workload]
    generator = torch.Generator(device=device).manual_seed(0)
    return Dataset("synthetic", Split(torch.randint(0, 256, (n, *shape), dtype=torch.uint8,
                                                    device=device, generator=generator),
                                      torch.randint(0, classes, (n,), device=device,
                                                    generator=generator)),
                   Split(torch.zeros((1000, *shape), dtype=torch.uint8, device=device),
                         torch.zeros(1000, dtype=torch.long, device=device)), classes,
                   (0.5,) * shape[0], (0.25,) * shape[0], f"synthetic (on {device})")


def settings(workload: str, variant: str, epochs: int, seed: int = 1) -> tuple:
    """(the workload's config, the run options) of a variant."""
    from warmup_bench.tasks import resolve_config

    task, model, *_ = WORKLOADS[workload]
    config, options = VARIANTS[variant]
    return (resolve_config(task, {"model": model, "epochs": epochs, "val_fraction": 0.0,
                                  "seed": seed, **config}), options)


def one_run(workload: str, variant: str, fraction: float, device: str = "cuda",
            epochs: int = 2) -> dict:
    """Trains `workload` on synthetic device data for `epochs`; the last epoch's speed."""
    from warmup_bench.execution import RunOptions
    from warmup_bench.train import train

    images = WORKLOADS[workload][2]
    n = max(2048, int(images * fraction))
    cfg, options = settings(workload, variant, epochs)
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out), RunOptions(device=device, on_note=None, **options),
                       synthetic(workload, n, device))
        epochs_csv = result.run.read_epochs()
    last = epochs_csv.iloc[-1]
    return {"workload": workload, "variant": variant, "images": n,
            "seconds_per_epoch": float(last["seconds"]) * images / n,
            "images_per_second": float(last["images_per_second"]),
            "first_epoch_seconds": float(epochs_csv["seconds"].iloc[0])}


def packed(workload: str, size: int, fraction: float, device: str = "cuda",
           epochs: int = 2) -> dict:
    """A pack of `size` runs (seeds 1..size) trained as one model: the aggregate training
    images/s of its last epoch (each member trains the pack epoch's images)."""
    from warmup_bench.execution import RunOptions
    from warmup_bench.train import train_pack

    images = WORKLOADS[workload][2]
    n = max(2048, int(images * fraction))
    cfgs = [settings(workload, "fp32", epochs, seed)[0] for seed in range(1, size + 1)]
    with tempfile.TemporaryDirectory() as out:
        outcomes = train_pack(cfgs, Path(out), RunOptions(device=device, on_note=None,
                                                          diagnostics=False),
                              synthetic(workload, n, device))
        failed = [o for o in outcomes if not hasattr(o, "run")]
        if failed:
            raise RuntimeError(str(failed[0]))
        last = outcomes[0].run.read_epochs().iloc[-1]
    return {"workload": workload, "pack": size, "images": n,
            "aggregate_images_per_second": size * float(last["images_per_second"]),
            "seconds_per_pack_epoch": float(last["seconds"]) * images / n}


def child(workload: str, fraction: float, device: str) -> None:
    """One process of the concurrency step: trains ResNet-20 and prints, as JSON, when its
    training started and ended (wall clock) and how many images it trained."""
    from warmup_bench.execution import RunOptions
    from warmup_bench.train import train

    n = max(2048, int(WORKLOADS[workload][2] * fraction))
    cfg, _ = settings(workload, "fp32", 2)
    data = synthetic(workload, n, device)
    with tempfile.TemporaryDirectory() as out:
        started = time.time()
        result = train(cfg, Path(out), RunOptions(device=device, on_note=None,
                                                  diagnostics=False), data)
        ended = time.time()
    if result.status.value != "complete":
        raise RuntimeError(f"the run ended {result.status.value}: {result.summary.error}")
    print(json.dumps({"start": started, "end": ended,
                      "images": (n // cfg.batch_size) * cfg.batch_size * cfg.epochs}))


def concurrent(jobs: int, fraction: float, device: str = "cuda") -> dict:
    """`jobs` ResNet-20 processes at once on the one device: the images all of them
    trained over the wall time from the first one's start to the last one's end (each
    process timed from inside, so start-up and imports do not count)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "ResNet-20",
               "--fraction", str(fraction), "--device", device]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(jobs)]
    reports, errors = [], []
    deadline = time.monotonic() + CHILD_SECONDS
    for process in processes:
        try:
            out, err = process.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            errors.append(f"a process ran past {CHILD_SECONDS} s")
            continue
        if process.returncode:
            errors.append((err.strip().splitlines() or ["failed"])[-1])
        else:
            reports.append(json.loads(out.strip().splitlines()[-1]))
    if errors:
        raise RuntimeError(errors[0])
    span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {"jobs": jobs, "aggregate_images_per_second": sum(r["images"] for r in reports)
            / span, "wall_seconds": span}


def paper_grid_hours(results: dict) -> dict | None:
    """GPU-hours of the CIFAR-10 paper grids from ResNet-20's measured speeds: one run at
    a time (fp32), at the best measured concurrency and in the best measured pack."""
    single = next((r for r in results.get("runs", []) if r["workload"] == "ResNet-20"
                   and r["variant"] == "fp32" and "seconds_per_epoch" in r), None)
    if single is None:
        return None
    epochs = sum(count * depth_cost(model) for model, count in paper_runs().items())
    hours = {"resnet20_equivalent_epochs": epochs,
             "one_at_a_time": epochs * single["seconds_per_epoch"] / 3600}
    for key, rows, label in (("concurrency", results.get("concurrency", []), "jobs"),
                             ("pack", [p for p in results.get("packs", [])
                                       if p["workload"] == "ResNet-20"], "pack")):
        rates = [r for r in rows if "aggregate_images_per_second" in r]
        if rates:
            best = max(rates, key=lambda r: r["aggregate_images_per_second"])
            hours[f"best_{key}"] = best[label]
            hours[f"at_best_{key}"] = epochs * 50_000 / best["aggregate_images_per_second"] \
                / 3600
    return hours


def markdown(results: dict) -> str:
    """The recorded measurements as docs/gpu.md's tables."""
    lines = [f"{results['device']}, torch {results['torch']}, {results['date']}", "",
             "| workload | variant | s / epoch (full data) | images / s |",
             "|---|---|---:|---:|"]
    lines += [f"| {r['workload']} | {r['variant']} | " +
              (f"{r['seconds_per_epoch']:.2f} | {r['images_per_second']:,.0f} |"
               if "error" not in r else f"failed: {r['error']} | |")
              for r in results.get("runs", [])]
    if results.get("concurrency"):
        lines += ["", "| ResNet-20 runs at once | aggregate images / s |", "|---:|---:|"]
        lines += [f"| {c['jobs']} | " + (f"{c['aggregate_images_per_second']:,.0f} |"
                                        if "error" not in c else f"failed: {c['error']} |")
                  for c in results["concurrency"]]
    if results.get("packs"):
        lines += ["", "| workload | runs in a pack | aggregate images / s |", "|---|---:|---:|"]
        lines += [f"| {p['workload']} | {p['pack']} | " +
                  (f"{p['aggregate_images_per_second']:,.0f} |"
                   if "error" not in p else f"failed: {p['error']} |")
                  for p in results["packs"]]
    hours = paper_grid_hours(results)
    if hours:
        ways = [f"{hours['one_at_a_time']:.1f} GPU-hours one run at a time"]
        if "at_best_concurrency" in hours:
            ways.append(f"{hours['at_best_concurrency']:.1f} with {hours['best_concurrency']} "
                        "at once")
        if "at_best_pack" in hours:
            ways.append(f"{hours['at_best_pack']:.1f} in packs of {hours['best_pack']}")
        lines += ["", f"CIFAR-10 paper grids ({hours['resnet20_equivalent_epochs']:,.0f} "
                  f"ResNet-20-epochs): {', '.join(ways)}."]
    if results.get("skipped"):
        lines += ["", f"Not measured (time budget): {', '.join(results['skipped'])}."]
    return "\n".join(lines) + "\n"


def plan(fraction: float, device: str) -> list[tuple[str, str, Callable[[], dict]]]:
    """Every measurement, in the order it runs: (where it is recorded, its name, how)."""
    steps = []
    for variant in ("fp32", "amp (bf16)"):
        for workload in WORKLOADS:
            steps.append(("runs", f"{workload} {variant}",
                          lambda w=workload, v=variant: one_run(w, v, fraction, device)))
    steps.append(("runs", "ResNet-20 no diagnostics",
                  lambda: one_run("ResNet-20", "no diagnostics", fraction, device)))
    for jobs in CONCURRENCY:
        steps.append(("concurrency", f"{jobs} ResNet-20 runs at once",
                      lambda j=jobs: concurrent(j, fraction / 2, device)))
    for workload in ("ResNet-20", "EMNIST CNN"):
        for size in PACKS:
            steps.append(("packs", f"{workload} pack of {size}",
                          lambda w=workload, s=size: packed(w, s, fraction / 2, device)))
    for variant in ("compile", "CUDA graphs"):
        for workload in WORKLOADS:
            steps.append(("runs", f"{workload} {variant}",
                          lambda w=workload, v=variant: one_run(w, v, fraction, device)))
    return steps


def measure(steps, results: dict, deadline: float, record: Callable[[], None]) -> None:
    """Runs the plan until the deadline; each measurement (or its error) is recorded as
    soon as it ends."""
    for where, name, how in steps:
        if time.monotonic() > deadline:
            results["skipped"].append(name)
            continue
        try:
            results[where].append(how())
        except Exception as error:  # recorded, and the next measurement goes on
            line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            results[where].append({**_labels(where, name), "error": line})
            traceback.print_exc()
        record()


def _labels(where: str, name: str) -> dict:
    """The labels of a failed measurement's row, from its name."""
    if where == "concurrency":
        return {"jobs": int(name.split()[0])}
    if where == "packs":
        workload, size = name.rsplit(" pack of ", 1)
        return {"workload": workload, "pack": int(size)}
    workload = next(w for w in WORKLOADS if name.startswith(w))
    return {"workload": workload, "variant": name[len(workload) + 1:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="of each data set's size per epoch (seconds are scaled to it)")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds: what would start after it is skipped")
    parser.add_argument("--device", default="cuda", help="cuda (or cpu, for the tests)")
    parser.add_argument("--report", type=Path, help="print the table of a recorded bench.json")
    parser.add_argument("--child", choices=list(WORKLOADS), help=argparse.SUPPRESS)
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

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here: nothing to measure", file=sys.stderr)
        return 2
    if args.child is not None:
        child(args.child, args.fraction, args.device)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor()
    results = {"device": name, "torch": torch.__version__, "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d"), "fraction": args.fraction, "runs": [],
               "concurrency": [], "packs": [], "skipped": []}

    def record() -> None:
        (args.out / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "bench.md").write_text(markdown(results))

    record()
    measure(plan(args.fraction, args.device), results, time.monotonic() + args.budget, record)
    print(markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
