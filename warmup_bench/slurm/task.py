"""What runs inside a Slurm task: one run, with its signals turned into an interrupt."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from ..jobs import JobResult
from ..runs import RunDir
from .options import one_line

# ---- inside a task -------------------------------------------------------------------

def _requeue_signal() -> int:
    """The signal submitit asks Slurm for before the time limit (SIGUSR2 unless
    SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"),
                   signal.SIGUSR2)


class SlurmTask:
    """What each array task runs: `run_one(job)`, with Slurm's signals turned into the
    KeyboardInterrupt that leaves a run `interrupted`. On submitit's signal it then hands
    over to submitit's handler, which calls checkpoint() and requeues the task."""

    def __init__(self, run_one: Callable):
        self.run_one = run_one

    def __call__(self, job):
        caught: list[int] = []

        def interrupt(signum, frame):
            caught.append(signum)
            for sig in (signal.SIGTERM, _requeue_signal()):
                signal.signal(sig, signal.SIG_IGN)  # a second signal must not break clean-up
            raise KeyboardInterrupt

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, _requeue_signal())}
        try:
            for sig in previous:
                signal.signal(sig, interrupt)
            return self.run_one(job)
        except KeyboardInterrupt:  # the run is already marked interrupted
            requeue = previous[_requeue_signal()]  # submitit's checkpoint-and-requeue
            if caught[:1] == [_requeue_signal()] and callable(requeue):
                try:
                    requeue(caught[0], None)  # exits the process once requeued
                except Exception as error:  # not requeued: the next submission resumes it
                    return _interrupted(job, f"not requeued ({one_line(error)})")
            name = signal.Signals(caught[0]).name if caught else "an interrupt"
            return _interrupted(job, f"stopped by Slurm ({name}); the next submission "
                                     "resumes it")
        finally:  # submitit's own handlers again, while it writes the result
            for sig, handler in previous.items():
                if handler is not None:
                    signal.signal(sig, handler)

    def checkpoint(self, job):
        """submitit calls this on its signal: the same task again (the run resumes)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


def _interrupted(job, why: str):
    return JobResult(run_folder(job).name, "interrupted", "-", why)


def run_folder(job) -> Path:
    return RunDir.of(job.out, job.config).path


