"""Tables of the published shape: cells of top-1 error (mean ± std over seeds) keyed by
row and column settings, with the published numbers beside them where a grid has them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import SETTINGS
from ..optim import OPTIMIZERS, WARMUPS
from ..runs import METRICS, RunDir
from .collect import Run

REPLICATE = "seed"  # the one setting that varies between the runs of one cell


def setting_label(key: str, config: dict) -> str:
    """How the papers write a setting: optimizer and warmup labels from their registry
    entries ("AdamW", "Linear-10k"), numbers in their shortest form."""
    if key == "opt" and config["opt"] in OPTIMIZERS:
        return OPTIMIZERS[config["opt"]].label
    if key == "warmup" and config["warmup"] in WARMUPS:
        return WARMUPS[config["warmup"]].label_for(config.get("warmup_period"))
    value = config[key]
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Cell:
    errors: list[float] = field(default_factory=list)  # top-1 error (%) of finished runs
    diverged: int = 0
    missing: int = 0  # finished runs that did not record the metric
    published: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        return len(self.errors)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.errors) if self.errors else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.errors) if self.n > 1 else 0.0 if self.n else math.nan

    @property
    def difference(self) -> float | None:
        return None if self.published is None or not self.n else self.mean - self.published[0]

    @property
    def within_band(self) -> bool | None:
        """Inside the combined two-sigma band of reproduction and publication."""
        if self.difference is None:
            return None
        return abs(self.difference) <= 2 * math.hypot(self.std, self.published[1]) + 1e-9

    def parts(self, compare: bool) -> list[str]:
        """The cell's text: the reproduction, then (with `compare`) the comparison with the
        published value; each renderer joins the parts its own way."""
        body = f"{self.mean:.2f} ± {self.std:.2f} ({self.n})" if self.n else "-"
        if self.diverged:
            body += f" [{self.diverged} diverged]"
        if self.missing:
            body += f" [{self.missing} without this metric]"
        if not compare:
            return [body]
        if self.published is None:
            return [body, "no published value"]
        pub = f"{self.published[0]:.2f} ± {self.published[1]:.2f}"
        if self.difference is None:
            return [body, f"published {pub}"]
        verdict = "within 2σ" if self.within_band else "OUTSIDE 2σ"
        return [body, f"published {pub}, Δ {self.difference:+.2f} {verdict}"]


@dataclass
class Table:
    title: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    column_key: str = "lr"


def varying_settings(configs: list[dict], exclude: set[str]) -> list[str]:
    """Settings (outside `exclude` and the seed) whose values differ between `configs`.
    `plugins` counts only where it tells otherwise equal configs apart (two versions of a
    plugin): elsewhere it follows from the names, which the label shows already."""
    keys = set(SETTINGS) - {REPLICATE} - exclude

    def distinct(names) -> int:
        return len({repr([c[k] for k in sorted(names)]) for c in configs})
    varying = [k for k in keys - {"plugins"} if distinct([k]) > 1]
    settings = set(SETTINGS) - {REPLICATE}
    if "plugins" in keys and distinct(settings) > distinct(settings - {"plugins"}):
        varying.append("plugins")
    return sorted(varying)


def build_table(title: str, runs: list[Run], rows: tuple[str, ...], column: str, metric: str,
                published: dict | None = None, space: list[dict] | None = None,
                warn: Callable[[str], None] | None = None) -> Table:
    """Cells of top-1 error from `metric` accuracy. Row labels join the `rows` settings,
    plus any other setting that varies within `space` (the configs the table may hold:
    a grid's, or by default the runs'), so unlike runs never merge. A published value for
    a cell outside that space is dropped with a warning."""
    space = space if space is not None else [r.config for r in runs]
    varying = varying_settings(space, {*rows, column, "warmup_period"})

    def key(config: dict) -> tuple[str, str]:
        label = "/".join(setting_label(k, config) for k in rows)
        label += "".join(f" {k}={setting_label(k, config)}" for k in varying)
        return label, setting_label(column, config)

    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        cell = cells.setdefault(key(run.config), Cell())
        if run.status == "diverged":
            cell.diverged += 1
        else:
            # rounded: 100 * (1 - acc) leaves float noise (8.999999999999998) in the outputs
            accuracy = getattr(run.summary, METRICS[metric])
            if accuracy is None:  # e.g. at-best-val for a run without a val split
                cell.missing += 1
            else:
                cell.errors.append(round(100.0 * (1.0 - accuracy), 10))
    known = {key(config) for config in space}
    for label, by_column in (published or {}).items():
        for column_value, values in by_column.items():
            if (label, column_value) in known:
                cells.setdefault((label, column_value), Cell()).published = values
            elif warn is not None:
                warn(f"[published] {label!r} / {column_value!r} names no cell of this table; "
                     "ignored.")
    # rows and columns in order of first appearance (runs first, then published-only cells)
    return Table(title, list(dict.fromkeys(r for r, _ in cells)),
                 list(dict.fromkeys(c for _, c in cells)), cells, column)


def build_tables(root: Path, runs: list[Run], metric: str, experiment=None,
                 compare: bool = False, epochs: int | None = None,
                 warn: Callable[[str], None] | None = None) -> list[tuple[Table, list[Run]]]:
    """The grid's table (restricted to the grid's runs under `root`) when an experiment is
    given, else one table per task in the papers' layout (optimizer/warmup rows, LR
    columns)."""
    if experiment is not None:
        configs = experiment.configs(epochs)
        wanted = {RunDir.of(root, c).path.resolve() for c in configs}
        mine = [r for r in runs if r.directory.resolve() in wanted]
        return [(build_table(experiment.title, mine, experiment.rows, experiment.columns,
                             metric, experiment.published if compare else None,
                             [c.to_dict() for c in configs], warn), mine)]
    by_task: dict[str, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.cfg.task, []).append(run)
    return [(build_table(task, task_runs, ("opt", "warmup"), "lr", metric), task_runs)
            for task, task_runs in sorted(by_task.items())]
