"""Aggregation of run directories into the published tables, and comparison with the
published numbers. Reads files only (never a live process), so it works on results copied
from any machine; unreadable or unfinished runs are skipped with a warning.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .config import SETTINGS, ConfigError, TrainConfig, check_choice
from .optim import OPTIMIZERS, WARMUPS
from .runs import CONFIG, METRICS, SUMMARY, RunDir, RunFileError, Status, Summary, find_runs
from .tasks import TASKS, validate
from .warmup import untuned_linear_period

FORMATS = ("table", "markdown", "csv", "latex")
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
class Run:
    run: RunDir
    cfg: TrainConfig
    summary: Summary
    epochs: pd.DataFrame  # epochs.csv, every value checked

    @cached_property
    def config(self) -> dict:
        """The settings as a dict (grouping and labels read them by name)."""
        return self.cfg.to_dict()

    @property
    def directory(self) -> Path:
        return self.run.path

    @property
    def status(self) -> Status:
        return self.summary.status


def _config_problem(cfg: TrainConfig | None) -> str | None:
    """Why a run's config cannot be reported (None when it can): unreadable, or naming a
    task, optimizer, ... this version does not know (so no name from a file reaches a
    path or a label unchecked)."""
    if cfg is None:
        return f"unreadable {CONFIG}"
    try:
        check_choice("task", cfg.task, TASKS)
        validate(cfg)
    except ConfigError as error:
        return f"{CONFIG} is not a valid configuration ({error})"
    return None


def collect_runs(root: Path, warn: Callable[[str], None]) -> list[Run]:
    """Every finished (complete or diverged) run under `root` whose files can be trusted:
    its config valid, its summary's and epochs.csv's numbers in range and consistent."""
    runs = []
    for run in find_runs(root):
        cfg = run.read_config()
        problem = _config_problem(cfg)
        if problem is None:
            try:
                summary = run.load_summary()
                if not summary.status.final:
                    problem = f"status {summary.status.value!r}, not finished"
                else:
                    epochs = run.read_epochs()
                    problem = _summary_problem(summary, epochs)
            except RunFileError as error:
                problem = str(error)
        if problem is not None:
            warn(f"skipping {run.path}: {problem}")
        else:
            runs.append(Run(run, cfg, summary, epochs))
    return runs


def _summary_problem(summary: Summary, epochs: pd.DataFrame) -> str | None:
    """Why the summary disagrees with the epochs it summarises (None when it does not)."""
    if len(epochs) and summary.best_test_acc is not None \
            and summary.best_test_acc != float(epochs["test_acc"].max()):
        return (f"{SUMMARY}'s best_test_acc {summary.best_test_acc!r} is not the best test_acc "
                f"of epochs.csv ({float(epochs['test_acc'].max())!r})")
    return None


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


def long_frame(table: Table) -> pd.DataFrame:
    records = []
    for (row, col), cell in table.cells.items():
        pub = cell.published or (None, None)
        records.append({"row": row, table.column_key: col, "mean": cell.mean, "std": cell.std,
                        "n": cell.n, "diverged": cell.diverged, "published_mean": pub[0],
                        "published_std": pub[1], "difference": cell.difference,
                        "within_2sigma": cell.within_band})
    return pd.DataFrame.from_records(records)


def render(table: Table, fmt: str, compare: bool) -> str:
    """The table as Markdown, CSV or LaTeX text (rich tables are drawn by the CLI)."""
    if fmt == "csv":
        return long_frame(table).to_csv(index=False)
    grid = [[table.cells.get((r, c), Cell()).parts(compare) for c in table.columns]
            for r in table.rows]
    if fmt == "markdown":
        header = [f"{table.column_key} {c}" for c in table.columns]
        lines = [f"**{table.title}**", "", "| | " + " | ".join(header) + " |",
                 "|---|" + "---:|" * len(table.columns)]
        lines += [f"| {r} | " + " | ".join(" — ".join(parts) for parts in row) + " |"
                  for r, row in zip(table.rows, grid)]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        def tex(text: str) -> str:
            return (text.replace("±", r"$\pm$").replace("σ", r"$\sigma$")
                    .replace("Δ", r"$\Delta$").replace("_", r"\_"))
        lines = [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline",
                 " & ".join(["", *(tex(f"{table.column_key} {c}") for c in table.columns)])
                 + r" \\", r"\hline"]
        lines += [" & ".join([tex(r), *(tex("; ".join(parts)) for parts in row)]) + r" \\"
                  for r, row in zip(table.rows, grid)]
        lines += [r"\hline", r"\end{tabular}"]
        return f"% {table.title}\n" + "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


SPEED_FORMATS = ("table", "markdown", "csv")


def speed_frame(runs: list[Run]) -> pd.DataFrame:
    """Per task x device (the device name each run recorded): runs, median seconds per
    epoch and images/s over all their epochs, mean total wall time, mean best and final
    test accuracy (%), and each device's speed-up over the task's slowest device."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        meta = run.run.read_meta()
        device = str(meta.get("device_name") or meta.get("device") or "unknown")
        groups.setdefault((run.cfg.task, device), []).append(run)
    records = []
    for (task, device), members in sorted(groups.items()):
        epochs = pd.concat([m.epochs for m in members], ignore_index=True)
        if not len(epochs) or "seconds" not in epochs:
            continue
        accuracy = {key: [getattr(m.summary, key) for m in members
                          if getattr(m.summary, key) is not None]
                    for key in ("best_test_acc", "final_test_acc")}
        records.append({
            "task": task, "device": device, "runs": len(members),
            "seconds_per_epoch": float(epochs["seconds"].median()),
            "images_per_second": float(epochs["images_per_second"].median()),
            "total_seconds": statistics.fmean(m.summary.wall_seconds for m in members),
            "best_test_acc": 100 * statistics.fmean(accuracy["best_test_acc"])
            if accuracy["best_test_acc"] else math.nan,
            "final_test_acc": 100 * statistics.fmean(accuracy["final_test_acc"])
            if accuracy["final_test_acc"] else math.nan})
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        slowest = frame.groupby("task")["seconds_per_epoch"].transform("max")
        frame["speedup_over_slowest"] = slowest / frame["seconds_per_epoch"]
    return frame


def render_speed(frame: pd.DataFrame, fmt: str):
    """The speed table as rich Table (fmt "table"), Markdown or CSV text."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    header = ["task", "device", "runs", "s / epoch", "images / s", "total s",
              "best acc %", "final acc %", "speed-up"]
    rows = [[r.task, r.device, str(r.runs), f"{r.seconds_per_epoch:.2f}",
             f"{r.images_per_second:,.0f}", f"{r.total_seconds:.1f}", f"{r.best_test_acc:.2f}",
             f"{r.final_test_acc:.2f}", f"{r.speedup_over_slowest:.2f}x"]
            for r in frame.itertuples()]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
    from .terminal import SafeTable as RichTable

    table = RichTable(*header, title="speed per task and device (from the runs' own logs)")
    for row in rows:
        table.add_row(*row)
    return table


def rich_table(table: Table, metric: str, compare: bool):
    """The table for a terminal: one rich Table, a cell's parts on separate lines."""
    from .terminal import SafeTable as RichTable

    out = RichTable(title=f"{table.title} — top-1 error (%) from {metric} test accuracy",
                    show_lines=compare)
    out.add_column("")
    for column in table.columns:
        out.add_column(f"{table.column_key} {column}", justify="right")
    for row in table.rows:
        out.add_row(row, *["\n".join(table.cells[(row, c)].parts(compare))
                           if (row, c) in table.cells else "" for c in table.columns])
    return out


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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


class Band(NamedTuple):
    """One column over seeds, at the keys (steps or epochs) every run logged."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray


def across_seeds(frames: list[pd.DataFrame], key: str, column: str) -> Band | None:
    """`column` of several runs' logs aligned on `key`: mean, std (ddof 0), min, max;
    None when no run logged it (e.g. Adam's ratio for SGD, sharpness when off)."""
    columns = [f.set_index(key)[column] for f in frames
               if len(f) and column in f and f[column].notna().any()]
    if not columns:
        return None
    joined = pd.concat(columns, axis=1, join="inner").dropna()
    values = joined.to_numpy(dtype=float)
    return Band(joined.index.to_numpy(dtype=float), values.mean(1), values.std(1), values.min(1),
                values.max(1))


DIAGNOSTIC_PANELS = ("relative_update", "r_abs_mean", "r_frac_above_half",
                     "angular_update_mean", "sharpness", "preconditioned_sharpness",
                     "sharpness_threshold", "update_norm")


def steps_or_nothing(run: Run, warn: Callable[[str], None]) -> pd.DataFrame:
    """steps.csv, or (damaged: said once) nothing to draw."""
    try:
        return run.run.read_steps()
    except RunFileError as error:
        warn(f"not drawing the steps of {run.directory}: {error}")
        return pd.DataFrame()


def diagnostics_or_nothing(run: Run, warn: Callable[[str], None]) -> pd.DataFrame:
    try:
        return run.run.read_diagnostics()
    except RunFileError as error:
        warn(f"not drawing the diagnostics of {run.directory}: {error}")
        return pd.DataFrame()


def draw_figures(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                 log_x: bool = False, warn: Callable[[str], None] = print) -> list[Path]:
    """The error-bar chart of the table; per group of runs that differ only in warmup
    (and seed): LR curves, test-accuracy curves, and where runs logged diagnostics, the
    diagnostics over the first iterations and the update size over the first
    2 / (1 - beta2) iterations; one history figure per run."""
    from . import plots

    history = {r.directory: (steps_or_nothing(r, warn), r.epochs) for r in runs}
    written = [plots.plot_error_bars(table, out / f"errors_{_slug(table.title)}.{fmt}", fmt)]
    per_group = {"warmup", "warmup_period", "seed"}
    # a group's name shows every setting that tells it apart from the other groups
    configs = [r.config for r in runs]
    naming = varying_settings(configs, per_group | {"task", "opt", "lr"})
    grouping = varying_settings(configs, per_group)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(repr(run.config.get(k)) for k in grouping)
        groups.setdefault(key, []).append(run)
    for members in groups.values():
        first = members[0].config
        name = " ".join([first["task"], setting_label("opt", first), "lr",
                         setting_label("lr", first)]
                        + [f"{k}={setting_label(k, first)}" for k in naming])
        lr_curves, acc_curves, diagnostics = {}, {}, {}
        by_warmup: dict[str, list[Run]] = {}
        for run in sorted(members, key=lambda r: r.config["seed"]):
            by_warmup.setdefault(setting_label("warmup", run.config), []).append(run)
        for label, warm_runs in by_warmup.items():
            steps = history[warm_runs[0].directory][0]
            if len(steps):
                lr_curves[label] = (steps["step"].to_numpy(), steps["lr"].to_numpy())
            accuracy = across_seeds([history[r.directory][1] for r in warm_runs], "epoch",
                                    "test_acc")
            if accuracy is not None:
                acc_curves[label] = (accuracy.x, accuracy.mean, accuracy.std)
            logs = [diagnostics_or_nothing(r, warn) for r in warm_runs]
            bands = {c: across_seeds(logs, "step", c) for c in DIAGNOSTIC_PANELS}
            if any(b is not None for b in bands.values()):
                diagnostics[label] = bands
        if lr_curves:
            written.append(plots.plot_lr_curves(lr_curves, name, out / f"lr_{_slug(name)}.{fmt}",
                                                fmt, log_x))
        if acc_curves:
            written.append(plots.plot_accuracy_curves(
                acc_curves, name, out / f"accuracy_{_slug(name)}.{fmt}", fmt))
        if diagnostics:
            written.append(plots.plot_diagnostics(
                diagnostics, name, out / f"diagnostics_{_slug(name)}.{fmt}", fmt))
            # Ma & Yarats' horizon: the untuned linear warmup's length, 2 / (1 - beta2)
            horizon = untuned_linear_period(first["beta2"]) if first["beta2"] > 0 else None
            sizes = {label: bands["update_norm"] for label, bands in diagnostics.items()
                     if bands["update_norm"] is not None}
            if sizes and horizon:
                written.append(plots.plot_update_size(
                    sizes, horizon, name, out / f"update_size_{_slug(name)}.{fmt}", fmt))
    for run in runs:
        title = f"{run.config['task']} / {run.directory.name} ({run.status})"
        written.append(plots.plot_run_history(
            *history[run.directory], title,
            out / "runs" / f"{_slug(run.cfg.task)}__{_slug(run.directory.name)}.{fmt}", fmt))
    return written
