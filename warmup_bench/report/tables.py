"""Tables of the published shape: cells (mean ± std over seeds of a metric) keyed by row
and column settings, rows and columns in the grid's order (or its [published] table's),
one table per optimizer where the grid asks for it, the published numbers beside the
reproduction where the grid has them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import NAMES, SETTINGS
from ..metrics import Metric, accuracy_split, parse_metric
from ..models.gpt import NORM_LABELS
from ..optim import OPTIMIZERS, WARMUPS
from ..registry import Registry
from ..runs import RunDir
from ..tasks import LONG_WARMUP
from .collect import Run

REPLICATE = "seed"  # the one setting that varies between the runs of one cell
# how a table's header names a setting (the papers' words); others by their key
HEADERS = {"opt": "Optimizer", "warmup": "Warmup", "lr": "α", "model": "Architecture",
           "schedule": "Schedule", "beta2": "β2", "weight_decay": "Weight decay",
           "norm": "Blocks"}


def setting_label(key: str, config: dict) -> str:
    """How the papers write a setting: optimizer and warmup labels from their registry
    entries ("AdamW", "Linear-10k", "None"), numbers in their shortest form."""
    if key == "opt" and config["opt"] in OPTIMIZERS:
        return OPTIMIZERS[config["opt"]].label
    if key == "warmup" and config["warmup"] in WARMUPS:
        return WARMUPS[config["warmup"]].label_for(config.get("warmup_period"))
    if key == "norm":
        return NORM_LABELS.get(config["norm"], config["norm"])
    value = config[key]
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # the metric of runs that have it
    diverged: int = 0
    missing: int = 0  # finished runs without the metric (or that never reached the target)
    published: tuple[float, float] | None = None
    time_to_target: bool = False
    decimals: int = 2
    folders: list[str] = field(default_factory=list)  # the run folders behind the cell
    settings: dict = field(default_factory=dict)  # what the cell's runs share (seed aside)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def total(self) -> int:
        """Every run of the cell: with a value, without one, diverged."""
        return self.n + self.missing + self.diverged

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0 if self.n else math.nan

    @property
    def difference(self) -> float | None:
        return None if self.published is None or not self.n else self.mean - self.published[0]

    @property
    def within_band(self) -> bool | None:
        """Inside the combined two-sigma band of reproduction and publication."""
        if self.difference is None:
            return None
        return abs(self.difference) <= 2 * math.hypot(self.std, self.published[1]) + 1e-9

    def _number(self) -> str:
        d = self.decimals
        return f"{self.mean:.{d}f}" + (f" ± {self.std:.{d}f}" if self.n > 1 else "")

    def parts(self, compare: bool) -> list[str]:
        """The cell's text: the reproduction, then (with `compare`) the comparison with the
        published value; each renderer joins the parts its own way."""
        if self.time_to_target:
            body = f"{self._number()} ({self.n}/{self.total} reached)" if self.n else \
                f"not reached (0/{self.total})"
        else:
            body = f"{self._number()} ({self.n})" if self.n else "-"
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
    row_header: str = ""  # names the row settings: "Optimizer / Warmup"
    metric_title: str = "top-1 error (%)"
    notes: list[str] = field(default_factory=list)  # footnotes under the table
    # each row's settings (its row settings, the others that vary, the warmup period):
    # what the row label was made from, so a table is split by settings, not by parsing
    row_settings: dict[str, dict] = field(default_factory=dict)
    varying: tuple[str, ...] = ()  # settings beyond the row settings that label the rows

    def column_label(self, column: str) -> str:
        """"α = 0.1": a column's header cell."""
        return f"{HEADERS.get(self.column_key, self.column_key)} = {column}"


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


def natural_order(configs: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Configs in the papers' order when no grid gives one: names in their registry's
    order (no warmup first), tuned periods ascending, numbers descending (α = 0.1 first)."""
    kinds = {key: kind for kind, key in NAMES.items()}

    def sort_key(config: dict):
        parts = []
        for key in keys:
            value = config[key]
            if key in kinds:
                names = list(Registry.by_kind[kinds[key]])
                parts.append((names.index(value) if value in names else len(names), str(value)))
            elif isinstance(value, (int, float)):
                parts.append((0, -value))
            else:
                parts.append((0, str(value)))
            if key == "warmup":
                parts.append((0, config.get("warmup_period") or 0))
        return parts
    return sorted(configs, key=sort_key)


def build_table(title: str, runs: list[Run], rows: tuple[str, ...], column: str,
                metric: Metric | str = "best", published: dict | None = None,
                space: list[dict] | None = None,
                warn: Callable[[str], None] | None = None) -> Table:
    """Cells of `metric` over each cell's runs. Row labels join the `rows` settings, plus
    any other setting that varies within `space` (the configs the table may hold, in
    order: a grid's, or by default the runs' in the papers' order), so unlike runs never
    merge. Rows and columns follow `published`'s order, then `space`'s. A published value
    for a cell outside that space is dropped with a warning."""
    metric = parse_metric(metric) if isinstance(metric, str) else metric
    metric = metric.for_runs(runs)  # a target's title: accuracy, or a text task's loss
    space = space if space is not None else \
        natural_order([r.config for r in runs], (*rows, column))
    varying = varying_settings(space, {*rows, column, "warmup_period"})

    row_keys = (*rows, *varying, "warmup_period")
    row_settings: dict[str, dict] = {}

    def key(config: dict) -> tuple[str, str]:
        label = row_label(config, rows, varying)
        row_settings.setdefault(label, {k: config[k] for k in row_keys})
        return label, setting_label(column, config)

    shared = (*rows, column, *varying, "warmup_period")
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        cell = cells.setdefault(key(run.config), Cell())
        cell.folders.append(str(run.directory))
        cell.settings = cell.settings or {k: run.config[k] for k in shared}
        if run.status == "diverged":
            cell.diverged += 1
            continue
        value = metric.value(run)
        if value is None:  # e.g. at-best-val for a run without a val split; not reached
            cell.missing += 1
        else:
            cell.values.append(value)
    for cell in cells.values():
        cell.time_to_target, cell.decimals = metric.time_to_target, metric.decimals
    known = [key(config) for config in space]
    for label, by_column in (published or {}).items():
        for column_value, values in by_column.items():
            if (label, column_value) in known:
                cells.setdefault((label, column_value), Cell()).published = values
            elif warn is not None:
                warn(f"[published] {label!r} / {column_value!r} names no cell of this table; "
                     "ignored.")
    # published first, then the grid's (or the papers') order, then runs outside both
    order = [*((r, c) for r, by in (published or {}).items() for c in by), *known, *cells]
    present_rows, present_columns = {r for r, _ in cells}, {c for _, c in cells}
    return Table(title, [r for r in dict.fromkeys(r for r, _ in order) if r in present_rows],
                 [c for c in dict.fromkeys(c for _, c in order) if c in present_columns],
                 cells, column, " / ".join(HEADERS.get(k, k) for k in rows),
                 _metric_title(metric, runs), long_warmup_notes(runs) + unlearned_notes(runs),
                 row_settings,
                 tuple(varying))


def row_label(config: dict, rows: tuple[str, ...], varying: tuple[str, ...] | list[str]
              ) -> str:
    """A row's label: its row settings joined ("AdamW/Linear-10k"), then any other
    setting that varies (" beta2=0.99")."""
    return "/".join(setting_label(k, config) for k in rows) + \
        "".join(f" {k}={setting_label(k, config)}" for k in varying)


def _metric_title(metric: Metric, runs: list[Run]) -> str:
    if not metric.time_to_target:
        return metric.title
    splits = sorted({accuracy_split(r) for r in runs}) or ["test"]
    word = "loss" if metric.judged_by == "loss" else "accuracy"
    return metric.title.replace(word, f"{'/'.join(splits)} {word}", 1)


def unlearned_notes(runs: list[Run]) -> list[str]:
    """A footnote for the text tasks' runs that ended no better than their corpus's
    unigram entropy (meta.json's): they learned at most how often each character occurs."""
    found = []
    for run in runs:
        loss = run.summary.best_test_loss
        entropy = (run.meta.get("text") or {}).get("unigram_entropy") \
            if run.summary.judged_by == "loss" and run.status == "complete" else None
        if loss is not None and isinstance(entropy, (int, float)) and loss >= entropy:
            found.append((run.directory.name, loss, entropy))
    if not found:
        return []
    entropy = found[0][2]
    return [f"{len(found)} run{'s' if len(found) > 1 else ''} never got below the corpus's "
            f"unigram entropy ({entropy:.3f} nats/char: the loss of knowing only each "
            f"character's frequency), learning nothing more: "
            + ", ".join(f"{name} ({loss:.3f})" for name, loss, _ in found) + "."]


def long_warmup_notes(runs: list[Run]) -> list[str]:
    """A footnote per warmup that lasted longer than LONG_WARMUP of its runs' training."""
    long: dict[tuple[str, int, int], int] = {}
    for run in runs:
        iterations = run.iterations_per_epoch
        if iterations is None or run.cfg.warmup not in WARMUPS:
            continue
        total = iterations * run.cfg.epochs
        length = WARMUPS[run.cfg.warmup].length(run.cfg)
        if length > LONG_WARMUP * total:
            label = WARMUPS[run.cfg.warmup].title
            long[(label, length, total)] = long.get((label, length, total), 0) + 1
    return [f"{label} warmup lasts {length:,} of {total:,} iterations ({count} run"
            f"{'s' if count > 1 else ''}): longer than {LONG_WARMUP:.0%} of training, so its "
            "LR stays below the target for much of the run." for (label, length, total), count
            in long.items()]


def split_table(table: Table, rows: tuple[str, ...], by: str) -> list[tuple[str, Table]]:
    """One table per value of the row setting `by` (e.g. one per optimizer, as
    pytorch_warmup's README shows them), that setting left out of the row labels; each
    with the label of its value of `by`. Rows are grouped by their settings."""
    groups: dict[str, list[str]] = {}
    for row in table.rows:
        groups.setdefault(setting_label(by, table.row_settings[row]), []).append(row)
    rest = tuple(k for k in rows if k != by)

    def short(row: str) -> str:
        return row_label(table.row_settings[row], rest, table.varying)
    header = " / ".join(HEADERS.get(k, k) for k in rest)
    return [(value, Table(f"{table.title} — {value}", [short(r) for r in members],
                          table.columns, {(short(r), c): cell for (r, c), cell
                                          in table.cells.items() if r in members},
                          table.column_key, header, table.metric_title, table.notes,
                          {short(r): table.row_settings[r] for r in members}, table.varying))
            for value, members in groups.items()]


def build_tables(root: Path, runs: list[Run], metric: Metric | str, experiment=None,
                 compare: bool = False, epochs: int | None = None,
                 warn: Callable[[str], None] | None = None) -> list[tuple[Table, list[Run]]]:
    """The grid's tables (restricted to the grid's runs under `root`) when an experiment
    is given, else one table per task in the papers' layout (optimizer / warmup rows, LR
    columns). A run the metric cannot measure (steps-to without its iterations per
    epoch) is left out, said through `warn`."""
    metric = parse_metric(metric) if isinstance(metric, str) else metric
    if metric.needs_iterations:
        for run in (r for r in runs if r.iterations_per_epoch is None):
            if warn is not None:
                warn(f"skipping {run.directory} for {metric.name}: its meta.json records no "
                     "iterations per epoch")
        runs = [r for r in runs if r.iterations_per_epoch is not None]
    if experiment is not None:
        configs = experiment.configs(epochs)
        wanted = {RunDir.of(root, c).path.resolve() for c in configs}
        mine = [r for r in runs if r.directory.resolve() in wanted]
        table = build_table(experiment.title, mine, experiment.rows, experiment.columns,
                            metric, experiment.published if compare else None,
                            [c.to_dict() for c in configs], warn)
        if experiment.split is None:
            return [(table, mine)]
        return [(part, [r for r in mine if setting_label(experiment.split, r.config) == value])
                for value, part in split_table(table, experiment.rows, experiment.split)]
    by_task: dict[str, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.cfg.task, []).append(run)
    return [(build_table(task, task_runs, ("opt", "warmup"), "lr", metric), task_runs)
            for task, task_runs in sorted(by_task.items())]
