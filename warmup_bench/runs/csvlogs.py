"""The run folder's CSV logs: written a whole row at a time (so a killed writer leaves at
most a torn last line, which readers drop), read back with every value checked."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import atomic_path
from .schema import ANY, BOUNDS, TEXT_COLUMNS


class CsvLog:
    """An append-only CSV: the header once, then whole rows, flushed as they are written."""

    def __init__(self, path: Path, columns: list[str], mirror=None):
        self.path, self.columns, self.mirror = path, columns, mirror
        # never through a link (an OSError, ELOOP): a run's log is its own file
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        self.handle = os.fdopen(handle, "a", newline="")
        if os.fstat(handle).st_size == 0:
            self.handle.write(",".join(columns) + "\n")
            self.handle.flush()
        self.rows = count_rows(path)  # data rows in the file (checkpoints record it)
        self.writer = csv.writer(self.handle, lineterminator="\n")

    def append(self, row: dict) -> None:
        self.writer.writerow([_format(row[c]) for c in self.columns])
        self.handle.flush()
        self.rows += 1
        if self.mirror is not None:  # the same row, to TensorBoard
            self.mirror(row)

    def close(self) -> None:
        self.handle.close()


def _format(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact round trip


def count_rows(path: Path) -> int:
    """Complete data rows (a torn last line, from a kill mid-write, is not counted). Bytes,
    not text: a damaged encoding must not stop a resume that drops those rows anyway."""
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def truncate_rows(path: Path, rows: int) -> None:
    """Keeps the header and the first `rows` rows (drops what a resumed run will redo)."""
    if path.exists():
        lines = path.read_bytes().split(b"\n")
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"\n".join(lines[: rows + 1]) + b"\n")


# the cells that read as NaN: empty (a diagnostic that does not apply) or written as nan
NAN_CELLS = ["", "nan", "NaN"]


class RunFileError(UserError):
    """A run file that cannot be trusted: unreadable, damaged, or a number out of range."""


def read_csv(path: Path, required: list[str] = (), one_row_per_key: bool = True
             ) -> pd.DataFrame:
    """A run's CSV, every value checked against its column's bound; RunFileError naming
    the file and the first bad value otherwise. Rows are written whole, each ending in a
    newline, so a last line without one is torn (its writer was killed mid-row) and is
    dropped. A missing file is an empty frame. Empty cells (a diagnostic that does not
    apply) read as NaN. `required`: the columns it must have; `one_row_per_key`: whether
    its key column (step or epoch) increases strictly."""
    if not path.exists():
        return pd.DataFrame()
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise RunFileError(f"{path}: cannot read ({error.strerror or error}).") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not UTF-8 text (the file is damaged).") from None
    text = text[: text.rfind("\n") + 1]
    fast = _read_numeric(text)
    if fast is not None:  # the common case: every value a number where one belongs
        frame, numeric = fast
        if all(c in frame.columns for c in required) and \
                (made_whole := _whole_numbers_within_bounds(numeric)) is not None:
            frame = frame.assign(**made_whole) if made_whole else frame
            return _in_order(path, frame, one_row_per_key)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise RunFileError(f"{path}: not a readable CSV ({first}).") from None
    except pd.errors.EmptyDataError:
        raise RunFileError(f"{path}: empty (no header).") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the first field as an index
        raise RunFileError(f"{path}: its rows have more fields than its header (the file "
                           "is damaged).")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunFileError(f"{path}: no {', '.join(missing)} column(s).")
    checked = {}
    for column in frame.columns:
        if column in TEXT_COLUMNS:
            continue
        bound = BOUNDS.get(column, ANY)
        values = pd.to_numeric(frame[column].replace("", "nan"), errors="coerce")
        text_cells = values.isna() & ~frame[column].isin(NAN_CELLS)
        if text_cells.any():
            row = int(text_cells.idxmax())
            raise RunFileError(f"{path}: {column} {frame[column][row]!r} in row {row + 1} is "
                               "not a number.")
        finite = np.isfinite(values)
        if not bound.nonfinite and not finite.all():
            row = int((~finite).idxmax())
            raise RunFileError(f"{path}: {column} {frame[column][row]!r} in row {row + 1} is "
                               "not a finite number.")
        bad = finite & ((values < bound.low) | (values > bound.high))
        if bound.integer:
            bad |= finite & (values != np.round(values))
        if bad.any():
            row = int(bad.idxmax())
            kind = "a whole number in" if bound.integer else "in"
            raise RunFileError(f"{path}: {column} {frame[column][row]!r} in row {row + 1} is "
                               f"not {kind} [{bound.low:g}, {bound.high:g}].")
        checked[column] = values.astype(np.int64) if bound.integer else values
    return _in_order(path, frame.assign(**checked), one_row_per_key)


# pandas 3.1 reads every float exactly (and deprecates the choice); before, only round_trip
_EXACT_FLOATS = ({} if tuple(int(p) for p in pd.__version__.split(".")[:2]) >= (3, 1)
                 else {"float_precision": "round_trip"})


def _read_numeric(text: str) -> tuple[pd.DataFrame, dict] | None:
    """The file parsed by pandas' C reader, each numeric column an array (every float read
    back exactly as written), or None when it does not parse so or a column holds text (then
    the checking reader finds and names the bad cell)."""
    header = text[: text.find("\n")].split(",")
    try:
        frame = pd.read_csv(io.StringIO(text), keep_default_na=False,
                            na_values={c: NAN_CELLS for c in header if c not in TEXT_COLUMNS},
                            dtype={c: str for c in header if c in TEXT_COLUMNS},
                            **_EXACT_FLOATS)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if not isinstance(frame.index, pd.RangeIndex):  # more fields than the header
        return None
    numeric = {}
    for column, series in frame.items():
        if column in TEXT_COLUMNS:
            continue
        values = series.to_numpy()
        if values.dtype.kind not in "iuf":  # text, or pandas' reading of True / False
            return None
        numeric[column] = values
    return frame, numeric


def _whole_numbers_within_bounds(columns: dict[str, np.ndarray]) -> dict | None:
    """None unless every value is within its column's bound (see BOUNDS); else the
    integer columns read as floats, made int64 as the checking reader makes them."""
    made_whole = {}
    for column, values in columns.items():
        bound = BOUNDS.get(column, ANY)
        floats = values.astype(np.float64, copy=False)
        finite = np.isfinite(floats)
        if not bound.nonfinite and not finite.all():
            return None
        kept = floats[finite] if bound.nonfinite else floats
        if (kept < bound.low).any() or (kept > bound.high).any():
            return None
        if bound.integer and values.dtype != np.int64:
            if (kept != np.round(kept)).any():
                return None
            made_whole[column] = values.astype(np.int64)
    return made_whole


def _in_order(path: Path, frame: pd.DataFrame, one_row_per_key: bool) -> pd.DataFrame:
    key = frame.columns[0] if len(frame.columns) else None
    # rows are logged in order, once each (layers.csv: a row per layer of a step)
    keys = frame[key].to_numpy() if key in ("step", "epoch") else np.zeros(0)
    steps = np.diff(keys)
    if (steps < 0).any() or (one_row_per_key and (steps == 0).any()):
        raise RunFileError(f"{path}: its {key} column is not increasing (the file is damaged).")
    return frame.reset_index(drop=True)
