"""The figures a report draws from its runs: the error bars of a table, and per group
of runs that differ only in warmup (and seed) the LR, accuracy and diagnostics curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..runs import RunFileError
from ..warmup import untuned_linear_period
from .collect import Run
from .tables import Table, setting_label, varying_settings


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


class Band(NamedTuple):
    """One column over seeds, at the keys (steps or epochs) every run logged."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray


def across_seeds(frames: list[pd.DataFrame], key: str, column: str) -> Band | None:
    """`column` of several runs' logs aligned on `key`: mean, std (ddof 0), min, max;
    None when no run logged it (e.g. Adam's ratio for SGD, sharpness when off)."""
    columns = [f.set_index(key)[column] for f in frames
               if len(f) and column in f and f[column].notna().any()]
    if not columns:
        return None
    joined = pd.concat(columns, axis=1, join="inner").dropna()
    values = joined.to_numpy(dtype=float)
    return Band(joined.index.to_numpy(dtype=float), values.mean(1), values.std(1), values.min(1),
                values.max(1))


DIAGNOSTIC_PANELS = ("relative_update", "r_abs_mean", "r_frac_above_half",
                     "angular_update_mean", "sharpness", "preconditioned_sharpness",
                     "sharpness_threshold", "update_norm")


def steps_or_nothing(run: Run, warn: Callable[[str], None]) -> pd.DataFrame:
    """steps.csv, or (damaged: said once) nothing to draw."""
    try:
        return run.run.read_steps()
    except RunFileError as error:
        warn(f"not drawing the steps of {run.directory}: {error}")
        return pd.DataFrame()


def diagnostics_or_nothing(run: Run, warn: Callable[[str], None]) -> pd.DataFrame:
    try:
        return run.run.read_diagnostics()
    except RunFileError as error:
        warn(f"not drawing the diagnostics of {run.directory}: {error}")
        return pd.DataFrame()


def draw_figures(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                 log_x: bool = False, warn: Callable[[str], None] = print) -> list[Path]:
    """The error-bar chart of the table; per group of runs that differ only in warmup
    (and seed): LR curves, test-accuracy curves, and where runs logged diagnostics, the
    diagnostics over the first iterations and the update size over the first
    2 / (1 - beta2) iterations; one history figure per run."""
    from .. import plots

    history = {r.directory: (steps_or_nothing(r, warn), r.epochs) for r in runs}
    written = [plots.plot_error_bars(table, out / f"errors_{_slug(table.title)}.{fmt}", fmt)]
    per_group = {"warmup", "warmup_period", "seed"}
    # a group's name shows every setting that tells it apart from the other groups
    configs = [r.config for r in runs]
    naming = varying_settings(configs, per_group | {"task", "opt", "lr"})
    grouping = varying_settings(configs, per_group)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(repr(run.config.get(k)) for k in grouping)
        groups.setdefault(key, []).append(run)
    for members in groups.values():
        first = members[0].config
        name = " ".join([first["task"], setting_label("opt", first), "lr",
                         setting_label("lr", first)]
                        + [f"{k}={setting_label(k, first)}" for k in naming])
        lr_curves, acc_curves, diagnostics = {}, {}, {}
        by_warmup: dict[str, list[Run]] = {}
        for run in sorted(members, key=lambda r: r.config["seed"]):
            by_warmup.setdefault(setting_label("warmup", run.config), []).append(run)
        for label, warm_runs in by_warmup.items():
            steps = history[warm_runs[0].directory][0]
            if len(steps):
                lr_curves[label] = (steps["step"].to_numpy(), steps["lr"].to_numpy())
            accuracy = across_seeds([history[r.directory][1] for r in warm_runs], "epoch",
                                    "test_acc")
            if accuracy is not None:
                acc_curves[label] = (accuracy.x, accuracy.mean, accuracy.std)
            logs = [diagnostics_or_nothing(r, warn) for r in warm_runs]
            bands = {c: across_seeds(logs, "step", c) for c in DIAGNOSTIC_PANELS}
            if any(b is not None for b in bands.values()):
                diagnostics[label] = bands
        if lr_curves:
            written.append(plots.plot_lr_curves(lr_curves, name, out / f"lr_{_slug(name)}.{fmt}",
                                                fmt, log_x))
        if acc_curves:
            written.append(plots.plot_accuracy_curves(
                acc_curves, name, out / f"accuracy_{_slug(name)}.{fmt}", fmt))
        if diagnostics:
            written.append(plots.plot_diagnostics(
                diagnostics, name, out / f"diagnostics_{_slug(name)}.{fmt}", fmt))
            # Ma & Yarats' horizon: the untuned linear warmup's length, 2 / (1 - beta2)
            horizon = untuned_linear_period(first["beta2"]) if first["beta2"] > 0 else None
            sizes = {label: bands["update_norm"] for label, bands in diagnostics.items()
                     if bands["update_norm"] is not None}
            if sizes and horizon:
                written.append(plots.plot_update_size(
                    sizes, horizon, name, out / f"update_size_{_slug(name)}.{fmt}", fmt))
    for run in runs:
        title = f"{run.config['task']} / {run.directory.name} ({run.status})"
        written.append(plots.plot_run_history(
            *history[run.directory], title,
            out / "runs" / f"{_slug(run.cfg.task)}__{_slug(run.directory.name)}.{fmt}", fmt))
    return written
