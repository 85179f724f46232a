"""From run folders to the published tables, their renderings and figures.

  collect.py   which runs of a results folder can be reported (the rest skipped, said why)
  tables.py    cells of top-1 error keyed by row and column settings; published numbers
  render.py    Markdown, CSV, LaTeX, rich; the speed table
  figures.py   the figures a report draws from its runs
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..config import SETTINGS, ConfigError
from ..files import OutputError, write_text_atomic
from ..runs import METRICS, RunDir
from .collect import Run, collect_runs
from .figures import RUN_FIGURES, across_seeds, draw_all, draw_figures, iter_figure_jobs
from .metrics import Metric, parse_metric
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
OWNER = ".warmup-bench-report"  # in an --out folder: which results and grid it reports


def claim_folder(out: Path, results: Path, experiment: Path | None, write: bool = True) -> None:
    """Makes `out` the folder of this report (results folder and grid); OutputError when
    it holds the report of another one, whose figures this one would mix with its own, or
    files that no report wrote (the user's own report.md, a results folder), which it
    would overwrite. `write=False` only checks (before any work)."""
    import json

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


def write_report(tables: list[tuple[Table, list[Run]]], out: Path, fmt: str, compare: bool,
                 plot_format: str = "png", log_x: bool = False,
                 warn: Callable[[str], None] = print, metric: Metric | None = None,
                 run_figures: str = "diverged") -> Path:
    """The tables as one file in `out` (Markdown for the terminal's format) and the
    figures in `out/plots`, drawn in parallel; returns the table file's path."""
    text_format = "markdown" if fmt == "table" else fmt
    draw_all((job for table, runs in tables for job in iter_figure_jobs(
        table, runs, out / "plots", plot_format, log_x, warn, metric, run_figures)),
        plot_format)
    path = out / f"report.{SUFFIXES[fmt]}"
    text = tables_json([t for t, _ in tables]) if fmt == "json" else \
        "\n".join(render(t, text_format, compare) for t, _ in tables)
    write_text_atomic(path, text)
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
    from ..experiments import PluginConsent, load_experiment

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
           "RUN_FIGURES", "cell_records", "tables_json", "collect"]
