"""How long `report` takes on a large results folder: writes N run folders in the real
on-disk format (a digits-shaped grid: LRs x warmups x seeds, 30 epochs, steps.csv and
diagnostics.csv as a run writes them), then times `report` (the table) and `report --out`
(table and figures). A measurement, not a test.

    python scripts/bench_report.py --lrs 20 --warmups 5 --seeds 10    # 1,000 runs
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from warmup_bench.diagnostics import DIAGNOSTIC_COLUMNS
from warmup_bench.runs import EPOCHS_CSV, RunDir
from warmup_bench.tasks import resolve_config

WARMUPS = [{"warmup": "none"}, {"warmup": "untuned-linear"}, {"warmup": "untuned-exponential"},
           {"warmup": "radam"}, {"warmup": "linear", "warmup_period": 100},
           {"warmup": "exponential", "warmup_period": 50}]


def write_runs(root: Path, lrs: int, warmups: int, seeds: int, epochs: int = 30) -> int:
    rng = np.random.default_rng(0)
    iterations = 44
    count = 0
    for lr in np.geomspace(1e-4, 1e-1, lrs):
        for warmup in WARMUPS[:warmups]:
            for seed in range(1, seeds + 1):
                cfg = resolve_config("digits", {"lr": float(lr), "seed": seed, "beta2": 0.99,
                                                "epochs": epochs, **warmup})
                folder = RunDir.of(root, cfg).path
                folder.mkdir(parents=True)
                accuracy = np.clip(0.9 + 0.05 * rng.standard_normal(epochs).cumsum() / epochs,
                                   0, 1)
                (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
                (folder / "meta.json").write_text(json.dumps(
                    {"iterations_per_epoch": iterations, "delay_schedule_iterations": 0,
                     "device_name": "cpu (bench)", "threads": 1}))
                columns = EPOCHS_CSV.names(has_val=False)
                rows = [[e + 1, 1.0, 0.5, 1.0, float(accuracy[e]), 0.99, 0.3, 4000.0]
                        for e in range(epochs)]
                (folder / "epochs.csv").write_text(",".join(columns) + "\n" + "".join(
                    ",".join(map(repr, r)) + "\n" for r in rows))
                steps = range(1, epochs * iterations + 1, 10)
                (folder / "steps.csv").write_text("step,epoch,lr,warmup_factor,loss\n" + "".join(
                    f"{s},{(s - 1) // iterations + 1},{float(lr)!r},1.0,{2.3 / s ** 0.3!r}\n"
                    for s in steps))
                diagnostics = [*range(1, 11), *steps[1:]]
                (folder / "diagnostics.csv").write_text(",".join(DIAGNOSTIC_COLUMNS) + "\n" +
                                                        "".join(f"{s}" + ",0.5" * 11 + ",,,\n"
                                                                for s in diagnostics))
                (folder / "summary.json").write_text(json.dumps({
                    "status": "complete", "best_test_acc": float(accuracy.max()),
                    "best_epoch": int(accuracy.argmax()) + 1,
                    "final_test_acc": float(accuracy[-1]), "epochs_done": epochs,
                    "wall_seconds": 30.0, "error": None}))
                count += 1
    return count


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "warmup_bench", *args], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "results"
        runs = write_runs(root, args.lrs, args.warmups, args.seeds)
        table = timed(["report", str(root), "--format", "markdown"])
        out = Path(scratch) / "report"
        figures = timed(["report", str(root), "--out", str(out)])
        drawn = len(list(out.rglob("*.png")))
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{runs:,} runs: report (table) {table:.1f} s; report --out {figures:.1f} s, "
          f"{drawn} figures")


if __name__ == "__main__":
    main()
