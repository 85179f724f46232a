"""What a report's cells measure, per run: the metric registry. Each entry carries its
name, how a run's value is read, whether higher or lower is better, its label and its
help; `report --metric`, a grid's `[table] metric`, the tables, the figures and the
`--help` text all read it from here.

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
from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:  # a run as report.collect reads it
    from .report.collect import Run


@dataclass(frozen=True)
class MetricEntry:
    """One kind of metric: `read(run, target)` gives a run's value (None: not recorded,
    or the target not reached); a time-to-target kind takes a target accuracy (`NAME:ACC`)."""

    name: str
    label: str  # what a table of it shows ("{target}": the target accuracy, in %)
    read: Callable[[Run, float | None], float | None]
    help: str  # for --help: what it measures
    higher_is_better: bool = False
    takes_target: bool = False
    decimals: int = 2
    # counts with meta.json's iterations per epoch: a run without it cannot be measured
    # (report says so and leaves it out, rather than count it as never reaching the target)
    needs_iterations: bool = False


@dataclass(frozen=True)
class Metric:
    """A metric as a table uses it: a registry entry, with its target where it takes one.
    Everything else (title, decimals, direction) is the entry's."""

    name: str  # as given to --metric
    entry: MetricEntry
    target: float | None = None  # a time-to-target metric's accuracy (0..1)

    def value(self, run: Run) -> float | None:
        """The run's value: None when not recorded, or the target not reached."""
        return self.entry.read(run, self.target)

    @property
    def title(self) -> str:
        """What a table of it shows."""
        return self.entry.label.format(target=f"{100 * (self.target or 0):g}")

    @property
    def decimals(self) -> int:
        return self.entry.decimals

    @property
    def needs_iterations(self) -> bool:
        return self.entry.needs_iterations

    @property
    def higher_is_better(self) -> bool:
        return self.entry.higher_is_better

    @property
    def time_to_target(self) -> bool:
        return self.target is not None


def summary_error(field: str) -> Callable[[Run, float | None], float | None]:
    """100 - the summary's accuracy `field`, in %."""
    def error(run: Run, target: float | None = None) -> float | None:
        accuracy = getattr(run.summary, field)
        # rounded: 100 * (1 - acc) leaves float noise (8.999999999999998) in the outputs
        return None if accuracy is None else round(100.0 * (1.0 - accuracy), 10)
    return error


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


def epochs_to(run: Run, target: float) -> float | None:
    epoch = reached_at(run, target)
    return None if epoch is None else float(epoch)


def steps_to(run: Run, target: float) -> float | None:
    epoch, iterations = reached_at(run, target), run.iterations_per_epoch
    return None if epoch is None or iterations is None else float(epoch * iterations)


def seconds_to(run: Run, target: float) -> float | None:
    """Training seconds of each epoch up to the target's: its images over its speed."""
    epoch, iterations = reached_at(run, target), run.iterations_per_epoch
    if epoch is None or iterations is None:
        return None
    done = run.epochs[run.epochs["epoch"] <= epoch]
    images = iterations * run.cfg.batch_size
    return float((images / done["images_per_second"]).sum())


ENTRIES = [
    MetricEntry("best", "top-1 error (%) from best test accuracy", summary_error("best_test_acc"),
                "best test accuracy over epochs"),
    MetricEntry("final", "top-1 error (%) from final test accuracy",
                summary_error("final_test_acc"), "the last epoch's test accuracy"),
    MetricEntry("at-best-val", "top-1 error (%) from test accuracy at the best-validation "
                "epoch", summary_error("test_acc_at_best_val"),
                "test accuracy of the best-validation epoch"),
    MetricEntry("steps-to", "optimizer steps to {target}% accuracy", steps_to,
                "optimizer steps until the accuracy first reaches ACC %", takes_target=True,
                decimals=0, needs_iterations=True),
    MetricEntry("epochs-to", "epochs to {target}% accuracy", epochs_to,
                "epochs until then", takes_target=True, decimals=1),
    MetricEntry("seconds-to", "training seconds to {target}% accuracy", seconds_to,
                "training seconds until then", takes_target=True, decimals=1,
                needs_iterations=True),
]
METRICS = {entry.name: entry for entry in ENTRIES}
# --metric's forms, as its help and its error list them
FORMS = [e.name + (":ACC" if e.takes_target else "") for e in ENTRIES]


def metric_help() -> str:
    """--metric's help: every form and what it measures."""
    return ", ".join(f"{form} ({entry.help})" for form, entry in zip(FORMS, ENTRIES)) + "."


def parse_metric(name: str) -> Metric:
    """The metric `name` names; ConfigError (one line, the valid forms) otherwise."""
    kind, colon, target = name.partition(":")
    entry = METRICS.get(kind)
    if entry is not None and not entry.takes_target and not colon:
        return Metric(name, entry)
    if entry is not None and entry.takes_target:
        # ASCII digits only: Python's float() also reads other scripts' digits ("٥٠")
        plain = re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", target, re.ASCII)
        accuracy = float(target) if plain else math.nan
        if 0 < accuracy <= 100:
            return Metric(name, entry, accuracy / 100)
        raise ConfigError(f"--metric {name!r}: the target must be an accuracy in (0, 100] "
                          f"percent in ASCII digits, e.g. {kind}:85.")
    raise ConfigError(f"--metric {name!r} is not valid; choose from: {', '.join(FORMS)}.")
