"""The report as one self-contained HTML page (report.html): the tables, every figure
inline, the grid and the commands that reproduce the report, links to the run folders.
It needs nothing beside itself (no script, no stylesheet or image from elsewhere), so it
opens from the report folder or as a mailed file alike; the run-folder links are
relative, and resolve where the page sits in its folder."""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path

from .. import __version__
from .collect import Run
from .render import cell_texts
from .tables import Table

IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child, th:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""


def table_html(table: Table, compare: bool) -> str:
    """One table as an HTML table, its cells as the Markdown report writes them."""
    escape = html.escape
    head = "".join(f"<th>{escape(text)}</th>" for text in
                   [table.row_header, *(table.column_label(c) for c in table.columns)])
    rows = "".join(
        f"<tr><td>{escape(label)}</td>"
        + "".join(f"<td>{'<br>'.join(escape(p) for p in parts)}</td>" for parts in cells)
        + "</tr>" for label, cells in zip(table.rows, cell_texts(table, compare)))
    notes = "".join(f'<p class="note">Note: {escape(n)}</p>' for n in table.notes)
    return (f"<h2>{escape(table.title)}</h2><p>{escape(table.metric_title)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{notes}")


def figure_html(path: Path) -> str:
    """A figure inline (PNG as a data URI, SVG as a data URI too); a PDF, which a
    browser cannot show inline, as a relative link."""
    caption = html.escape(path.stem.replace("_", " "))
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None:
        return f'<p><a href="plots/{html.escape(path.name)}">{caption}</a></p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{caption}" src="data:{kind};base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def runs_html(runs: list[Run], out: Path) -> str:
    """The run folders, each a relative link from the report folder."""
    items = "".join(
        f'<li><a href="{html.escape(Path(os.path.relpath(r.directory, out)).as_posix())}/">'
        f"{html.escape(r.directory.name)}</a> ({html.escape(r.status.value)})</li>"
        for r in sorted(runs, key=lambda r: str(r.directory)))
    return f"<details><summary>{len(runs)} run folders</summary><ul>{items}</ul></details>"


def report_page(tables: list[tuple[Table, list[Run]]], figures: list[Path], out: Path,
                compare: bool, grid_text: str | None = None,
                commands: list[str] | None = None) -> str:
    """The page's HTML: tables, figures (sorted by name), the grid file's text and the
    commands that reproduce the report, when known, and the run folders."""
    title = html.escape(tables[0][0].title if tables else "warmup-bench report")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{title}</title><style>{STYLE}</style></head><body>",
             f"<h1>{title}</h1>",
             f'<p class="note">warmup-bench {html.escape(__version__)}, '
             f"{time.strftime('%Y-%m-%d %H:%M')}</p>"]
    parts += [table_html(table, compare) for table, _ in tables]
    if commands:
        parts.append("<h2>Reproduce</h2><pre>" + html.escape("\n".join(commands)) + "</pre>")
    if grid_text is not None:
        parts.append("<h2>The grid</h2><pre>" + html.escape(grid_text) + "</pre>")
    parts.append("<h2>Figures</h2>")
    parts += [figure_html(path) for path in sorted(figures)]
    runs = list({r.directory: r for _, table_runs in tables for r in table_runs}.values())
    parts += ["<h2>Runs</h2>", runs_html(runs, out), "</body></html>"]
    return "\n".join(parts) + "\n"
