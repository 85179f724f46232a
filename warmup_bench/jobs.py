"""What a sweep hands a worker and gets back (Job, PackJob, JobResult), and which Slurm
task a process runs in: records that the sweep, its backends (local, Ray, Slurm) and the
training code all import, so none of them imports another for them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .execution import RunOptions

BUSY = "busy"  # a JobResult outcome that is no run status: another process holds the run


@dataclass(frozen=True)
class Job:
    """One run to execute: what (config), where (out), how (options: its device, its CPU
    threads, recorded since CPU results are reproducible per thread count), and the
    plugin files a worker loads before training."""

    config: TrainConfig
    out: Path
    options: RunOptions
    plugins: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PackJob:
    """Runs that train together in one process as one vectorised model (train.pack):
    each member is still its own run, with its own folder and lock."""

    configs: tuple[TrainConfig, ...]
    out: Path
    options: RunOptions
    plugins: tuple[Path, ...] = ()

    @property
    def size(self) -> int:
        return len(self.configs)


@dataclass(frozen=True)
class JobResult:
    run: str
    outcome: str  # a Status value, or BUSY
    best: str  # the best epoch's number as the sweep's table shows it (Summary.best)
    error: str | None


def slurm_ids() -> dict | None:
    """{"job_id": ..., "array_task_id": ...} of the Slurm task this process runs in (the
    array's job id for an array task; array_task_id None for a plain job), or None outside
    Slurm."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID", "").isdigit():
        return {"job_id": env["SLURM_ARRAY_JOB_ID"],
                "array_task_id": int(env["SLURM_ARRAY_TASK_ID"])}
    if env.get("SLURM_JOB_ID"):
        return {"job_id": env["SLURM_JOB_ID"], "array_task_id": None}
    return None
