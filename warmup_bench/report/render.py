"""Renderers: a table as Markdown, CSV, LaTeX or a rich Table; the speed table."""

from __future__ import annotations

import json
import math
import statistics

import pandas as pd

from ..terminal import SafeTable as RichTable
from .collect import Run
from .tables import Table

FORMATS = ("table", "markdown", "csv", "latex", "json")


def long_frame(table: Table) -> pd.DataFrame:
    """One record per cell: the row and column, mean, std, n and diverged runs, the
    published numbers; for a time-to-target metric also how many runs reached it."""
    records = []
    for row in table.rows:
        for col in table.columns:
            cell = table.cells.get((row, col))
            if cell is None:
                continue
            pub = cell.published or (None, None)
            record = {"row": row, table.column_key: col, "mean": cell.mean, "std": cell.std,
                      "n": cell.n, "diverged": cell.diverged, "published_mean": pub[0],
                      "published_std": pub[1], "difference": cell.difference,
                      "within_2sigma": cell.within_band}
            if cell.time_to_target:
                record |= {"reached": cell.n, "runs": cell.total}
            records.append(record)
    return pd.DataFrame.from_records(records)


def cell_records(table: Table) -> dict:
    """The table as data: its title, metric and notes, and one record per cell with the
    settings its runs share, n, mean, std, diverged and (time to target) reached counts,
    the published numbers, and the run folders (for notebooks: no run folder to parse)."""
    def number(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) \
            else value

    cells = []
    for row in table.rows:
        for column in table.columns:
            cell = table.cells.get((row, column))
            if cell is None:
                continue
            cells.append({"row": row, "column": column, "settings": cell.settings,
                          "n": cell.n, "runs": cell.total, "mean": number(cell.mean),
                          "std": number(cell.std), "diverged": cell.diverged,
                          "missing": cell.missing,
                          "reached": cell.n if cell.time_to_target else None,
                          "published": list(cell.published) if cell.published else None,
                          "folders": cell.folders})
    return {"title": table.title, "metric": table.metric_title, "rows": table.row_header,
            "column": table.column_key, "notes": table.notes, "cells": cells}


def tables_json(tables: list[Table]) -> str:
    """The tables' cell records as one JSON document: a list, a table each."""
    return json.dumps([cell_records(t) for t in tables], indent=1, default=_plain) + "\n"


def _plain(value):
    """What json cannot write by itself: a tuple of milestones, numpy numbers."""
    return list(value) if isinstance(value, tuple) else value.item()


def cell_texts(table: Table, compare: bool) -> list[list[list[str]]]:
    """Each row's cells as the text parts every renderer writes ("" where none)."""
    return [[table.cells[(r, c)].parts(compare) if (r, c) in table.cells else [""]
             for c in table.columns] for r in table.rows]


def render(table: Table, fmt: str, compare: bool) -> str:
    """The table as Markdown, CSV or LaTeX text (rich tables are drawn by the CLI)."""
    if fmt == "csv":
        return long_frame(table).to_csv(index=False)
    if fmt == "json":
        return tables_json([table])
    grid = cell_texts(table, compare)
    notes = [f"Note: {note}" for note in table.notes]
    if fmt == "markdown":
        header = [table.row_header, *(table.column_label(c) for c in table.columns)]
        lines = [f"**{table.title}** — {table.metric_title}", "", "| " + " | ".join(header)
                 + " |", "|---|" + "---:|" * len(table.columns)]
        lines += [f"| {r} | " + " | ".join(" — ".join(parts) for parts in row) + " |"
                  for r, row in zip(table.rows, grid)]
        return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
    if fmt == "latex":
        def tex(text: str) -> str:
            return (text.replace("±", r"$\pm$").replace("σ", r"$\sigma$")
                    .replace("Δ", r"$\Delta$").replace("α", r"$\alpha$")
                    .replace("β", r"$\beta$").replace("_", r"\_").replace("%", r"\%"))
        lines = [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\hline",
                 " & ".join([tex(table.row_header),
                             *(tex(table.column_label(c)) for c in table.columns)]) + r" \\",
                 r"\hline"]
        lines += [" & ".join([tex(r), *(tex("; ".join(parts)) for parts in row)]) + r" \\"
                  for r, row in zip(table.rows, grid)]
        lines += [r"\hline", r"\end{tabular}"]
        return (f"% {table.title} — {table.metric_title}\n" + "\n".join(lines) + "\n"
                + "".join(f"% {note}\n" for note in notes))
    raise ValueError(f"unknown format {fmt!r}")


SPEED_FORMATS = ("table", "markdown", "csv")


def speed_frame(runs: list[Run]) -> pd.DataFrame:
    """Per task x device (the device name each run recorded): runs, median seconds per
    epoch and images/s over all their epochs, mean total time of a run's epochs
    (training and evaluation, from epochs.csv), mean best and final
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
            # the epochs' own seconds (epochs.csv, the record), not summary.json's total
            "total_seconds": statistics.fmean(float(m.epochs["seconds"].sum())
                                              for m in members),
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

    table = RichTable(*header, title="speed per task and device (from the runs' own logs)")
    for row in rows:
        table.add_row(*row)
    return table


def rich_table(table: Table, compare: bool):
    """The table for a terminal: one rich Table, a cell's parts on separate lines, its
    notes as the caption."""
    out = RichTable(title=f"{table.title} — {table.metric_title}", show_lines=compare,
                    caption="\n".join(f"Note: {n}" for n in table.notes) or None,
                    caption_justify="left")
    out.add_column(table.row_header)
    for column in table.columns:
        out.add_column(table.column_label(column), justify="right")
    for row, cells in zip(table.rows, cell_texts(table, compare)):
        out.add_row(row, *["\n".join(parts) for parts in cells])
    return out
