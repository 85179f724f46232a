"""The run directory: the contract between train, sweep and report.

<out>/<task>/<run-name>/ holds config.json, steps.csv, epochs.csv, summary.json and
checkpoint.pt. JSON files are replaced atomically; CSVs grow a whole row at a time, so
a killed process never leaves a file that a reader would misparse.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from .files import write_json_atomic
from .tasks import TrainConfig

STEP_COLUMNS = ["step", "epoch", "lr", "warmup_factor", "loss"]
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                 "images_per_second"]
VAL_COLUMNS = ["val_loss", "val_acc"]
STATUSES = ("running", "complete", "diverged", "failed", "interrupted")


def run_name(cfg: TrainConfig) -> str:
    """Readable prefix plus a hash of the whole config: different configs never collide."""
    period = f"-p{cfg.warmup_period}" if cfg.warmup_period is not None else ""
    prefix = (f"{cfg.opt}-{cfg.warmup}{period}-{cfg.schedule}-lr{cfg.lr:g}-b{cfg.beta2:g}"
              f"-s{cfg.seed}")
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{prefix}-{digest[:8]}"


def run_dir(out: Path, cfg: TrainConfig) -> Path:
    return Path(out) / cfg.task / run_name(cfg)


def epoch_columns(has_val: bool) -> list[str]:
    return EPOCH_COLUMNS[:5] + (VAL_COLUMNS if has_val else []) + EPOCH_COLUMNS[5:]


class CsvLog:
    """An append-only CSV: the header once, then whole rows, flushed as they are written."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists() or path.stat().st_size == 0:
            path.write_text(",".join(columns) + "\n")
        self.rows = count_rows(path)  # data rows in the file (checkpoints record it)
        self.handle = path.open("a", newline="")
        self.writer = csv.writer(self.handle, lineterminator="\n")

    def append(self, row: dict) -> None:
        self.writer.writerow([_format(row[c]) for c in self.columns])
        self.handle.flush()
        self.rows += 1

    def close(self) -> None:
        self.handle.close()


def _format(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact round trip


def count_rows(path: Path) -> int:
    """Complete data rows (a torn last line, from a kill mid-write, is not counted)."""
    if not path.exists():
        return 0
    text = path.read_text()
    return max(0, text.count("\n") - 1)


def truncate_rows(path: Path, rows: int) -> None:
    """Keeps the header and the first `rows` rows (drops what a resumed run will redo)."""
    if not path.exists():
        return
    lines = path.read_text().split("\n")
    keep = "\n".join(lines[: rows + 1]) + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(keep)
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_summary(directory: Path, summary: dict) -> None:
    write_json_atomic(directory / "summary.json", summary)


def read_summary(directory: Path) -> dict | None:
    return read_json(directory / "summary.json")
