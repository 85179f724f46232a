"""Running a list of run configs: locally (a process pool) or on a Ray cluster.

Finished runs are never redone: a run whose summary says `complete` (or `diverged`) is
skipped, an interrupted one resumes from its checkpoint, a failed one is retried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .config import ConfigError, TrainConfig
from .runs import RunDir, Status


@dataclass(frozen=True)
class Job:
    """One run to execute: what (config), where (out, data_dir, device), with how many
    CPU threads (recorded: CPU results are reproducible per thread count)."""

    config: TrainConfig
    out: Path
    data_dir: Path | None
    device: str
    threads: int


@dataclass(frozen=True)
class JobResult:
    run: str
    status: Status
    best_test_acc: float | None
    error: str | None


def run_job(job: Job) -> JobResult:
    """Runs one config to its end (resuming if it can) and reports how it ended; never
    raises. A top-level function so that process pools and Ray can ship it."""
    from .train import RunOptions, train

    options = RunOptions(device=job.device, data_dir=job.data_dir, resume=True,
                         threads=job.threads, on_note=lambda _: None)
    try:
        result = train(job.config, job.out, options)
        return JobResult(result.run.name, result.status, result.summary.best_test_acc,
                         result.summary.error)
    except Exception as error:  # one failed run must not stop a sweep
        return JobResult(RunDir.of(job.out, job.config).name, Status.FAILED, None,
                         f"{type(error).__name__}: {error}")


def plan(configs: list[TrainConfig], out: Path) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """(already finished, still to run): failed runs are retried, interrupted ones resumed."""
    done, todo = [], []
    for cfg in configs:
        summary = RunDir.of(out, cfg).read_summary()
        (done if summary is not None and summary.status.final else todo).append(cfg)
    return done, todo


def make_jobs(configs: list[TrainConfig], out: Path, data_dir: Path | None,
              devices: list[str], threads: int) -> list[Job]:
    return [Job(cfg, Path(out), data_dir, devices[i % len(devices)], threads)
            for i, cfg in enumerate(configs)]


def run_local(jobs: list[Job], parallel: int, on_result: Callable[[JobResult], None]) -> None:
    if parallel <= 1:
        for job in jobs:
            on_result(run_job(job))
        return
    # spawn: a forked child would inherit the parent's torch thread pools and locks
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            on_result(future.result())


def run_ray(jobs: list[Job], address: str | None, cpus: float, gpus: float,
            on_result: Callable[[JobResult], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'warmup-bench[ray]'.") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_job)
        # device "auto": Ray sets CUDA_VISIBLE_DEVICES to the GPUs it granted each task
        pending = [remote.remote(dataclasses.replace(job, device="auto")) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            on_result(ray.get(ready[0]))
    finally:
        if started_here:
            ray.shutdown()
