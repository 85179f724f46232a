"""Finished run folders written by hand, in the real on-disk format and true to it: the
report believes a folder only when its summary.json and meta.json agree with its CSVs (the
record) and its name with its config, so a hand-written one must agree as a trained one
does. Tests that check what the report refuses damage such a folder afterwards."""

from __future__ import annotations

import json
import math
from pathlib import Path

from warmup_bench.runs import RunDir, Summary

EPOCH_HEADER = "epoch,train_loss,train_acc,test_loss,test_acc"


def write_finished_run(root: Path, cfg, test_accs: list[float], status: str = "complete",
                       val_accs: list[float] | None = None, iterations: int = 44,
                       seconds: float = 2.0, images_per_second: float | None = None,
                       wall_seconds: float | None = None, meta: dict | None = None,
                       top5: bool = True) -> Path:
    """The folder of `cfg`'s run under `root`, whose epochs reached `test_accs` (and
    `val_accs`): a complete run that lists fewer epochs than its config asks for repeats
    its last one (best, final and the first epoch reaching any accuracy stay as given); a
    diverged one diverges in the epoch after the last listed. summary.json is what
    training records from those rows (its wall time a second more than its epochs');
    steps.csv holds every log step of those epochs."""
    if status == "complete" and len(test_accs) < cfg.epochs:
        test_accs = test_accs + [test_accs[-1]] * (cfg.epochs - len(test_accs))
        if val_accs:
            val_accs = val_accs + [val_accs[-1]] * (cfg.epochs - len(val_accs))
    run = RunDir.of(root, cfg)
    run.path.mkdir(parents=True)
    run.write_config(cfg)
    run.write_meta({"iterations_per_epoch": iterations, "delay_schedule_iterations": 0,
                    **(meta or {})})
    speed = images_per_second or iterations * cfg.batch_size / seconds
    columns = EPOCH_HEADER + (",test_top5" if top5 else "") + \
        (",val_loss,val_acc,val_top5" if val_accs else "") + ",seconds,images_per_second\n"
    summary = Summary()
    lines = []
    for epoch, acc in enumerate(test_accs, 1):
        row = {"epoch": epoch, "test_acc": acc, "test_top5": 1.0 if top5 else None}
        if val_accs:
            row["val_acc"] = val_accs[epoch - 1]
        summary.record(row)
        lines.append(f"{epoch},1.0,0.5,1.0,{acc!r}" + (",1.0" if top5 else "") +
                     (f",1.0,{val_accs[epoch - 1]!r},1.0" if val_accs else "") +
                     f",{seconds!r},{speed!r}\n")
    run.epochs_path.write_text(columns + "".join(lines))
    done = len(test_accs) * iterations
    run.steps_path.write_text("step,epoch,lr,warmup_factor,loss\n" + "".join(
        f"{s},{math.ceil(s / iterations)},0.001,1.0,1.0\n"
        for s in range(1, done + 1, cfg.log_interval)))
    wall = wall_seconds if wall_seconds is not None else seconds * len(test_accs) + 1.0
    values = {**summary.to_dict(), "status": status, "wall_seconds": wall}
    if status == "diverged":
        values["diverged_at"] = {"epoch": len(test_accs) + 1, "step": done + 1}
        values["error"] = f"loss became nan at step {done + 1}"
    (run.path / "summary.json").write_text(json.dumps(values))
    return run.path
