"""A run's summary.json: its status and the numbers that summarise it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum


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
    best_val_acc: float | None = None
    best_val_epoch: int | None = None
    test_acc_at_best_val: float | None = None  # the ViT write-up's "Test Acc"
    test_top5_at_best_val: float | None = None
    epochs_done: int = 0
    wall_seconds: float = 0.0
    error: str | None = None
    diverged_at: dict | None = None  # {"epoch": e, "step": s}

    def record(self, row: dict) -> bool:
        """Takes an epoch's row (of epochs.csv) into the summary; True when the epoch is
        the one to keep: the best validation accuracy where there is a val split (the
        checkpoint the ViT write-up tests), else the best test accuracy (pytorch_warmup's
        tables). Replaying epochs.csv's rows gives the summary's numbers back: the CSV is
        the record, and report checks summary.json against it."""
        best_test = self.best_test_acc is None or row["test_acc"] > self.best_test_acc
        if best_test:
            self.best_test_acc, self.best_epoch = row["test_acc"], row["epoch"]
        self.final_test_acc, self.final_val_acc = row["test_acc"], row.get("val_acc")
        self.epochs_done = row["epoch"]
        if "val_acc" not in row:
            return best_test
        best_val = self.best_val_acc is None or row["val_acc"] > self.best_val_acc
        if best_val:
            self.best_val_acc, self.best_val_epoch = row["val_acc"], row["epoch"]
            self.test_acc_at_best_val = row["test_acc"]
            self.test_top5_at_best_val = row.get("test_top5")
        return best_val

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, values: dict) -> Summary:
        """Tolerant of keys it does not know (written by another version); ValueError for
        a value of the wrong type, so a damaged file is never averaged into a table."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known}
        for key in ("best_test_acc", "final_test_acc", "final_val_acc", "best_val_acc",
                    "test_acc_at_best_val", "test_top5_at_best_val", "wall_seconds"):
            value = fields.get(key)
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise ValueError(f"{key} {value!r} is not a number")
            high = math.inf if key == "wall_seconds" else 1.0  # accuracies are fractions
            if value is not None and not 0.0 <= value <= high:
                raise ValueError(f"{key} {value!r} is outside [0, {high:g}]")
        for key in ("best_epoch", "best_val_epoch", "epochs_done"):
            value = fields.get(key)
            if value is not None and not (isinstance(value, int) and
                                          not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{key} {value!r} is not a count")
        return cls(**{**fields, "status": Status(values.get("status"))})


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
