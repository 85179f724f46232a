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
    # what picks the epoch to keep: "accuracy" (the image tasks) or "loss" (the text
    # tasks, whose loss fields below are recorded only then)
    judged_by: str = "accuracy"
    best_test_loss: float | None = None  # nats per label (per character for text)
    best_loss_epoch: int | None = None
    final_test_loss: float | None = None
    best_val_loss: float | None = None
    best_val_loss_epoch: int | None = None
    test_loss_at_best_val: float | None = None
    # what disturbed the run's speed while it trained (another process on the cores): its
    # seconds and images/s are not the machine's; written only when there is one
    notes: list[str] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def record(self, row: dict) -> bool:
        """Takes an epoch's row (of epochs.csv) into the summary; True when the epoch is
        the one to keep: the best validation accuracy where there is a val split (the
        checkpoint the ViT write-up tests), else the best test accuracy (pytorch_warmup's
        tables); for a run judged by its loss, the lowest validation (else test) loss.
        Replaying epochs.csv's rows gives the summary's numbers back: the CSV is the
        record, and report checks summary.json against it."""
        keep = self._record_accuracy(row)
        return self._record_loss(row) if self.judged_by == "loss" else keep

    def _record_loss(self, row: dict) -> bool:
        best_test = self.best_test_loss is None or row["test_loss"] < self.best_test_loss
        if best_test:
            self.best_test_loss, self.best_loss_epoch = row["test_loss"], row["epoch"]
        self.final_test_loss = row["test_loss"]
        if "val_loss" not in row:
            return best_test
        best_val = self.best_val_loss is None or row["val_loss"] < self.best_val_loss
        if best_val:
            self.best_val_loss, self.best_val_loss_epoch = row["val_loss"], row["epoch"]
            self.test_loss_at_best_val = row["test_loss"]
        return best_val

    def _record_accuracy(self, row: dict) -> bool:
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

    def best(self) -> str:
        """The best epoch's number as a line shows it: "92.50%" (accuracy), or "1.880
        nats/char" (a run judged by its loss); "-" before any epoch."""
        if self.judged_by == "loss":
            return "-" if self.best_test_loss is None else f"{self.best_test_loss:.3f} nats/char"
        return "-" if self.best_test_acc is None else f"{100 * self.best_test_acc:.2f}%"

    def headline(self) -> str:
        """One line of the run's result, for the terminal."""
        if self.judged_by == "loss":
            final = self.final_test_loss
            return (f"best held-out loss {self.best()} = {self.best_test_loss / LN2:.3f} "
                    f"bits/char (epoch {self.best_loss_epoch}), final {final:.3f}")
        return (f"best test acc {self.best()} (epoch {self.best_epoch}), final "
                f"{100 * self.final_test_acc:.2f}%")

    def to_dict(self) -> dict:
        values = {**dataclasses.asdict(self), "status": self.status.value}
        if self.judged_by == "accuracy":  # an image task's summary.json, as it always was
            for key in ("judged_by", *LOSS_FIELDS, "best_loss_epoch", "best_val_loss_epoch"):
                del values[key]
        if not self.notes:
            del values["notes"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Summary:
        """Tolerant of keys it does not know (written by another version); ValueError for
        a value of the wrong type, so a damaged file is never averaged into a table."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in values.items() if k in known}
        if fields.get("judged_by", "accuracy") not in JUDGED_BY:
            raise ValueError(f"judged_by {fields['judged_by']!r} is not one of {JUDGED_BY}")
        for key in ("best_test_acc", "final_test_acc", "final_val_acc", "best_val_acc",
                    "test_acc_at_best_val", "test_top5_at_best_val", "wall_seconds",
                    *LOSS_FIELDS):
            value = fields.get(key)
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise ValueError(f"{key} {value!r} is not a number")
            # accuracies are fractions
            high = math.inf if key == "wall_seconds" or key in LOSS_FIELDS else 1.0
            if value is not None and not 0.0 <= value <= high:
                raise ValueError(f"{key} {value!r} is outside [0, {high:g}]")
        for key in ("best_epoch", "best_val_epoch", "epochs_done", "best_loss_epoch",
                    "best_val_loss_epoch"):
            value = fields.get(key)
            if value is not None and not (isinstance(value, int) and
                                          not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{key} {value!r} is not a count")
        notes = fields.get("notes", [])
        if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
            raise ValueError(f"notes {notes!r} is not a list of texts")
        return cls(**{**fields, "notes": list(notes), "status": Status(values.get("status"))})


JUDGED_BY = ("accuracy", "loss")
LN2 = math.log(2)
LOSS_FIELDS = ("best_test_loss", "final_test_loss", "best_val_loss", "test_loss_at_best_val")
# what a replay of epochs.csv must give back (report.collect checks summary.json by them)
RECORDED = ("best_test_acc", "best_epoch", "final_test_acc", "final_val_acc", "best_val_acc",
            "best_val_epoch", "test_acc_at_best_val", "test_top5_at_best_val", *LOSS_FIELDS,
            "best_loss_epoch", "best_val_loss_epoch")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
