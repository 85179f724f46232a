"""Text for the terminal: whatever came from a file (a run folder's meta.json, a grid's
title, a folder name) is printed as it is, never as rich markup or control codes."""

from __future__ import annotations

import unicodedata

from rich.console import Console
from rich.table import Table

# bidirectional overrides and isolates can reorder what a terminal shows
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def printable(text: object) -> str:
    """`text` with control characters (ESC, BEL, CR, C1 codes, bidi overrides) written as
    visible escapes; newlines and tabs stay."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in _BIDI)
                   and unicodedata.category(c) != "Cc" else ascii(c)[1:-1] for c in text)


class SafeTable(Table):
    """A rich Table whose string cells are shown as they are (see `printable`), and whose
    columns fold a long cell onto more lines rather than cut it (run names at 80
    columns keep their seed and hash)."""

    def add_column(self, *args, **kwargs) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)

    def add_row(self, *cells, **kwargs) -> None:
        super().add_row(*(printable(c) if isinstance(c, str) else c for c in cells), **kwargs)


class SafeConsole(Console):
    """A rich Console that never reads markup and shows control characters escaped."""

    def __init__(self, **kwargs):
        # soft wrap: a long path stays one line to copy; tables still fit the width
        super().__init__(markup=False, highlight=False, soft_wrap=True, **kwargs)

    def print(self, *objects, **kwargs) -> None:
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)
