"""Collecting a results folder's runs: every finished run whose files can be trusted; the
rest are skipped with a one-line warning. Trusted: its files its own (no links), its
config valid and the one its folder is named for, and the CSVs the record its summary and
meta.json agree with (every number of summary.json replayed from epochs.csv, its status
from the epochs the config asks for, meta.json's iterations per epoch from the epochs of
the steps in steps.csv). Reads files only, never a live process, so it works on results
copied from any machine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ConfigError, TrainConfig, check_choice
from ..runs import (
    CONFIG,
    PRECISE,
    SUMMARY,
    RunDir,
    RunFileError,
    Status,
    Summary,
    find_runs,
    run_name,
)
from ..runs.schema import COUNT
from ..runs.summary import RECORDED
from ..tasks import TASKS, judged_by, planned_iterations_per_epoch, recorded_data, validate


@dataclass
class Run:
    run: RunDir
    cfg: TrainConfig
    summary: Summary
    epochs: pd.DataFrame  # epochs.csv, every value checked

    @cached_property
    def config(self) -> dict:
        """The settings as a dict (grouping and labels read them by name)."""
        return self.cfg.to_dict()

    @property
    def directory(self) -> Path:
        return self.run.path

    @property
    def status(self) -> Status:
        return self.summary.status

    @cached_property
    def meta(self) -> dict:
        return self.run.read_meta()

    @property
    def iterations_per_epoch(self) -> int | None:
        """Optimizer steps per epoch, as meta.json recorded it (None if it did not)."""
        value = self.meta.get("iterations_per_epoch")
        return value if _is_count(value) else None


def _config_problem(run: RunDir, cfg: TrainConfig | None) -> str | None:
    """Why a run's config cannot be reported (None when it can): unreadable, naming a
    task, optimizer, ... this version does not know (so no name from a file reaches a
    path or a label unchecked), or not the config the folder's name was made from (a
    run's name ends in its config's hash: an edited config.json would put the run in
    another cell)."""
    if cfg is None:
        return f"unreadable {CONFIG}"
    try:
        check_choice("task", cfg.task, TASKS)
        validate(cfg, recorded_data(cfg))  # a run's own data is not needed to report it
    except ConfigError as error:
        return f"{CONFIG} is not a valid configuration ({error})"
    if run_name(cfg) != run.name:
        return (f"its {CONFIG} is not the config its folder was named for (that would be "
                f"{run_name(cfg)}): edited after the run, or the folder renamed")
    return None


def collect_runs(root: Path, warn: Callable[[str], None]) -> list[Run]:
    """Every finished (complete or diverged) run under `root` whose files can be trusted:
    its config valid, its summary's and epochs.csv's numbers in range and consistent."""
    runs = []

    def linked(path: Path) -> None:
        warn(f"skipping {path}: a symbolic link (run folders are read where they are, never "
             "through links)")

    for run in find_runs(root, linked):
        try:
            run.check_files()
        except RunFileError as error:
            warn(f"skipping {run.path}: {error}")
            continue
        cfg = run.read_config()
        problem = _config_problem(run, cfg)
        if problem is None:
            try:
                summary = run.load_summary()
                if not summary.status.final:
                    problem = f"status {summary.status.value!r}, not finished"
                else:
                    epochs = run.read_epochs()
                    problem = _summary_problem(summary, epochs, cfg) or \
                        _steps_problem(run, run.read_meta(), summary, cfg)
            except RunFileError as error:
                problem = str(error)
        if problem is not None:
            warn(f"skipping {run.path}: {problem}")
        else:
            runs.append(Run(run, cfg, summary, epochs))
    return runs


def recomputed_view(run: Run) -> Run | None:
    """The run as --precise-bn evaluated it: each evaluation column from its *_pbn twin
    (BatchNorm statistics recomputed at the epoch's weights), and the summary replayed
    from those rows (the status and timing its own); None when it ran without."""
    epochs = run.epochs
    if f"test_acc{PRECISE}" not in epochs:
        return None
    swapped = epochs.assign(**{c[:-len(PRECISE)]: epochs[c] for c in epochs.columns
                               if c.endswith(PRECISE)})
    summary = Summary(judged_by=run.summary.judged_by)
    for row in swapped.to_dict("records"):
        summary.record(row)
    kept = {key: getattr(run.summary, key) for key in
            ("status", "wall_seconds", "error", "diverged_at", "notes", "epochs_done")}
    return Run(run.run, run.cfg, dataclasses.replace(summary, **kept), swapped)


def _is_count(value) -> bool:
    """A whole number in [1, 2^53], the range of run files' counts (csvlogs.COUNT)."""
    return isinstance(value, int) and not isinstance(value, bool) and \
        COUNT.low <= value <= COUNT.high


def _steps_problem(run: RunDir, meta: dict, summary: Summary, cfg: TrainConfig
                   ) -> str | None:
    """Why steps.csv, meta.json and the summary's divergence disagree (None when they do
    not). meta.json's iterations per epoch I (what steps-to and seconds-to count with)
    must be a count, at most what the data set's size allows, and fit every logged step
    (step s of epoch e needs (e-1) I < s <= e I); a complete run's last logged step is
    its last log step; a diverged run's divergence is a whole step of the epoch after
    its last row, its last logged step within one log interval before it; a run that
    trained an epoch logged its first step."""
    value = meta.get("iterations_per_epoch")
    known = "iterations_per_epoch" in meta
    if known and not _is_count(value):
        return f"meta.json's iterations_per_epoch {value!r} is not a whole number in [1, 2^53]"
    most = planned_iterations_per_epoch(cfg)
    if known and most is not None and value > most:
        return (f"meta.json's iterations_per_epoch {value} is more than {cfg.dataset}'s "
                f"training images allow at batch size {cfg.batch_size} ({most})")
    steps = run.read_steps()
    step = steps["step"].to_numpy(dtype=float) if len(steps) else np.zeros(0)
    epoch = steps["epoch"].to_numpy(dtype=float) if len(steps) else np.zeros(0)
    if summary.epochs_done and not len(step):
        return f"steps.csv has no rows, yet {summary.epochs_done} epoch(s) were trained"
    fits = f"meta.json's iterations_per_epoch {value} does not fit steps.csv"
    if known:
        outside = ((epoch - 1) * value >= step) | (step > epoch * value)
        if outside.any():
            k = int(outside.argmax())
            return f"{fits} (step {int(step[k])} logged in epoch {int(epoch[k])})"
        if summary.status is Status.COMPLETE and \
                cfg.epochs * value - step.max() >= cfg.log_interval:
            return (f"{fits} (its last step {int(step.max())} is not the last log step of "
                    f"{cfg.epochs} x {value} iterations)")
    if summary.status is Status.DIVERGED:
        at = summary.diverged_at or {}
        where, last = at.get("step"), (step.max() if len(step) else 0)
        if not _is_count(where) or not where - cfg.log_interval <= last <= where or known \
                and not (at["epoch"] - 1) * value < where <= at["epoch"] * value:
            return (f"{SUMMARY} says diverged at step {where!r} of epoch {at.get('epoch')!r}, "
                    f"which steps.csv (last step {int(last)}) and {value} iterations per epoch "
                    "cannot have produced")
    return None


def _summary_problem(summary: Summary, epochs: pd.DataFrame, cfg: TrainConfig) -> str | None:
    """Why summary.json disagrees with epochs.csv, the record it summarises (None when it
    does not): its epochs done, its status (complete: every epoch the config asks for;
    diverged: in the epoch after the last row), and every number, replayed from the rows.
    A number a summary leaves out (null, or absent in an older version's) is not
    reported, so it is not checked."""
    rows = len(epochs)
    if rows and epochs["epoch"].tolist() != list(range(1, rows + 1)):
        return "epochs.csv's epochs are not 1, 2, 3, ... one row each"
    if summary.epochs_done != rows:
        return (f"{SUMMARY} records {summary.epochs_done} epoch(s) done; epochs.csv has {rows} "
                "row(s)")
    if summary.status is Status.COMPLETE and rows != cfg.epochs:
        return (f"{SUMMARY} says complete, yet epochs.csv has {rows} of the {cfg.epochs} epochs "
                "the config asks for")
    if summary.status is Status.DIVERGED:
        at = summary.diverged_at
        if rows >= cfg.epochs or not isinstance(at, dict) or not _is_count(at.get("epoch")) \
                or at["epoch"] != rows + 1:
            return (f"{SUMMARY} says diverged at {at!r}, which is not in the epoch after "
                    f"epochs.csv's last ({rows} of {cfg.epochs})")
    seconds = float(epochs["seconds"].sum()) if rows else 0.0
    if summary.wall_seconds < seconds * (1 - 1e-9):
        return (f"{SUMMARY}'s wall_seconds {summary.wall_seconds!r} is less than its epochs' "
                f"seconds in epochs.csv ({seconds!r})")
    replayed = Summary(judged_by=judged_by(cfg))
    if summary.judged_by != replayed.judged_by:
        return f"{SUMMARY} says the run is judged by {summary.judged_by}, not its task's " \
               f"{replayed.judged_by}"
    for row in epochs.to_dict("records"):
        replayed.record(row)
    for key in RECORDED:
        claimed, recorded = getattr(summary, key), getattr(replayed, key)
        if claimed is not None and claimed != recorded:
            return f"{SUMMARY}'s {key} {claimed!r} is not epochs.csv's ({_plain(recorded)!r})"
    return None


def _plain(value):
    """numpy scalars as Python's (for a message)."""
    return value.item() if hasattr(value, "item") else value
