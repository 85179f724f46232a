"""Aggregation of run directories into the published tables, and comparison with the
published numbers. Reads files only (never a live process), so it works on results copied
from any machine; unreadable or unfinished runs are skipped with a warning.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .runs import read_json

OPT_LABELS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "amsgradw": "AMSGradW",
              "nadamw": "NAdamW", "adamax": "AdaMax", "radamw": "RAdamW", "radam": "RAdam"}
WARMUP_LABELS = {"none": "none", "untuned-linear": "Linear", "untuned-exponential": "Expo",
                 "radam": "RAdam", "linear": "Linear", "exponential": "Expo"}
METRICS = {"best": "best_test_acc", "final": "final_test_acc"}
FORMATS = ("table", "markdown", "csv", "latex")
# settings that identify an experiment cell (everything but the seed and bookkeeping)
IGNORED_FOR_GROUPING = {"seed", "log_interval", "compile", "run_name", "versions", "device",
                        "device_name", "started", "resumed_at_epoch",
                        "delay_schedule_iterations", "iterations_per_epoch"}


def warmup_label(warmup: str, period: int | None) -> str:
    """The papers' names: Linear / Expo for the untuned ones, Linear-10k for tuned ones."""
    label = WARMUP_LABELS.get(warmup, warmup)
    if warmup in ("linear", "exponential") and period is not None:
        label += f"-{period // 1000}k" if period % 1000 == 0 else f"-{period}"
    return label


def setting_label(key: str, config: dict) -> str:
    if key == "opt":
        return OPT_LABELS.get(config["opt"], config["opt"])
    if key == "warmup":
        return warmup_label(config["warmup"], config.get("warmup_period"))
    value = config[key]
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Run:
    directory: Path
    config: dict
    summary: dict

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")


def collect_runs(root: Path, warn: Callable[[str], None]) -> list[Run]:
    """Every finished (complete or diverged) run under `root`."""
    runs = []
    for config_path in sorted(Path(root).rglob("config.json")):
        directory = config_path.parent
        config = read_json(config_path)
        summary = read_json(directory / "summary.json")
        if config is None or "task" not in config:
            warn(f"skipping {directory}: unreadable config.json")
        elif summary is None:
            warn(f"skipping {directory}: no readable summary.json (a partial run)")
        elif summary.get("status") not in ("complete", "diverged"):
            warn(f"skipping {directory}: status {summary.get('status')!r}, not finished")
        else:
            runs.append(Run(directory, config, summary))
    return runs


@dataclass
class Cell:
    errors: list[float] = field(default_factory=list)  # top-1 error (%) of finished runs
    diverged: int = 0
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

    def text(self, compare: bool) -> str:
        if self.n:
            body = f"{self.mean:.2f} ± {self.std:.2f} ({self.n})"
        else:
            body = "-"
        if self.diverged:
            body += f" [{self.diverged} diverged]"
        if not compare:
            return body
        if self.published is None:
            return f"{body} | no published value"
        pub = f"{self.published[0]:.2f} ± {self.published[1]:.2f}"
        if self.difference is None:
            return f"{body} | published {pub}"
        verdict = "within 2σ" if self.within_band else "OUTSIDE 2σ"
        return f"{body} | published {pub}, Δ {self.difference:+.2f} {verdict}"


@dataclass
class Table:
    title: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    column_key: str = "lr"


def varying_settings(runs: list[Run], exclude: set[str]) -> list[str]:
    """Settings (outside `exclude` and bookkeeping) whose values differ between `runs`."""
    keys = {k for r in runs for k in r.config} - IGNORED_FOR_GROUPING - exclude
    return sorted(k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1)


def build_table(title: str, runs: list[Run], rows: tuple[str, ...], column: str, metric: str,
                published: dict | None = None) -> Table:
    """Cells of top-1 error from `metric` accuracy; row labels join the `rows` settings,
    plus any other setting that varies between these runs (so unlike runs never merge)."""
    varying = varying_settings(runs, {*rows, column, "warmup_period"})
    cells: dict[tuple[str, str], Cell] = {}
    for run in runs:
        label = "/".join(setting_label(k, run.config) for k in rows)
        label += "".join(f" {k}={setting_label(k, run.config)}" for k in varying)
        cell = cells.setdefault((label, setting_label(column, run.config)), Cell())
        if run.status == "diverged":
            cell.diverged += 1
        else:
            # rounded: 100 * (1 - acc) leaves float noise (8.999999999999998) in the outputs
            cell.errors.append(round(100.0 * (1.0 - run.summary[METRICS[metric]]), 10))
    for key, values in _published_cells(published or {}):
        cells.setdefault(key, Cell()).published = values
    # rows and columns in order of first appearance (runs first, then published-only cells)
    return Table(title, list(dict.fromkeys(r for r, _ in cells)),
                 list(dict.fromkeys(c for _, c in cells)), cells, column)


def _published_cells(published: dict):
    for label, by_column in published.items():
        for col, (mean, std) in by_column.items():
            yield (label, str(col)), (float(mean), float(std))


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
    grid = [[table.cells.get((r, c), Cell()).text(compare) for c in table.columns]
            for r in table.rows]
    if fmt == "markdown":
        header = [f"{table.column_key} {c}" for c in table.columns]
        lines = [f"**{table.title}**", "", "| | " + " | ".join(header) + " |",
                 "|---|" + "---:|" * len(table.columns)]
        lines += [f"| {r} | " + " | ".join(t.replace("|", "—") for t in row) + " |"
                  for r, row in zip(table.rows, grid)]
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        def tex(text: str) -> str:
            return (text.replace("±", r"$\pm$").replace("σ", r"$\sigma$")
                    .replace("Δ", r"$\Delta$").replace("_", r"\_").replace("|", ";"))
        lines = [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline",
                 " & ".join(["", *(tex(f"{table.column_key} {c}") for c in table.columns)])
                 + r" \\", r"\hline"]
        lines += [" & ".join([tex(r), *map(tex, row)]) + r" \\" for r, row in zip(table.rows, grid)]
        lines += [r"\hline", r"\end{tabular}"]
        return f"% {table.title}\n" + "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}")


def read_csv_rows(path: Path) -> pd.DataFrame:
    """A run's CSV, tolerating a torn last row (a killed writer): bad rows are dropped."""
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame()
    return frame.apply(pd.to_numeric, errors="coerce").dropna()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


def draw_figures(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                 log_x: bool = False) -> list[Path]:
    """The error-bar chart of the table; per group of runs that differ only in warmup
    (and seed), LR curves and test-accuracy curves; one history figure per run."""
    from . import plots

    history = {r.directory: (read_csv_rows(r.directory / "steps.csv"),
                             read_csv_rows(r.directory / "epochs.csv")) for r in runs}
    written = [plots.plot_error_bars(table, out / f"errors_{_slug(table.title)}.{fmt}", fmt)]
    per_group = {"warmup", "warmup_period", "seed"}
    # a group's name shows every setting that tells it apart from the other groups
    naming = varying_settings(runs, per_group | {"task", "opt", "lr"})
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(repr(run.config.get(k)) for k in varying_settings(runs, per_group))
        groups.setdefault(key, []).append(run)
    for members in groups.values():
        first = members[0].config
        name = " ".join([first["task"], setting_label("opt", first), "lr",
                         setting_label("lr", first)]
                        + [f"{k}={setting_label(k, first)}" for k in naming])
        lr_curves, acc_curves = {}, {}
        by_warmup: dict[str, list[Run]] = {}
        for run in sorted(members, key=lambda r: r.config["seed"]):
            by_warmup.setdefault(setting_label("warmup", run.config), []).append(run)
        for label, warm_runs in by_warmup.items():
            steps = history[warm_runs[0].directory][0]
            if len(steps):
                lr_curves[label] = (steps["step"].to_numpy(), steps["lr"].to_numpy())
            epochs = [history[r.directory][1] for r in warm_runs]
            epochs = [h for h in epochs if len(h)]
            if epochs:
                length = min(len(h) for h in epochs)
                acc = pd.concat([h["test_acc"].iloc[:length].reset_index(drop=True)
                                 for h in epochs], axis=1)
                acc_curves[label] = (epochs[0]["epoch"].iloc[:length].to_numpy(),
                                     acc.mean(axis=1).to_numpy(),
                                     acc.std(axis=1, ddof=0).to_numpy())
        if lr_curves:
            written.append(plots.plot_lr_curves(lr_curves, name, out / f"lr_{_slug(name)}.{fmt}",
                                                fmt, log_x))
        if acc_curves:
            written.append(plots.plot_accuracy_curves(
                acc_curves, name, out / f"accuracy_{_slug(name)}.{fmt}", fmt))
    for run in runs:
        title = f"{run.config['task']} / {run.directory.name} ({run.status})"
        written.append(plots.plot_run_history(
            *history[run.directory], title,
            out / "runs" / f"{run.config['task']}__{run.directory.name}.{fmt}", fmt))
    return written
