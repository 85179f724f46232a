"""The record of what was submitted (queue.json) and what squeue says is still active."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .options import (
    ACTIVE_STATES,
    RECORD,
    SLURM_FOLDER,
    SQUEUE_SECONDS,
    SlurmError,
    is_int,
    one_line,
)

# ---- the queue record and squeue ------------------------------------------------------

@contextlib.contextmanager
def record_lock(out: Path) -> Iterator[None]:
    """One submit at a time per --out (an flock beside the record)."""
    import fcntl

    slurm = out / SLURM_FOLDER
    slurm.mkdir(parents=True, exist_ok=True)
    with open(slurm / f"{RECORD}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def slurm_id(entry: dict) -> str:
    task = entry["array_task_id"]
    return entry["job_id"] if task is None else f"{entry['job_id']}_{task}"


def record_key(out: Path, folder: Path) -> str:
    try:
        return folder.absolute().relative_to(out).as_posix()
    except ValueError:
        return folder.absolute().as_posix()


def read_record(slurm: Path) -> dict[str, dict]:
    """{run folder (relative to --out): {"job_id": str, "array_task_id": int}}; entries of
    any other shape are dropped (a damaged record forgets, it never blocks)."""
    try:
        runs = json.loads((slurm / RECORD).read_text()).get("runs", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {key: {"job_id": entry["job_id"], "array_task_id": entry["array_task_id"]}
            for key, entry in runs.items() if isinstance(entry, dict)
            and isinstance(entry.get("job_id"), str) and entry["job_id"].isdigit()
            and (entry.get("array_task_id") is None or is_int(entry["array_task_id"]))}


def write_record(slurm: Path, runs: dict[str, dict]) -> None:
    slurm.mkdir(parents=True, exist_ok=True)
    tmp = slurm / f".{RECORD}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"runs": runs}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, slurm / RECORD)  # atomic: a reader sees the old record or the new


def active_tasks(job_ids: set[str]) -> set[str]:
    """The Slurm ids (123_4, or 123) of every task of `job_ids` that squeue lists in an
    active state. SlurmError when squeue fails (then nobody knows what is queued)."""
    if not job_ids:
        return set()
    try:
        listing = command(["squeue", "-h", "-r", "-j", ",".join(sorted(job_ids)),
                            "-o", "%i|%T"])
    except SlurmError as error:
        if "Invalid job id" in str(error):  # squeue's answer for one id it no longer knows
            return set()
        raise
    active = set()
    for line in listing.splitlines():
        slurm_id, _, state = line.strip().partition("|")
        if state.strip() in ACTIVE_STATES:
            active.add(slurm_id)  # -r lists pending array tasks one by one, as 123_4
    return active


def command(argv: list[str]) -> str:
    """A Slurm command's stdout; SlurmError (one line, with its stderr) when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SQUEUE_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmError(f"{argv[0]} failed: {one_line(error)}") from None
    if done.returncode:
        raise SlurmError(f"{' '.join(argv[:2])} failed: "
                         f"{one_line(RuntimeError(done.stderr or done.returncode))}")
    return done.stdout


def id_order(job_id: str):
    return (len(job_id), job_id)
