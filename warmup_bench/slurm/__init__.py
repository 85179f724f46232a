"""Running a sweep's jobs on a Slurm cluster: one array job per submission, one array task
per run, through submitit.

Rules:
- Nothing is done twice. Before submitting, a job whose run is complete or diverged is
  skipped, one still queued or running from an earlier submission (its id in
  `<out>/.slurm/queue.json` and in `squeue`) is skipped, and one whose run folder's lock is
  held is skipped as busy. With nothing left, nothing is submitted.
- Bad input (submitit or sbatch missing, a node-local --out, an unknown partition, a time
  limit over the partition's, anything sbatch refuses) is one-line ConfigError, raised
  before anything is submitted or recorded.
- A task trains its run with `run_one(job)` (by default `warmup_bench.sweep.run_job`,
  which takes the run folder's lock and resumes from its checkpoint). SIGTERM (scancel,
  the time limit, a preemption) reaches the training as KeyboardInterrupt, so the run is
  left `interrupted` with its last epoch checkpointed. submitit's signal (SIGUSR2, asked
  for min(90 s, a quarter of the limit) before the time limit; Slurm may send it up to a
  minute earlier) does the same, then requeues the task through
  submitit's checkpoint(); the requeued task resumes the run. After `max_requeues` time
  limits (submitit counts a signal as one once the task ran min(80% of its limit, the
  limit less 10 minutes)) a task stays interrupted: the next submission resumes it.
- Logs: submitit's per-task stdout/stderr in `<out>/.slurm/<jobid>_<task>/` (for the
  plain job submitit makes of a single task: `<out>/.slurm/<jobid>/`).
"""

from ..jobs import slurm_ids
from .options import (
    SLURM_FOLDER,
    SlurmError,
    SlurmOptions,
    check_cluster,
    check_shared_folder,
    cluster_options,
    require_slurm_commands,
    require_submitit,
)
from .submit import Submission, Task, cancel, submit, task_log, task_result, wait
from .task import SlurmTask

__all__ = ["SlurmOptions", "SlurmError", "Submission", "Task", "SlurmTask", "SLURM_FOLDER",
           "submit", "wait", "cancel", "task_log", "task_result", "slurm_ids",
           "check_cluster", "check_shared_folder", "require_slurm_commands",
           "require_submitit", "cluster_options"]
