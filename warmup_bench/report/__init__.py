"""From run folders to the published tables, their renderings and figures.

  collect.py   which runs of a results folder can be reported (the rest skipped, said why)
  tables.py    cells of top-1 error keyed by row and column settings; published numbers
  render.py    Markdown, CSV, LaTeX, rich; the speed table
  figures.py   the figures a report draws from its runs
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import SETTINGS, ConfigError
from ..experiments import Experiment, PluginConsent, load_experiment
from ..files import OutputError, write_text_atomic
from ..metrics import METRICS, Metric, parse_metric
from ..runs import RunDir
from .collect import Run, collect_runs, recomputed_view
from .figures import RUN_FIGURES, across_seeds, draw_all, draw_figures, iter_figure_jobs
from .page import report_page
from .render import (
    FORMATS,
    SPEED_FORMATS,
    cell_records,
    long_frame,
    render,
    render_speed,
    rich_table,
    speed_frame,
    tables_json,
)
from .tables import Cell, Table, build_table, build_tables, setting_label, varying_settings

SUFFIXES = {"table": "md", "markdown": "md", "csv": "csv", "latex": "tex", "json": "json"}
PAGE = "report.html"  # beside the table file: the whole report as one page
OWNER = ".warmup-bench-report"  # in an --out folder: which results and grid it reports


def claim_folder(out: Path, results: Path, experiment: Path | None, write: bool = True) -> None:
    """Makes `out` the folder of this report (results folder and grid); OutputError when
    it holds the report of another one, whose figures this one would mix with its own, or
    files that no report wrote (the user's own report.md, a results folder), which it
    would overwrite. `write=False` only checks (before any work)."""
    owner = {"results": str(Path(results).resolve()),
             "experiment": str(Path(experiment).resolve()) if experiment else None}
    marker = Path(out) / OWNER
    if (Path(out) / "plots").is_symlink():  # the figures would land wherever it leads
        raise OutputError(f"--out {out}: its plots/ is a symbolic link; the report writes its "
                          "figures only into a folder of its own.")
    if not marker.is_file() and Path(out).is_dir():
        others = sorted(p.name for p in Path(out).iterdir())
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise OutputError(f"--out {out} holds files no warmup-bench report wrote ({shown}): "
                              "give the report a new or empty folder.")
    try:
        previous = json.loads(marker.read_text()) if marker.is_file() else owner
    except (OSError, ValueError):
        previous = None
    if previous != owner:
        shown = previous.get("experiment") or previous.get("results") \
            if isinstance(previous, dict) else "an unreadable marker"
        raise OutputError(f"--out {out} holds the report of another experiment ({shown}); "
                          "give each report its own folder.")
    if write:
        write_text_atomic(marker, json.dumps(owner) + "\n")


@dataclass
class Report:
    """A report's tables (each with the runs it shows), the metric its cells hold, and
    whether they are compared with the published numbers."""

    tables: list[tuple[Table, list[Run]]]
    metric: Metric
    compare: bool


def check_request(results: Path, grid: bool, compare: bool = False,
                  epochs: int | None = None) -> None:
    """What a report asks for, checked before anything is read (`grid`: one is given):
    ConfigError (one line) otherwise."""
    if not Path(results).is_dir():
        raise ConfigError(f"results folder {results} does not exist.")
    if compare and not grid:
        raise ConfigError("--compare needs --experiment FILE: the published numbers live in "
                          "the grids.")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs} must be at least 1.")
    if epochs is not None and not grid:
        raise ConfigError(f"--epochs {epochs} names the --epochs a grid's sweep ran with: it "
                          "needs --experiment FILE.")


def make_report(results: Path, grid: Experiment | None = None, metric: str | None = None,
                compare: bool = False, epochs: int | None = None,
                warn: Callable[[str], None] = print,
                note: Callable[[str], None] = print, precise_bn: bool = False) -> Report:
    """The tables of the runs in `results`: laid out as `grid` lays them (and restricted
    to its runs, with `epochs` the --epochs its sweep ran with), else one table of
    whatever varies. `metric` (default: the grid's, else best) is what the cells hold;
    `compare` sets the published numbers beside them. `precise_bn`: every number from
    the evaluations at recomputed BatchNorm statistics (runs trained with --precise-bn
    only). Runs skipped are said through `warn`; ConfigError (one line) when nothing can
    be reported."""
    check_request(results, grid is not None, compare, epochs)
    if precise_bn and compare:
        raise ConfigError("--compare sets the published numbers beside the protocol's, "
                          "evaluated at the BatchNorm statistics training kept: leave out "
                          "--precise-bn to compare.")
    runs = collect_runs(Path(results), warn)
    if precise_bn:
        runs = recomputed_runs(runs, warn)
    chosen = parse_metric(metric) if metric is not None else \
        grid.metric if grid is not None else parse_metric(default_metric(runs))
    if compare and chosen.time_to_target:
        note(f"note: no published numbers of {chosen.name} exist: nothing to compare.")
        compare = False
    tables = build_tables(Path(results), runs, chosen, grid, compare, epochs, warn)
    for table, _ in tables if precise_bn else ():
        table.metric_title += ", BatchNorm statistics recomputed (--precise-bn)"
    if not any(table_runs for _, table_runs in tables):
        raise ConfigError(f"no finished runs under {results}"
                          + (f" belong to {grid.path}" if grid else "")
                          + (" trained with --precise-bn" if precise_bn else "") + ".")
    return Report(tables, chosen, compare)


def recomputed_runs(runs: list[Run], warn: Callable[[str], None]) -> list[Run]:
    """The runs as --precise-bn evaluated them; those trained without it are skipped."""
    views = []
    for run in runs:
        view = recomputed_view(run)
        if view is None:
            warn(f"skipping {run.directory}: trained without --precise-bn (no numbers at "
                 "recomputed BatchNorm statistics)")
        else:
            views.append(view)
    return views


def default_metric(runs: list[Run]) -> str:
    """What a report shows unless told: the held-out loss where every run is a text
    task's (judged by its loss), else the top-1 error."""
    return "loss" if runs and all(r.summary.judged_by == "loss" for r in runs) else "best"


def speed_report(results: Path, warn: Callable[[str], None] = print) -> pd.DataFrame:
    """Seconds per epoch, images/s, total time and accuracy per task and device, with
    speed-ups: one row per group of finished runs; ConfigError when there is none."""
    check_request(results, False)
    frame = speed_frame(collect_runs(Path(results), warn))
    if not len(frame):
        raise ConfigError("no finished runs with epoch timings to compare.")
    return frame


def write_report(tables: list[tuple[Table, list[Run]]], out: Path, fmt: str, compare: bool,
                 plot_format: str = "png", log_x: bool = False,
                 warn: Callable[[str], None] = print, metric: Metric | None = None,
                 run_figures: str = "diverged", grid_text: str | None = None,
                 commands: list[str] | None = None) -> Path:
    """The tables as one file in `out` (Markdown for the terminal's format, linking the
    figures), the figures in `out/plots`, drawn in parallel, and report.html, one page
    holding them all (`grid_text` and `commands` shown on it when given); returns the
    table file's path."""
    text_format = "markdown" if fmt == "table" else fmt
    figures = draw_all((job for table, runs in tables for job in iter_figure_jobs(
        table, runs, out / "plots", plot_format, log_x, warn, metric, run_figures)),
        plot_format)
    path = out / f"report.{SUFFIXES[fmt]}"
    text = tables_json([t for t, _ in tables]) if fmt == "json" else \
        "\n".join(render(t, text_format, compare) for t, _ in tables)
    if text_format == "markdown" and figures:
        text += "\n## Figures\n\n" + "".join(
            f"![{p.stem}](plots/{'/'.join(p.relative_to(out / 'plots').parts)})\n"
            for p in sorted(figures))
    write_text_atomic(path, text)
    write_text_atomic(out / PAGE, report_page(tables, figures, out, compare, grid_text,
                                              commands))
    return path


def collect(results: Path, experiment: Path | None = None, metric: str = "best",
            warn: Callable[[str], None] | None = None,
            allow_plugins: bool = False) -> pd.DataFrame:
    """The runs of `results` (of `experiment`'s grid only, when given) that can be
    trusted, one row each, for a notebook: every setting, the status, the metric's value
    (None where a run has none, or never reached the target), epochs done, wall seconds
    and the run folder (with no run, an empty frame of those columns). ConfigError when
    `results` is no folder. Runs skipped are said through `warn` (default: not at all). A
    grid's plugin files run only with `allow_plugins`, as on the command line."""
    chosen = parse_metric(metric)
    if not Path(results).is_dir():
        raise ConfigError(f"results folder {results} does not exist (or is not a folder).")
    runs = collect_runs(Path(results), warn or (lambda _: None))
    if experiment is not None:
        grid = load_experiment(Path(experiment), PluginConsent(allow=allow_plugins))
        wanted = {RunDir.of(results, c).path.resolve() for c in grid.configs()}
        runs = [r for r in runs if r.directory.resolve() in wanted]
    columns = [*SETTINGS, "status", chosen.name, "epochs_done", "wall_seconds", "folder"]
    return pd.DataFrame.from_records([
        {**r.config, "status": r.status.value, chosen.name: chosen.value(r),
         "epochs_done": r.summary.epochs_done, "wall_seconds": r.summary.wall_seconds,
         "folder": str(r.directory)} for r in runs], columns=columns)


def write_speed(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "speed.md"
    write_text_atomic(path, render_speed(frame, "markdown"))
    return path


__all__ = ["METRICS", "FORMATS", "SPEED_FORMATS", "Run", "Cell", "Table", "collect_runs",
           "build_table", "build_tables", "render", "rich_table", "long_frame", "speed_frame",
           "render_speed", "draw_figures", "across_seeds", "setting_label", "varying_settings",
           "write_report", "write_speed", "claim_folder", "parse_metric", "Metric",
           "RUN_FIGURES", "cell_records", "tables_json", "collect", "Report", "make_report",
           "speed_report"]
