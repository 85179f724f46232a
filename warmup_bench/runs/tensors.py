"""The run folder's torch files (checkpoints, the saved model): written atomically, read
back as tensors and plain values only (never a pickle's code), never through a link."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..files import atomic_path
from .csvlogs import RunFileError


def refuse_link(path: Path) -> None:
    """RunFileError when `path` is a symbolic link: a run's folder and files are its own."""
    if path.is_symlink():
        raise RunFileError(f"{path} is a symbolic link: warmup-bench neither reads nor writes "
                           "a run through links (one could lead a write to any file); put the "
                           "folder or file itself there, or delete the run folder to start "
                           "over.")


def load_tensors(path: Path, map_location="cpu"):
    """torch.load of a file warmup-bench wrote, tensors and plain values only (never a
    pickle's code), not through a link; RunFileError (one line) when it cannot be read.
    torch's own warnings about what it refuses are not shown: the error says it."""
    try:
        refuse_link(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch  # run folders are read without torch (report, sweep plans)

            return torch.load(path, map_location=map_location, weights_only=True)
    except RunFileError:
        raise
    except Exception as error:  # torch raises many types, with multi-paragraph texts
        first = (str(error).strip().splitlines() or [""])[0]
        raise RunFileError(f"{path} is unreadable or corrupt "
                           f"({type(error).__name__}: {first[:160]}).") from None


def save_tensors(path: Path, state: dict) -> None:
    """torch.save, atomically; a failed write (torch reports a full disk as RuntimeError)
    is an OSError naming the file, and the previous file stays as it was."""
    try:
        with atomic_path(path) as tmp:
            import torch

            torch.save(state, tmp)
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise OSError(f"cannot write {path} ({first})") from None
