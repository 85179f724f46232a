"""Collecting a results folder's runs: every finished run whose files can be trusted
(config valid, summary and epochs.csv in range and consistent); the rest are skipped with
a one-line warning. Reads files only, never a live process, so it works on results copied
from any machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from ..config import ConfigError, TrainConfig, check_choice
from ..runs import CONFIG, SUMMARY, RunDir, RunFileError, Status, Summary, find_runs
from ..runs.csvlogs import COUNT
from ..tasks import TASKS, recorded_data, validate


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


def _config_problem(cfg: TrainConfig | None) -> str | None:
    """Why a run's config cannot be reported (None when it can): unreadable, or naming a
    task, optimizer, ... this version does not know (so no name from a file reaches a
    path or a label unchecked)."""
    if cfg is None:
        return f"unreadable {CONFIG}"
    try:
        check_choice("task", cfg.task, TASKS)
        validate(cfg, recorded_data(cfg))  # a run's own data is not needed to report it
    except ConfigError as error:
        return f"{CONFIG} is not a valid configuration ({error})"
    return None


def collect_runs(root: Path, warn: Callable[[str], None]) -> list[Run]:
    """Every finished (complete or diverged) run under `root` whose files can be trusted:
    its config valid, its summary's and epochs.csv's numbers in range and consistent."""
    runs = []
    for run in find_runs(root):
        cfg = run.read_config()
        problem = _config_problem(cfg)
        if problem is None:
            try:
                summary = run.load_summary()
                if not summary.status.final:
                    problem = f"status {summary.status.value!r}, not finished"
                else:
                    epochs = run.read_epochs()
                    problem = _summary_problem(summary, epochs) or _meta_problem(run.read_meta())
            except RunFileError as error:
                problem = str(error)
        if problem is not None:
            warn(f"skipping {run.path}: {problem}")
        else:
            runs.append(Run(run, cfg, summary, epochs))
    return runs


def _is_count(value) -> bool:
    """A whole number in [1, 2^53], the range of run files' counts (csvlogs.COUNT)."""
    return isinstance(value, int) and not isinstance(value, bool) and \
        COUNT.low <= value <= COUNT.high


def _meta_problem(meta: dict) -> str | None:
    """Why meta.json's iterations per epoch (what steps-to and seconds-to count with)
    cannot be right, when it records one."""
    value = meta.get("iterations_per_epoch")
    if "iterations_per_epoch" in meta and not _is_count(value):
        return f"meta.json's iterations_per_epoch {value!r} is not a whole number in [1, 2^53]"
    return None


def _summary_problem(summary: Summary, epochs: pd.DataFrame) -> str | None:
    """Why the summary disagrees with the epochs it summarises (None when it does not)."""
    if not len(epochs) and summary.epochs_done:
        return f"epochs.csv has no rows, yet {SUMMARY} records {summary.epochs_done} epoch(s)"
    if len(epochs) and summary.best_test_acc is not None \
            and summary.best_test_acc != float(epochs["test_acc"].max()):
        return (f"{SUMMARY}'s best_test_acc {summary.best_test_acc!r} is not the best test_acc "
                f"of epochs.csv ({float(epochs['test_acc'].max())!r})")
    return None
