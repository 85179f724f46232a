"""The figures a report draws from its runs, as a list of drawing jobs (a builder of
plots.py, its numbers, its file) that are then drawn in parallel worker processes:

  errors_*        the table's cells as error bars
  lr_*, accuracy_*, diagnostics_*, update_size_*
                  per group of runs that differ only in warmup (and seed)
  phase_*         the metric over LR x warmup length, where a group varies both
  sensitivity_*   the metric against the LR, a line per warmup, where a group varies LR
  runs/*          one history per run: on request (--run-figures all), else only the
                  diverged runs', which a reader wants to see
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import plots
from ..config import TrainConfig
from ..metrics import Metric, parse_metric
from ..optim import WARMUPS
from ..runs import RunFileError
from ..warmup import untuned_linear_period
from ..wsd import WarmupStableDecay
from .collect import Run
from .tables import Table, setting_label, varying_settings

RUN_FIGURES = ("diverged", "all", "none")
PARALLEL_FROM = 8  # fewer figures than this are drawn in this process (no start-up cost)


def _slug(text: str) -> str:
    """A file-name part: letters, digits, '-' and '.' kept, every other run of
    characters one '_'."""
    return re.sub(r"[^0-9A-Za-z.-]+", "_", text).strip("_")


class Band(NamedTuple):
    """One column over seeds, at the keys (steps or epochs) every run logged."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    median: np.ndarray | None = None  # for quantities whose seeds differ by decades


def across_seeds(frames: list[pd.DataFrame], key: str, column: str) -> Band | None:
    """`column` of several runs' logs aligned on `key`: mean, std (ddof 0), min, max and
    median over the runs, at the keys where every run that logged it has a finite number; None
    when no run logged it (e.g. Adam's ratio for SGD, sharpness when off)."""
    logged = [(f[key].to_numpy(), f[column].to_numpy(dtype=float)) for f in frames
              if len(f) and column in f and f[column].notna().any()]
    if not logged:
        return None
    # keys increase strictly within a log (read_csv checks), so each is found once
    keys = functools.reduce(np.intersect1d, [k for k, _ in logged])
    values = np.stack([v[np.searchsorted(k, keys)] for k, v in logged], axis=1)
    complete = np.isfinite(values).all(axis=1)  # an inf (a diverging step) cannot be drawn
    keys, values = keys[complete].astype(float), values[complete]
    return Band(keys, values.mean(1), values.std(1), values.min(1), values.max(1),
                np.median(values, 1))


BANDED = ("relative_update", "r_abs_mean", "r_frac_above_half", "angular_update_mean",
          "sharpness_ratio", "update_norm")


def _read(run: Run, what: str, warn: Callable[[str], None]) -> pd.DataFrame:
    """steps.csv or diagnostics.csv, or (damaged: said once) nothing to draw."""
    try:
        frame = run.run.read_steps() if what == "steps" else run.run.read_diagnostics()
    except RunFileError as error:
        warn(f"not drawing the {what} of {run.directory}: {error}")
        return pd.DataFrame()
    if what == "diagnostics" and "sharpness_threshold" in frame:
        # Adam's preconditioned sharpness where estimated, else the plain one, over the
        # threshold it is compared with: above 1, the step is unstable
        sharp = frame.get("preconditioned_sharpness")
        sharp = sharp.fillna(frame["sharpness"]) if sharp is not None else frame["sharpness"]
        frame = frame.assign(sharpness_ratio=sharp / frame["sharpness_threshold"])
    return frame


def warmup_length(config: dict) -> int:
    """The iterations a run's warmup lasts (its entry's own rule: 0 without one)."""
    entry = WARMUPS.get(config["warmup"])
    return int(entry.length(TrainConfig.from_dict(config))) if entry else 0


def figure_jobs(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                log_x: bool = False, warn: Callable[[str], None] = print,
                metric: Metric | None = None, run_figures: str = "diverged") -> list[tuple]:
    """What to draw for `table` and its runs: (builder, path, its arguments) each."""
    return list(iter_figure_jobs(table, runs, out, fmt, log_x, warn, metric, run_figures))


def iter_figure_jobs(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                     log_x: bool = False, warn: Callable[[str], None] = print,
                     metric: Metric | None = None, run_figures: str = "diverged"
                     ) -> Iterator[tuple]:
    """figure_jobs one at a time, as each group's logs are read (so that drawing the first
    figures overlaps reading the rest)."""
    metric = metric or parse_metric("best")
    yield ("error_bars_figure", out / f"errors_{_slug(table.title)}.{fmt}", table)
    per_group = {"warmup", "warmup_period", "seed"}
    configs = [r.config for r in runs]
    # a group's name shows every setting that tells it apart from the other groups
    naming = varying_settings(configs, per_group | {"task", "opt", "lr"})
    grouping = varying_settings(configs, per_group)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(repr(run.config.get(k)) for k in grouping), []).append(run)
    zoom = late_range(runs)
    for members in groups.values():
        first = members[0].config
        name = " ".join([first["task"], setting_label("opt", first), "lr",
                         setting_label("lr", first)]
                        + [f"{k}={setting_label(k, first)}" for k in naming])
        yield from _group_jobs(members, name, out, fmt, log_x, warn, zoom)
    for name, members in _groups_over(runs, {"lr"} | per_group).items():
        yield from _analysis_jobs(members, name, out, fmt, metric)
    for run in runs:
        if run_figures == "all" or run_figures == "diverged" and run.status == "diverged":
            title = f"{run.config['task']} / {run.directory.name} ({run.status.value})"
            path = out / "runs" / f"{_slug(run.cfg.task)}__{_slug(run.directory.name)}.{fmt}"
            yield ("run_history_figure", path, _read(run, "steps", warn), run.epochs, title,
                   run.summary.judged_by == "loss")


def late_range(runs: list[Run]) -> tuple[float, float] | None:
    """The range of every run's test accuracy (a text task's: held-out loss) over the
    second half of its epochs, where a table's differences live: one zoomed y-axis for
    every accuracy figure of a report, so that figures of different LRs compare."""
    values = []
    for run in runs:
        column = "test_loss" if run.summary.judged_by == "loss" else "test_acc"
        epochs = run.epochs
        if column in epochs and len(epochs):
            late = epochs[column][epochs["epoch"] > epochs["epoch"].max() / 2].to_numpy(float)
            values.extend(late[np.isfinite(late)])
    return (float(min(values)), float(max(values))) if values else None


def _group_jobs(members: list[Run], name: str, out: Path, fmt: str, log_x: bool,
                warn: Callable[[str], None],
                zoom: tuple[float, float] | None = None) -> list[tuple]:
    """LR, accuracy (a text task's: held-out loss) and diagnostics curves of runs
    differing only in warmup and seed."""
    lr_curves, acc_curves, diagnostics = {}, {}, {}
    by_loss = members[0].summary.judged_by == "loss"
    by_warmup: dict[str, list[Run]] = {}
    for run in sorted(members, key=lambda r: r.config["seed"]):
        by_warmup.setdefault(setting_label("warmup", run.config), []).append(run)
    for label, warm_runs in by_warmup.items():
        steps = _read(warm_runs[0], "steps", warn)
        if len(steps):
            lr_curves[label] = (steps["step"].to_numpy(), steps["lr"].to_numpy())
        accuracy = across_seeds([r.epochs for r in warm_runs], "epoch",
                                "test_loss" if by_loss else "test_acc")
        if accuracy is not None:
            acc_curves[label] = accuracy
        logs = [_read(r, "diagnostics", warn) for r in warm_runs]
        bands = {c: across_seeds(logs, "step", c) for c in BANDED}
        if any(b is not None for b in bands.values()):
            diagnostics[label] = bands
    slug, jobs = _slug(name), []
    if lr_curves:
        jobs.append(("lr_curves_figure", out / f"lr_{slug}.{fmt}", lr_curves, name, log_x,
                     schedule_marks(members)))
    if acc_curves:
        jobs.append(("accuracy_curves_figure",
                     out / f"{'loss' if by_loss else 'accuracy'}_{slug}.{fmt}", acc_curves,
                     name, by_loss, zoom))
    if diagnostics:
        jobs.append(("diagnostics_figure", out / f"diagnostics_{slug}.{fmt}", diagnostics,
                     name))
        beta2 = members[0].config["beta2"]
        # Ma & Yarats' horizon: the untuned linear warmup's length, 2 / (1 - beta2)
        horizon = untuned_linear_period(beta2) if beta2 > 0 else None
        sizes = {label: bands["update_norm"] for label, bands in diagnostics.items()
                 if bands["update_norm"] is not None}
        if sizes and horizon:
            jobs.append(("update_size_figure", out / f"update_size_{slug}.{fmt}", sizes,
                         horizon, name))
    return jobs


def schedule_marks(runs: list[Run]) -> tuple[tuple[float, str], ...]:
    """Where a WSD schedule's phases begin (the warmup's end, the cooldown's start), when
    every run of a group shares them; nothing for other schedules."""
    marks = set()
    for run in runs:
        iterations, delay = run.iterations_per_epoch, run.meta.get("delay_schedule_iterations")
        if run.cfg.schedule != "wsd" or iterations is None or not isinstance(delay, int):
            return ()
        total = max(1, iterations * run.cfg.epochs - delay)
        stable = total - WarmupStableDecay.cooldown_length(total, run.cfg.cooldown_fraction)
        marks.add((float(delay + stable + 1), "cooldown starts"))
        if (length := warmup_length(run.config)) > 0:
            marks.add((float(length), f"{setting_label('warmup', run.config)} warmup ends"))
    return tuple(sorted(marks))


def _groups_over(runs: list[Run], within: set[str]) -> dict[str, list[Run]]:
    """The runs grouped by every setting outside `within` (one figure per optimizer and
    per other varying setting), each group named by what tells it apart."""
    configs = [r.config for r in runs]
    grouping = varying_settings(configs, within)
    naming = varying_settings(configs, within | {"task", "opt"})
    groups: dict[str, list[Run]] = {}
    for run in runs:
        c = run.config
        name = " ".join([c["task"], setting_label("opt", c)]
                        + [f"{k}={setting_label(k, c)}" for k in naming if k in grouping])
        groups.setdefault(name, []).append(run)
    return groups


class Analysis(NamedTuple):
    """A metric over LR x warmup: per (lr, warmup) its values, and the diverged runs."""

    values: dict[tuple[float, str], list[float]]
    diverged: dict[tuple[float, str], int]
    # a warmup label's length: its effective period T(omega) in iterations (its nominal
    # length where its omega is not known: a plugin's warmup)
    lengths: dict[str, float]
    nominal: frozenset[str] = frozenset()  # the labels measured by nominal length


def effective_length(config: dict) -> tuple[float, bool]:
    """A run's warmup length as the phase diagram measures it: T(omega), Ma & Yarats'
    effective period, and False; or its nominal length and True where T is unknown."""
    entry = WARMUPS.get(config["warmup"])
    if entry is None:
        return 0.0, True
    period = entry.effective_period(TrainConfig.from_dict(config))
    return (period, False) if period is not None else (float(warmup_length(config)), True)


def analyse(runs: list[Run], metric: Metric) -> Analysis:
    values, diverged, lengths, nominal = {}, {}, {}, set()
    for run in runs:
        key = (run.cfg.lr, setting_label("warmup", run.config))
        if key[1] not in lengths:
            lengths[key[1]], guessed = effective_length(run.config)
            if guessed:
                nominal.add(key[1])
        values.setdefault(key, [])
        if run.status == "diverged":
            diverged[key] = diverged.get(key, 0) + 1
        elif (value := metric.value(run)) is not None:
            values[key].append(value)
    return Analysis(values, diverged, lengths, frozenset(nominal))


def _analysis_jobs(members: list[Run], name: str, out: Path, fmt: str,
                   metric: Metric) -> list[tuple]:
    """The phase diagram (metric over LR x warmup length) where the group varies both,
    and the LR sensitivity (metric against LR, a line per warmup) where it varies LR."""
    found = analyse(members, metric)
    lrs = sorted({lr for lr, _ in found.values})
    if len(lrs) < 2:
        return []
    slug, ylabel = _slug(name), metric.title
    jobs = [("lr_sensitivity_figure", out / f"sensitivity_{slug}.{fmt}",
             sensitivity_curves(found), name, ylabel)]
    if len(set(found.lengths.values())) >= 2:
        jobs.append(("phase_diagram_figure", out / f"phase_{slug}.{fmt}",
                     phase_grid(found), name, ylabel, 144, metric.higher_is_better,
                     metric.decimals))
    return jobs


def sensitivity_curves(found: Analysis) -> dict[str, tuple]:
    """Per warmup (shortest first): LRs, mean, min and max over seeds (NaN where no run
    has a value), and the LRs where a run diverged."""
    curves = {}
    for label in sorted(found.lengths, key=lambda w: (found.lengths[w], w)):
        lrs = sorted(lr for lr, w in found.values if w == label)
        values = [found.values[(lr, label)] for lr in lrs]

        def over(function, values=values):
            return np.array([function(v) if v else np.nan for v in values])
        curves[label] = (np.array(lrs), over(np.mean), over(np.min), over(np.max),
                         [lr for lr in lrs if found.diverged.get((lr, label))])
    return curves


def phase_grid(found: Analysis) -> dict:
    """The heatmap's numbers: LRs (columns), warmup lengths with their labels (rows,
    shortest first), mean per cell (NaN: not run, or no value), diverged runs per cell
    and the runs of each cell."""
    lrs = sorted({lr for lr, _ in found.values})
    warmups = sorted(found.lengths, key=lambda w: (found.lengths[w], w))
    shape = (len(warmups), len(lrs))
    mean, diverged, runs = np.full(shape, np.nan), np.zeros(shape, int), np.zeros(shape, int)
    for (lr, label), values in found.values.items():
        i, j = warmups.index(label), lrs.index(lr)
        mean[i, j] = np.mean(values) if values else np.nan
        diverged[i, j] = found.diverged.get((lr, label), 0)
        runs[i, j] = len(values) + diverged[i, j]
    return {"lrs": lrs, "warmups": warmups, "lengths": [found.lengths[w] for w in warmups],
            "nominal": [w in found.nominal for w in warmups],
            "mean": mean, "diverged": diverged, "runs": runs}


def draw_all(jobs: Iterable[tuple], fmt: str, workers: int | None = None) -> list[Path]:
    """Draws the jobs as they come, each file once: in worker processes when there are
    many (each figure is a second or so of matplotlib, and independent of the others)."""
    jobs = _once_per_file(jobs)
    first = list(itertools.islice(jobs, PARALLEL_FROM))
    if len(first) < PARALLEL_FROM:
        return [plots.draw(builder, path, fmt, *args) for builder, path, *args in first]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1,
                             mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(plots.draw, builder, path, fmt, *args)
                   for builder, path, *args in itertools.chain(first, jobs)]
        return [f.result() for f in futures]


def _once_per_file(jobs: Iterable[tuple]) -> Iterator[tuple]:
    """The jobs, less any for a file already drawn (tables can share a group of runs)."""
    seen = set()
    for job in jobs:
        if job[1] not in seen:
            seen.add(job[1])
            yield job


def draw_figures(table: Table, runs: list[Run], out: Path, fmt: str = "png",
                 log_x: bool = False, warn: Callable[[str], None] = print,
                 metric: Metric | None = None, run_figures: str = "diverged") -> list[Path]:
    return draw_all(iter_figure_jobs(table, runs, out, fmt, log_x, warn, metric, run_figures),
                    fmt)
