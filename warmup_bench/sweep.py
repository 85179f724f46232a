"""Running a list of run configs: locally (a process pool) or on a Ray cluster.

Finished runs are never redone: a run whose summary says `complete` (or `diverged`) is
skipped, an interrupted one resumes from its checkpoint, a failed one is retried, and one
that another process is writing is skipped and reported.

Stopping: Ctrl-C or SIGTERM interrupts the runs in flight (each is left `interrupted`, with
its last completed epoch checkpointed) and starts no queued run. Workers die with their
parent: if the sweep process is killed outright, each worker notices within a second,
interrupts its run the same way, and exits.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

from .config import ConfigError, TrainConfig
from .execution import RunOptions
from .jobs import BUSY, Job, JobResult, PackJob
from .plugins import load_plugins
from .runs import RunBusy, RunDir, Status
from .train import RunFailed, train, train_pack

RAY_CONNECT_SECONDS = 30.0


def run_job(job: Job | PackJob) -> JobResult | list[JobResult]:
    """Runs one config to its end (resuming if it can) and reports how it ended (a pack:
    how each member ended); never raises but for an interrupt. A top-level function so
    process pools and Ray can ship it."""
    if _stopping:  # a job the pool had queued before the interrupt: never start it
        raise KeyboardInterrupt
    if isinstance(job, PackJob):
        return run_pack_job(job)
    name = RunDir.of(job.out, job.config).name
    try:
        load_plugins(job.plugins)  # a fresh worker process has only the built-ins
        result = train(job.config, job.out, job.options)
        return JobResult(name, result.status.value, result.summary.best(),
                         result.summary.error)
    except RunBusy as error:
        return JobResult(name, BUSY, "-", str(error))
    except RunFailed as error:  # the reason is the run's own summary's
        return JobResult(name, Status.FAILED.value, "-", str(error))
    except KeyboardInterrupt:  # the run is already marked interrupted
        if _parent is not None and os.getppid() != _parent:
            os._exit(1)  # orphaned: nobody to report to, and the pool would block
        raise
    except Exception as error:  # one failed run must not stop a sweep
        return JobResult(name, Status.FAILED.value, "-", f"{type(error).__name__}: {error}")


def run_pack_job(job: PackJob) -> list[JobResult]:
    """The members' JobResults, in the pack's order (a member another process holds is
    reported busy; a failure of the whole pack, failed for every member)."""
    names = [RunDir.of(job.out, cfg).name for cfg in job.configs]
    try:
        load_plugins(job.plugins)
        outcomes = train_pack(list(job.configs), job.out, job.options)
    except KeyboardInterrupt:  # every member is already marked interrupted
        if _parent is not None and os.getppid() != _parent:
            os._exit(1)
        raise
    except Exception as error:  # a pack that cannot start: every member failed
        reason = f"{type(error).__name__}: {error}"
        return [JobResult(name, Status.FAILED.value, "-", reason) for name in names]
    results = []
    for name, outcome in zip(names, outcomes):
        if isinstance(outcome, RunBusy):
            results.append(JobResult(name, BUSY, "-", str(outcome)))
        elif isinstance(outcome, RunFailed):
            results.append(JobResult(name, Status.FAILED.value, "-", str(outcome)))
        elif isinstance(outcome, Exception):
            results.append(JobResult(name, Status.FAILED.value, "-",
                                     f"{type(outcome).__name__}: {outcome}"))
        else:
            results.append(JobResult(name, outcome.status.value,
                                     outcome.summary.best(), outcome.summary.error))
    return results


def each_result(result: JobResult | list[JobResult]) -> list[JobResult]:
    return result if isinstance(result, list) else [result]


def plan(configs: list[TrainConfig], out: Path) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """(already finished, still to run): failed runs are retried, interrupted ones resumed."""
    done, todo = [], []
    for cfg in configs:
        summary = RunDir.of(out, cfg).read_summary()
        (done if summary is not None and summary.status.final else todo).append(cfg)
    return done, todo


DRY_RUN_ROWS = 50  # a dry run lists this many runs, then counts the rest


def dry_run_rows(configs: list[TrainConfig], done: list[TrainConfig], out: Path
                 ) -> list[tuple[str, str, str]]:
    """(run name, task, what a sweep would do) for the first DRY_RUN_ROWS runs."""
    finished = set(done)
    return [(RunDir.of(out, cfg).name, cfg.task,
             "finished (skip)" if cfg in finished else "to run")
            for cfg in configs[:DRY_RUN_ROWS]]


def make_jobs(configs: list[TrainConfig], out: Path, options: RunOptions, devices: list[str],
              plugins: tuple[Path, ...] = ()) -> list[Job]:
    """One job per config, the devices taken in turn; every job resumes what it can and
    reports nothing but its result."""
    return [Job(cfg, Path(out), dataclasses.replace(options, device=devices[i % len(devices)],
                                                    resume=True, on_note=None,
                                                    on_progress=None, on_hint=None),
                tuple(Path(p).resolve() for p in plugins))
            for i, cfg in enumerate(configs)]


def threads_per_run(parallel: int, threads: int | None = None, ray_cpus: float | None = None
                    ) -> int:
    """CPU threads for each run: as asked, else the cores Ray reserves per run, else the
    machine's cores shared among the runs in parallel (concurrent runs with all threads
    each thrash)."""
    if threads is not None:
        return threads
    if ray_cpus is not None:
        return max(1, int(ray_cpus))
    return max(1, (os.cpu_count() or 1) // parallel)


def final_statuses(configs: list[TrainConfig], out: Path) -> dict[Status | None, int]:
    """How many of the grid's runs end in each status (None: no readable summary)."""
    counts: dict[Status | None, int] = {}
    for cfg in configs:
        status = getattr(RunDir.of(out, cfg).read_summary(), "status", None)
        counts[status] = counts.get(status, 0) + 1
    return counts


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a sweep the way Ctrl-C does (runs in flight are left interrupted)."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt_once(signum, frame) -> None:
    """SIGINT / SIGTERM in a worker: interrupt the run once; a second signal (the parent
    forwarding the terminal's Ctrl-C) must not break the run's own clean-up."""
    global _stopping
    _stopping = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


_parent: int | None = None  # in a pool worker: the sweep process's pid
_stopping = False  # in a pool worker: an interrupt arrived; start no further job


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # orphaned: interrupt the run like Ctrl-C would
    time.sleep(15)
    os._exit(1)  # still here: leave without clean-up (the run lock frees itself)


def _worker_init(parent: int) -> None:
    global _parent
    _parent = parent
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    if os.getppid() != parent:  # the parent died while this worker was starting
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def run_local(jobs: list[Job], parallel: int, on_result: Callable[[JobResult], None]) -> None:
    """Runs the jobs, `parallel` at a time; KeyboardInterrupt interrupts them all."""
    if parallel <= 1:
        for job in jobs:
            for result in each_result(run_job(job)):
                on_result(result)
        return
    # spawn: a forked child would inherit the parent's torch thread pools and locks
    pool = ProcessPoolExecutor(parallel, mp_context=get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    try:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            for result in each_result(future.result()):
                on_result(result)
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 120.0) -> None:
    """Starts no queued job, interrupts the running ones and waits for their clean-up."""
    workers = list((pool._processes or {}).values())  # noqa: SLF001 - no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


def check_ray_address(address: str) -> None:
    """Fails fast (ConfigError) when nothing listens at a host:port Ray address: ray.init
    would otherwise retry for minutes."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT, "
                          "auto, local).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5.0).close()
    except OSError as error:
        raise ConfigError(f"--ray-address {address}: cannot reach it "
                          f"({error.strerror or error}).") from None


def _ray_init(ray, address: str | None) -> None:
    """ray.init in a thread, given up after RAY_CONNECT_SECONDS (something that listens but
    is no Ray head can keep it waiting)."""
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(RAY_CONNECT_SECONDS)
    if thread.is_alive():
        raise ConfigError(f"--ray-address {address}: no Ray cluster answered within "
                          f"{RAY_CONNECT_SECONDS:.0f} s.")
    if failure:
        first = (str(failure[0]).strip().splitlines() or [""])[0]
        raise ConfigError(f"Ray could not start or connect ({type(failure[0]).__name__}: "
                          f"{first[:200]}).")


def run_ray(jobs: list[Job], address: str | None, cpus: float, gpus: float,
            on_result: Callable[[JobResult], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'warmup-bench[ray]'.") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address is not None:
            check_ray_address(address)
        _ray_init(ray, address)
    pending = []
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_job)
        # device "auto": Ray sets CUDA_VISIBLE_DEVICES to the GPUs it granted each task
        pending = [remote.remote(dataclasses.replace(
            job, options=dataclasses.replace(job.options, device="auto"))) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for result in each_result(ray.get(ready[0])):
                on_result(result)
    except BaseException:
        for ref in pending:  # queued ones never start; running ones get KeyboardInterrupt
            ray.cancel(ref)
        raise
    finally:
        if started_here:
            ray.shutdown()
