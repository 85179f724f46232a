"""What a table's cells measure, per run: top-1 error from the summary's accuracies (the
papers' tables), or the time a run took to reach a target accuracy (AlgoPerf's measure).

  best          100 - best test accuracy over the epochs (pytorch_warmup, Ma & Yarats)
  final         100 - the last epoch's test accuracy
  at-best-val   100 - the test accuracy of the best-validation epoch (the ViT write-up)
  steps-to:ACC  optimizer steps (iterations) until the accuracy first reaches ACC %
  epochs-to:ACC epochs until then
  seconds-to:ACC training seconds until then (evaluation not counted, as in AlgoPerf)

The time-to-target metrics read epochs.csv, so they resolve to the epoch: the accuracy is
measured once per epoch, on the val split where the run has one, else on test.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ConfigError
from ..runs import METRICS
from .collect import Run

TARGET_KINDS = {"steps-to": "steps", "epochs-to": "epochs", "seconds-to": "seconds"}


@dataclass(frozen=True)
class Metric:
    name: str  # as given to --metric
    title: str  # what a table of it shows
    value: Callable[[Run], float | None]  # None: not recorded, or the target not reached
    target: float | None = None  # a time-to-target metric's accuracy (0..1)
    decimals: int = 2
    # counts with meta.json's iterations per epoch: a run without it cannot be measured
    # (report says so and leaves it out, rather than count it as never reaching the target)
    needs_iterations: bool = False

    @property
    def time_to_target(self) -> bool:
        return self.target is not None


def error_metric(name: str) -> Metric:
    field = METRICS[name]
    what = {"best": "best test accuracy", "final": "final test accuracy",
            "at-best-val": "test accuracy at the best-validation epoch"}[name]

    def error(run: Run) -> float | None:
        accuracy = getattr(run.summary, field)
        # rounded: 100 * (1 - acc) leaves float noise (8.999999999999998) in the outputs
        return None if accuracy is None else round(100.0 * (1.0 - accuracy), 10)
    return Metric(name, f"top-1 error (%) from {what}", error)


def accuracy_split(run: Run) -> str:
    """The split a time-to-target metric reads: val where the run has one, else test."""
    return "val" if "val_acc" in run.epochs else "test"


def reached_at(run: Run, target: float) -> int | None:
    """The first epoch whose accuracy is at least `target` (None: no epoch reached it)."""
    column = f"{accuracy_split(run)}_acc"
    if column not in run.epochs:  # no epoch logged
        return None
    hits = run.epochs[run.epochs[column] >= target]
    return int(hits["epoch"].iloc[0]) if len(hits) else None


def time_metric(kind: str, target: float, name: str) -> Metric:
    def time(run: Run) -> float | None:
        epoch = reached_at(run, target)
        if epoch is None:
            return None
        if kind == "epochs":
            return float(epoch)
        iterations = run.iterations_per_epoch
        if iterations is None:
            return None
        if kind == "steps":
            return float(epoch * iterations)
        # training seconds of each epoch: its images over its training speed
        done = run.epochs[run.epochs["epoch"] <= epoch]
        images = iterations * run.cfg.batch_size
        return float((images / done["images_per_second"]).sum())
    unit = {"steps": "optimizer steps", "epochs": "epochs", "seconds": "training seconds"}
    return Metric(name, f"{unit[kind]} to {100 * target:g}% accuracy", time, target,
                  0 if kind == "steps" else 1, needs_iterations=kind != "epochs")


def parse_metric(name: str) -> Metric:
    """The metric `name` names; ConfigError (one line, the valid forms) otherwise."""
    if name in METRICS:
        return error_metric(name)
    kind, _, target = name.partition(":")
    if kind in TARGET_KINDS:
        # ASCII digits only: Python's float() also reads other scripts' digits ("٥٠")
        plain = re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", target, re.ASCII)
        accuracy = float(target) if plain else math.nan
        if 0 < accuracy <= 100:
            return time_metric(TARGET_KINDS[kind], accuracy / 100, name)
        raise ConfigError(f"--metric {name!r}: the target must be an accuracy in (0, 100] "
                          f"percent in ASCII digits, e.g. {kind}:85.")
    raise ConfigError(f"--metric {name!r} is not valid; choose from: {', '.join(METRICS)}, "
                      "steps-to:ACC, epochs-to:ACC, seconds-to:ACC.")
