"""Atomic file output: a reader never sees a half-written file."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, UserError

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` only on success and
    removes it on any failure. The caller creates the file (with open() or torch.save), so
    it gets the umask's mode like any other file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temporaries(folder: Path) -> None:
    """Deletes what atomic_path left behind when its process was killed mid-write."""
    for stale in folder.glob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class OutputError(UserError):
    """An output path that cannot be written: a one-line message naming it and why."""


def writable_ancestor(path: Path, option: str) -> Path:
    """The deepest existing folder above (or at) `path`, proven writable by creating and
    removing a probe file in it (permissions alone do not tell: root, read-only mounts,
    /proc). OutputError when a file stands in the way or nothing can be created there."""
    path = Path(path).absolute()
    try:
        existing = next(p for p in (path, *path.parents) if p.exists())
    except OSError as error:
        raise OutputError(f"{option} {path}: {error.strerror or error}.") from None
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a folder.")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".probe.", suffix=TEMP_SUFFIX)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(f"{option} {path}: {existing} is not writable "
                          f"({error.strerror or error}).") from None
    return existing


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """A write that fails (disk full, read-only file system) is an OutputError naming it."""
    try:
        yield
    except OSError as error:
        raise OutputError(f"cannot write {path} ({error.strerror or error}).") from None


def check_output_file(path: Path, option: str = "--out") -> None:
    """A file the command will write: not a folder, under a writable folder."""
    if Path(path).is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name.")
    writable_ancestor(Path(path).parent, option)


def check_output_root(out: Path) -> None:
    """Fails early (ConfigError) for an output root that cannot hold run folders: a file,
    a folder nothing can be created in, or a path too long for the file system."""
    out = Path(out)
    too_long = ConfigError(f"--out {str(out)[:60]}...: {os.strerror(errno.ENAMETOOLONG)}.")
    # a run folder adds <task>/<run-name> (about 100 characters) and file names below it
    if any(len(part.encode()) > 255 for part in out.parts) or \
            len(str(out.absolute()).encode()) + 160 > 4096:
        raise too_long
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder.")
    try:
        writable_ancestor(out, "--out")
    except OutputError as error:
        raise ConfigError(str(error)) from None
