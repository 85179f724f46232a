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

from ..files import write_text_atomic
from ..runs import METRICS
from .collect import Run, collect_runs
from .figures import across_seeds, draw_figures
from .render import (
    FORMATS,
    SPEED_FORMATS,
    long_frame,
    render,
    render_speed,
    rich_table,
    speed_frame,
)
from .tables import Cell, Table, build_table, build_tables, setting_label, varying_settings

SUFFIXES = {"table": "md", "markdown": "md", "csv": "csv", "latex": "tex"}


def write_report(tables: list[tuple[Table, list[Run]]], out: Path, fmt: str, compare: bool,
                 plot_format: str = "png", log_x: bool = False,
                 warn: Callable[[str], None] = print) -> Path:
    """The tables as one file in `out` (Markdown for the terminal's format) and the
    figures in `out/plots`; returns the table file's path."""
    text_format = "markdown" if fmt == "table" else fmt
    for table, runs in tables:
        draw_figures(table, runs, out / "plots", plot_format, log_x, warn)
    path = out / f"report.{SUFFIXES[fmt]}"
    write_text_atomic(path, "\n".join(render(t, text_format, compare) for t, _ in tables))
    return path


def write_speed(frame: pd.DataFrame, out: Path) -> Path:
    path = out / "speed.md"
    write_text_atomic(path, render_speed(frame, "markdown"))
    return path


__all__ = ["METRICS", "FORMATS", "SPEED_FORMATS", "Run", "Cell", "Table", "collect_runs",
           "build_table", "build_tables", "render", "rich_table", "long_frame", "speed_frame",
           "render_speed", "draw_figures", "across_seeds", "setting_label", "varying_settings",
           "write_report", "write_speed"]
