"""`sweep --backend slurm` at the command line: the --slurm-* options (the same keys as a
grid file's [slurm] table, which they override), one array job submitted, how to follow
it, and with --wait a progress bar until every task has ended."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import typer

from . import slurm
from .cli_support import console, say, user_errors
from .progress import SweepBar
from .runs import Status
from .slurm.options import FLAGS, HELP, SlurmOptions


def slurm_parameters() -> list[inspect.Parameter]:
    """--slurm-partition, --slurm-time-limit-min, ... one per SlurmOptions field."""
    hints = typing.get_type_hints(SlurmOptions)
    params = []
    for field in dataclasses.fields(SlurmOptions):
        hint = hints[field.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        base = list[str] if field.name == "extra" else base
        flag = "--slurm-" + FLAGS.get(field.name, field.name.replace("_", "-"))
        params.append(inspect.Parameter(
            f"slurm_{field.name}", inspect.Parameter.KEYWORD_ONLY, annotation=base | None,
            default=typer.Option(None, flag, help=HELP[field.name])))
    return params


def sweep_on_slurm(work: list, out: Path, grid, options, wait: bool, shared: bool) -> None:
    """Submits the sweep's jobs as one array job (nothing twice), says how to follow it,
    and with `wait` follows it to its end: exit 1 when a run failed."""
    with user_errors():
        submission = slurm.submit(work, out, options, force=shared, name=grid.path.stem)
    if submission.queued:
        earlier = ", ".join(submission.earlier_job_ids)
        console.print(f"{submission.queued} runs are queued or running already (job {earlier}): "
                      "not submitted again.")
    if submission.busy:
        console.print(f"{len(submission.busy)} runs are being written by another process: "
                      "skipped.")
    if submission.job_id is None and not submission.tasks:
        console.print("nothing to submit: every run is finished, queued or running.")
        return
    if submission.job_id is not None:
        console.print(f"submitted array job {submission.job_id} ({submission.submitted} "
                      f"tasks); follow it with `squeue -j {submission.job_id}`; logs in "
                      f"{submission.log_folder}/")
    if not wait:
        return
    failed = 0
    try:
        with SweepBar(len(submission.tasks) + len(submission.busy), options.array_parallelism,
                      console.is_terminal) as bar:
            def ended(result) -> None:
                nonlocal failed
                failed += result.outcome == Status.FAILED.value
                bar.ended_one(result.outcome)
                if result.error:
                    say(f"{result.run}: {result.outcome}: {result.error}")
            with user_errors():
                slurm.wait(submission, ended)
    except KeyboardInterrupt:
        say("stopped waiting; the Slurm tasks go on (`scancel` them to stop them).")
        raise typer.Exit(130) from None
    console.print(f"done: {failed} failed" if failed else "done: no run failed")
    if failed:
        raise typer.Exit(1)

