"""The run folder: the contract between train, sweep and report. This module is the only
place that names a run's files; everything else goes through `RunDir`.

<out>/<task>/<run-name>/ holds:

  config.json    exactly the resolved TrainConfig (what identifies the run, seed included)
  meta.json      bookkeeping: versions, device, threads, start time, resume point, ...
  summary.json   a `Summary`: status, best / final accuracy, epochs done, wall time, error
  steps.csv      STEP_COLUMNS every log interval
  epochs.csv     epoch_columns() once per epoch
  checkpoint.pt  the latest state for --resume
  model.pt       the best epoch's weights (--save-model)

JSON files and checkpoints are replaced atomically; CSVs grow a whole row at a time, so a
killed process never leaves a file that a reader would misparse.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pandas as pd

from .config import SETTINGS, TrainConfig
from .files import atomic_path, write_json_atomic, write_text_atomic

CONFIG, META, SUMMARY = "config.json", "meta.json", "summary.json"
STEPS, EPOCHS = "steps.csv", "epochs.csv"
CHECKPOINT, MODEL = "checkpoint.pt", "model.pt"

STEP_COLUMNS = ["step", "epoch", "lr", "warmup_factor", "loss"]
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                 "images_per_second"]
VAL_COLUMNS = ["val_loss", "val_acc"]


def epoch_columns(has_val: bool) -> list[str]:
    return EPOCH_COLUMNS[:5] + (VAL_COLUMNS if has_val else []) + EPOCH_COLUMNS[5:]


class Status(str, Enum):
    """A run's state as summary.json records it (the values are the JSON strings)."""

    RUNNING = "running"
    COMPLETE = "complete"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """A final result: sweeps never redo it (a diverged run would diverge again)."""
        return self in (Status.COMPLETE, Status.DIVERGED)


@dataclass
class Summary:
    status: Status = Status.RUNNING
    best_test_acc: float | None = None
    best_epoch: int | None = None
    final_test_acc: float | None = None
    final_val_acc: float | None = None
    epochs_done: int = 0
    wall_seconds: float = 0.0
    error: str | None = None
    diverged_at: dict | None = None  # {"epoch": e, "step": s}

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, values: dict) -> Summary:
        """Tolerant of keys it does not know (written by another version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known}
        return cls(**{**fields, "status": Status(values.get("status"))})


def run_name(cfg: TrainConfig) -> str:
    """Readable prefix plus a hash of the whole config: different configs never collide."""
    period = f"-p{cfg.warmup_period}" if cfg.warmup_period is not None else ""
    prefix = (f"{cfg.opt}-{cfg.warmup}{period}-{cfg.schedule}-lr{cfg.lr:g}-b{cfg.beta2:g}"
              f"-s{cfg.seed}")
    return f"{prefix}-{config_hash(cfg)[:8]}"


def config_hash(cfg: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()


class CsvLog:
    """An append-only CSV: the header once, then whole rows, flushed as they are written."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists() or path.stat().st_size == 0:
            path.write_text(",".join(columns) + "\n")
        self.rows = _count_rows(path)  # data rows in the file (checkpoints record it)
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


def _count_rows(path: Path) -> int:
    """Complete data rows (a torn last line, from a kill mid-write, is not counted)."""
    return max(0, path.read_text().count("\n") - 1) if path.exists() else 0


def _truncate_rows(path: Path, rows: int) -> None:
    """Keeps the header and the first `rows` rows (drops what a resumed run will redo)."""
    if path.exists():
        lines = path.read_text().split("\n")
        write_text_atomic(path, "\n".join(lines[: rows + 1]) + "\n")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> pd.DataFrame:
    """A run's CSV, tolerating a torn last row (a killed writer): bad rows are dropped."""
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame()
    return frame.apply(pd.to_numeric, errors="coerce").dropna()


@dataclass(frozen=True)
class RunDir:
    """One run's folder and every file in it."""

    path: Path

    @classmethod
    def of(cls, out: Path, cfg: TrainConfig) -> RunDir:
        return cls(Path(out) / cfg.task / run_name(cfg))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def steps_path(self) -> Path:
        return self.path / STEPS

    @property
    def epochs_path(self) -> Path:
        return self.path / EPOCHS

    def has_files(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    # ---- lifecycle (train) -----------------------------------------------------------

    def start_fresh(self) -> None:
        """Creates the folder; removes what an earlier attempt of this run left behind."""
        self.path.mkdir(parents=True, exist_ok=True)
        for name in (STEPS, EPOCHS, CHECKPOINT, MODEL):
            (self.path / name).unlink(missing_ok=True)

    def rewind(self, rows: dict[str, int]) -> None:
        """Back to a checkpoint: drops the CSV rows logged after it (they will be redone)."""
        _truncate_rows(self.path / STEPS, rows["steps"])
        _truncate_rows(self.path / EPOCHS, rows["epochs"])

    def open_logs(self, has_val: bool) -> tuple[CsvLog, CsvLog]:
        return (CsvLog(self.path / STEPS, STEP_COLUMNS),
                CsvLog(self.path / EPOCHS, epoch_columns(has_val)))

    def write_config(self, cfg: TrainConfig) -> None:
        write_json_atomic(self.path / CONFIG, cfg.to_dict())

    def write_meta(self, meta: dict) -> None:
        write_json_atomic(self.path / META, meta)

    def write_summary(self, summary: Summary) -> None:
        write_json_atomic(self.path / SUMMARY, summary.to_dict())

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def save_checkpoint(self, state: dict) -> None:
        _save_torch(self.path / CHECKPOINT, state)

    def load_checkpoint(self, map_location) -> dict:
        import torch

        return torch.load(self.path / CHECKPOINT, map_location=map_location, weights_only=True)

    def save_model(self, state_dict: dict) -> None:
        _save_torch(self.path / MODEL, state_dict)

    # ---- reading back (report, sweep) -----------------------------------------------

    def read_summary(self) -> Summary | None:
        values = _read_json(self.path / SUMMARY)
        try:
            return Summary.from_dict(values)
        except (TypeError, ValueError, AttributeError):
            return None

    def read_config(self) -> TrainConfig | None:
        """The run's TrainConfig. Folders written before meta.json existed kept bookkeeping
        in config.json too: only the settings are taken from it."""
        values = _read_json(self.path / CONFIG)
        if not isinstance(values, dict):
            return None
        try:
            return TrainConfig.from_dict({k: v for k, v in values.items() if k in SETTINGS})
        except (TypeError, ValueError):
            return None

    def read_meta(self) -> dict:
        """meta.json, or the bookkeeping an older config.json held."""
        meta = _read_json(self.path / META)
        if isinstance(meta, dict):
            return meta
        legacy = _read_json(self.path / CONFIG)
        return {k: v for k, v in legacy.items() if k not in SETTINGS} \
            if isinstance(legacy, dict) else {}

    def read_steps(self) -> pd.DataFrame:
        return _read_csv(self.path / STEPS)

    def read_epochs(self) -> pd.DataFrame:
        return _read_csv(self.path / EPOCHS)


def _save_torch(path: Path, state: dict) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def find_runs(root: Path) -> Iterator[RunDir]:
    """Every folder under `root` that holds a run's config, in a stable order."""
    for config_path in sorted(Path(root).rglob(CONFIG)):
        yield RunDir(config_path.parent)
