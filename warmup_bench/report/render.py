"""Renderers: a table as Markdown, CSV, LaTeX or a rich Table; the speed table."""

from __future__ import annotations

import math
import statistics

import pandas as pd

from .collect import Run
from .tables import Cell, Table

FORMATS = ("table", "markdown", "csv", "latex")


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
    from ..terminal import SafeTable as RichTable

    table = RichTable(*header, title="speed per task and device (from the runs' own logs)")
    for row in rows:
        table.add_row(*row)
    return table


def rich_table(table: Table, metric: str, compare: bool):
    """The table for a terminal: one rich Table, a cell's parts on separate lines."""
    from ..terminal import SafeTable as RichTable

    out = RichTable(title=f"{table.title} — top-1 error (%) from {metric} test accuracy",
                    show_lines=compare)
    out.add_column("")
    for column in table.columns:
        out.add_column(f"{table.column_key} {column}", justify="right")
    for row in table.rows:
        out.add_row(row, *["\n".join(table.cells[(row, c)].parts(compare))
                           if (row, c) in table.cells else "" for c in table.columns])
    return out
