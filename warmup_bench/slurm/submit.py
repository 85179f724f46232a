"""Submitting one array job for a sweep, following it, cancelling it."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..jobs import BUSY, JobResult
from ..runs import RunDir, Status
from ..runs.lock import lock_held
from .options import (
    SLURM_FOLDER,
    SQUEUE_FAILURES,
    SQUEUE_SECONDS,
    SlurmError,
    SlurmOptions,
    check_cluster,
    check_shared_folder,
    one_line,
    require_slurm_commands,
    require_submitit,
)
from .queue import (
    active_tasks,
    command,
    id_order,
    read_record,
    record_key,
    record_lock,
    slurm_id,
    write_record,
)
from .task import SlurmTask, run_folder

# ---- submitting -----------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One task of a submission: an array task, or the plain job submitit makes of a
    submission of one (array_task_id None)."""

    job_id: str
    array_task_id: int | None
    job: Any
    folder: Path  # the run folder

    @property
    def slurm_id(self) -> str:
        """How squeue and submitit's log folders name it: 123_4, or 123."""
        return self.job_id if self.array_task_id is None else \
            f"{self.job_id}_{self.array_task_id}"


@dataclass(frozen=True)
class Submission:
    """What submit() did. `tasks`: what wait() follows, this submission's array tasks
    first, then those still queued or running from earlier ones (`queued` of them)."""

    out: Path
    job_id: str | None  # the new array job; None when nothing was submitted
    tasks: tuple[Task, ...]
    submitted: int  # tasks in the new array job
    finished: int  # skipped: complete or diverged
    queued: int  # skipped: queued or running from an earlier submission
    busy: tuple[Any, ...]  # skipped: another process holds the run folder's lock
    log_folder: Path

    @property
    def earlier_job_ids(self) -> list[str]:
        """The earlier array jobs whose tasks were found still queued or running."""
        return sorted({t.job_id for t in self.tasks[self.submitted:]}, key=id_order)


def submit(jobs: list, out: Path, options: SlurmOptions, *, run_one: Callable | None = None,
           force: bool = False, name: str | None = None,
           folder_of: Callable[[Any], Path] | None = None) -> Submission:
    """Submits one array job, one task per job still to run (see the module's rules for
    what is skipped); returns at once. `name` is added to the job name (the grid's);
    `folder_of(job)` is a job's run folder (default: its RunDir). ConfigError (one line,
    nothing submitted) for bad input; SlurmError when squeue does not answer."""
    submitit = require_submitit()
    require_slurm_commands()
    out = Path(out).expanduser().absolute()
    check_shared_folder(out, force)
    check_cluster(options)
    if run_one is None:  # the trainer (torch): not when the CLI reads slurm's options
        from ..sweep import run_job as run_one
    folder_of = folder_of or run_folder
    slurm = out / SLURM_FOLDER
    existed = slurm.exists()
    with record_lock(out):
        record = read_record(slurm)
        active = active_tasks({entry["job_id"] for entry in record.values()})
        # what is still queued stays recorded, whichever grid it came from
        keep = {key: entry for key, entry in record.items() if slurm_id(entry) in active}
        todo, earlier, busy, finished = [], [], [], 0
        for job in jobs:
            folder = Path(folder_of(job))
            key = record_key(out, folder)
            summary = RunDir(folder).read_summary()
            if summary is not None and summary.status.final:
                finished += 1
            elif key in keep:
                earlier.append(Task(keep[key]["job_id"], keep[key]["array_task_id"], job,
                                    folder))
            elif lock_held(folder):
                busy.append(job)
            else:
                todo.append((key, job, folder))
        job_id, tasks = None, []
        if todo:
            try:
                job_id = _submit_array(submitit, slurm, [job for _, job, _ in todo], options,
                                       SlurmTask(run_one), name)
            except ConfigError:
                if not existed:  # leave no trace of a submission that did not happen
                    shutil.rmtree(slurm, ignore_errors=True)
                raise
            index = (lambda i: i) if len(todo) > 1 else (lambda i: None)  # a plain job
            tasks = [Task(job_id, index(i), job, folder)
                     for i, (_, job, folder) in enumerate(todo)]
            keep.update({key: {"job_id": job_id, "array_task_id": index(i)}
                         for i, (key, _, _) in enumerate(todo)})
        if todo or keep != record:
            write_record(slurm, keep)
    return Submission(out, job_id, tuple(tasks + earlier), len(tasks), finished, len(earlier),
                      tuple(busy), slurm)


def _submit_array(submitit, slurm: Path, jobs: list, options: SlurmOptions, task: SlurmTask,
                  name: str | None) -> str:
    """Submits the array held, lets submitit place each task's pickle and log folder,
    then releases it (a task that started first would find neither); the array's job
    id (submitit makes a plain job of an array of one). ConfigError with sbatch's
    reason when it refuses; nothing is left behind then."""
    before = set(os.listdir(slurm))
    executor = submitit.SlurmExecutor(folder=slurm / "%j", max_num_timeout=options.max_requeues)
    parameters = {
        "job_name": options.job_name_prefix + (f"-{name}" if name else ""),
        "time": options.time_limit_min,
        "cpus_per_task": options.cpus_per_task,
        "array_parallelism": options.array_parallelism,
        # submitit's signal comes this long before the time limit: enough to stop the run
        # and requeue, and well inside a short limit
        "signal_delay_s": min(90, options.time_limit_min * 60 // 4),
        "setup": [f"export OMP_NUM_THREADS={options.cpus_per_task}"],
        "additional_parameters": {**options.extra, "hold": True, "requeue": True},
    }
    optional = {"partition": options.partition, "account": options.account,
                "qos": options.qos, "gpus_per_task": options.gpus_per_task or None,
                "mem": _memory(options.mem_gb)}
    parameters.update({k: v for k, v in optional.items() if v is not None})
    try:
        executor.update_parameters(**parameters)
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's stderr
            submitted = executor.map_array(task, jobs)
    except BaseException as error:
        for entry in set(os.listdir(slurm)) - before:  # submitit's pickles and script
            shutil.rmtree(slurm / entry, ignore_errors=True)
            (slurm / entry).unlink(missing_ok=True)
        if not isinstance(error, submitit.core.utils.FailedJobError):
            raise  # not sbatch's answer (a job that cannot be pickled is a bug)
        raise ConfigError(f"sbatch refused the array job: {_sbatch_reason(error)}") from None
    job_id = submitted[0].job_id.split("_")[0]
    for entry in set(os.listdir(slurm)) - before:  # submitit's links to the scripts
        if entry.startswith(".submission_file_") and (slurm / entry).is_symlink():
            (slurm / entry).unlink()
    try:
        command(["scontrol", "release", job_id])
    except SlurmError:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=SQUEUE_SECONDS)
        raise
    return job_id


def _memory(gb: float | None) -> str | None:
    if gb is None:
        return None
    return f"{int(gb)}G" if gb == int(gb) else f"{int(gb * 1024)}M"


def _sbatch_reason(error: BaseException) -> str:
    """sbatch's last error line, without its "sbatch: error: " prefix."""
    lines = [line for line in str(error).splitlines() if "error" in line.lower()] or \
        [one_line(error)]
    reason = re.sub(r"^(sbatch: )?error: ", "", lines[-1].strip())
    return reason.removeprefix("Batch job submission failed: ")[:300]


def cancel(submission: Submission) -> None:
    """scancel of the array job this submission made (queued tasks never start, running
    ones are left interrupted); nothing for a submission that made none."""
    if submission.job_id is not None:
        command(["scancel", submission.job_id])

# ---- waiting --------------------------------------------------------------------------

def wait(submission: Submission, on_result: Callable | None = None,
         poll_seconds: float = 10.0) -> list:
    """Follows the submission's tasks until each has left the queue, calling
    `on_result(JobResult)` as each ends (busy runs first, as the local backend reports
    them); returns the results in that order. A task that ended without a result is a
    `failed` JobResult naming its log. Ctrl-C stops the waiting only: the tasks go on
    (cancel() stops them). SlurmError when squeue fails SQUEUE_FAILURES times in a row."""
    results = []

    def report(result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    for job in submission.busy:
        report(JobResult(run_folder(job).name, BUSY, "-", "another process is writing it"))
    pending = list(submission.tasks)
    failures = 0
    gone_since: dict[str, float] = {}  # slurm id -> when squeue first stopped listing it
    while pending:
        try:
            active = active_tasks({task.job_id for task in pending})
            failures = 0
        except SlurmError:
            failures += 1
            if failures >= SQUEUE_FAILURES:
                raise
            active = {task.slurm_id for task in pending}
        now = time.monotonic()
        for task in pending:
            if task.slurm_id in active:
                gone_since.pop(task.slurm_id, None)
            else:
                gone_since.setdefault(task.slurm_id, now)
        for task in [t for t in pending if ended(submission.log_folder, t, gone_since, now)]:
            pending.remove(task)
            report(task_result(submission.log_folder, task))
        if pending:
            time.sleep(poll_seconds)
    return results


REQUEUE_GAP_SECONDS = 10.0  # how long a requeued task may be missing from squeue


def ended(log_folder: Path, task: Task, gone_since: dict[str, float], now: float) -> bool:
    """Whether a task has left the queue for good: squeue no longer lists it, and it wrote
    its result, or has stayed unlisted for REQUEUE_GAP_SECONDS (while Slurm requeues a
    task, squeue can miss it for a moment: its interrupted run is not its end)."""
    if task.slurm_id not in gone_since:
        return False
    if result_path(log_folder, task).exists():
        return True
    return now - gone_since[task.slurm_id] >= REQUEUE_GAP_SECONDS


def result_path(log_folder: Path, task: Task) -> Path:
    """Where submitit pickles the task's result when it returns."""
    return Path(log_folder) / task.slurm_id / f"{task.slurm_id}_0_result.pkl"


def task_log(log_folder: Path, task: Task) -> Path:
    """The task's stdout file (its stderr is the same name ending .err)."""
    return Path(log_folder) / task.slurm_id / f"{task.slurm_id}_0_log.out"


def task_result(log_folder: Path, task: Task):
    """How a task that left the queue ended: its pickled JobResult, else its run's
    summary, else `failed` naming the log."""
    name = task.folder.name
    pickled = result_path(log_folder, task)
    try:
        with open(pickled, "rb") as handle:
            outcome, value = pickle.load(handle)
        if outcome == "success":
            return value
        return JobResult(name, Status.FAILED.value, "-",
                         f"{one_line(RuntimeError(value))} (log: {task_log(log_folder, task)})")
    except (OSError, ValueError, EOFError, pickle.UnpicklingError):
        pass  # killed before it could write one
    summary = RunDir(task.folder).read_summary()
    if summary is not None and summary.status is not Status.RUNNING:
        return JobResult(name, summary.status.value, summary.best(), summary.error)
    return JobResult(name, Status.FAILED.value, "-",
                     f"the Slurm task {task.slurm_id} ended without a result (killed?); see "
                     f"{task_log(log_folder, task)}")
