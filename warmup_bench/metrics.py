"""What a report's cells measure, per run: the metric registry. Each entry carries its
name, how a run's value is read, whether higher or lower is better, its label and its
help; `report --metric`, a grid's `[table] metric`, the tables, the figures and the
`--help` text all read it from here.

  best          100 - best test accuracy over the epochs (pytorch_warmup, Ma & Yarats)
  final         100 - the last epoch's test accuracy
  at-best-val   100 - the test accuracy of the best-validation epoch (the ViT write-up)
  loss          the lowest held-out loss over the evaluations, nats per label (per
                character for the text tasks: their main metric)
  final-loss    the last evaluation's held-out loss
  bpc           bits per character: the lowest held-out loss / ln 2
  ppl           perplexity: exp(the lowest held-out loss)
  steps-to:T    optimizer steps (iterations) until the run first reaches target T: an
                accuracy of T % for the image tasks, a held-out loss of T or less for the
                text tasks (whose runs are judged by their loss)
  epochs-to:T   epochs until then
  seconds-to:T  training seconds until then (evaluation not counted, as in AlgoPerf)

Every cell holds a value where lower is better: an error, a loss, a count. The
time-to-target metrics read epochs.csv, so they resolve to the epoch: the run is measured
once per epoch, on the val split where it has one, else on test.
"""

from __future__ import annotations

import dataclasses
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
    or the target not reached); a time-to-target kind takes a target (`NAME:T`)."""

    name: str
    label: str  # what a table of it shows ("{target}": the target, "93% accuracy")
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
    target: float | None = None  # a time-to-target metric's target, as given (85, 1.9)
    # what the target is of (for the title): an accuracy in %, or a loss (the text tasks)
    judged_by: str = "accuracy"

    def value(self, run: Run) -> float | None:
        """The run's value: None when not recorded, or the target not reached."""
        return self.entry.read(run, self.target)

    @property
    def title(self) -> str:
        """What a table of it shows."""
        return self.entry.label.format(target=self.target_text)

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"loss {self.target:g}" if self.judged_by == "loss" else \
            f"{self.target:g}% accuracy"

    def for_runs(self, runs: list) -> Metric:
        """The metric titled for what `runs` (one task's) are judged by."""
        judged = {run.summary.judged_by for run in runs}
        return dataclasses.replace(self, judged_by=judged.pop()) if len(judged) == 1 else self

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


def summary_loss(field: str, transform: Callable[[float], float] = float
                 ) -> Callable[[Run, float | None], float | None]:
    """The summary's loss `field` (nats), through `transform` (to bits, to perplexity)."""
    def read(run: Run, target: float | None = None) -> float | None:
        loss = getattr(run.summary, field)
        return None if loss is None else transform(loss)
    return read


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
    """The first epoch that reached `target`: an accuracy of at least `target` %, or for a
    run judged by its loss a loss of at most `target` (None: no epoch reached it)."""
    by_loss = run.summary.judged_by == "loss"
    column = f"{accuracy_split(run)}_{'loss' if by_loss else 'acc'}"
    if column not in run.epochs:  # no epoch logged
        return None
    values = run.epochs[column]
    hits = run.epochs[values <= target if by_loss else values >= target / 100]
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
    MetricEntry("loss", "held-out loss (nats/char), the lowest over evaluations",
                summary_loss("best_test_loss"), "the lowest held-out loss, nats per label",
                decimals=3),
    MetricEntry("final-loss", "held-out loss (nats/char) at the last evaluation",
                summary_loss("final_test_loss"), "the last evaluation's held-out loss",
                decimals=3),
    MetricEntry("bpc", "bits per character (the lowest held-out loss / ln 2)",
                summary_loss("best_test_loss", lambda loss: loss / math.log(2)),
                "bits per character: the lowest held-out loss / ln 2", decimals=3),
    MetricEntry("ppl", "perplexity (exp of the lowest held-out loss)",
                summary_loss("best_test_loss", math.exp), "perplexity: exp(the lowest "
                "held-out loss)", decimals=2),
    MetricEntry("steps-to", "optimizer steps to {target}", steps_to,
                "optimizer steps until the run first reaches T: T % accuracy, or a loss of "
                "T for the text tasks", takes_target=True, decimals=0, needs_iterations=True),
    MetricEntry("epochs-to", "epochs to {target}", epochs_to,
                "epochs until then", takes_target=True, decimals=1),
    MetricEntry("seconds-to", "training seconds to {target}", seconds_to,
                "training seconds until then", takes_target=True, decimals=1,
                needs_iterations=True),
]
METRICS = {entry.name: entry for entry in ENTRIES}
# --metric's forms, as its help and its error list them
FORMS = [e.name + (":T" if e.takes_target else "") for e in ENTRIES]


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
        value = float(target) if plain else math.nan
        if 0 < value <= 100:
            return Metric(name, entry, value)
        raise ConfigError(f"--metric {name!r}: the target must be a number in (0, 100] in "
                          f"ASCII digits: an accuracy in percent (e.g. {kind}:85), or a "
                          f"held-out loss for the text tasks (e.g. {kind}:1.9).")
    raise ConfigError(f"--metric {name!r} is not valid; choose from: {', '.join(FORMS)}.")
