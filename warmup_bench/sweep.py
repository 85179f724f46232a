"""Experiment grids (experiments/*.toml): expansion into run configs, and their execution
locally (a process pool) or on a Ray cluster. Finished runs are never redone: a run whose
summary says `complete` (or `diverged`) is skipped, an interrupted one resumes from its
checkpoint, a failed one is retried.

A grid file:

    title = "CIFAR-10, no warmup"
    task = "cifar10-resnet20"
    seeds = [1, 2, 3, 4, 5]
    [fixed]                      # settings shared by every run
    warmup = "none"
    [grid]                       # the cartesian product of these lists is run
    opt = ["sgd", "adamw"]
    lr = [0.1, 0.01]
    # a table sets several values together: {warmup = "linear", warmup_period = 10000};
    # an axis of tables may have any name: runs = [{opt = "adamw", warmup = "none"}, ...]
    [table]                      # how `report --experiment` lays the results out
    rows = ["opt", "warmup"]
    columns = "lr"
    [published]                  # top-1 error (%) [mean, std] per row label and column
    "SGD/none" = { "0.1" = [8.23, 0.25], "0.01" = [10.70, 0.14] }
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .runs import read_summary, run_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from .tasks import TASKS, ConfigError, TrainConfig, resolve_config

FILE_KEYS = ("title", "description", "task", "seeds", "fixed", "grid", "table", "published")
SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("task",))
TABLE_KEYS = ("opt", "warmup", "lr", "model", "beta2", "schedule", "weight_decay")


class ExperimentError(ValueError):
    """A bad experiment file: the message names the file, the key and the valid choices."""


@dataclass(frozen=True)
class Experiment:
    path: Path
    title: str
    task: str
    seeds: tuple[int, ...]
    fixed: dict
    grid: dict[str, list]
    rows: tuple[str, ...] = ("opt", "warmup")
    columns: str = "lr"
    published: dict = field(default_factory=dict)

    def settings(self) -> list[dict]:
        """Every run's overrides: fixed, then one value of each grid axis, then the seed."""
        axes = [[v if isinstance(v, dict) else {key: v} for v in values]
                for key, values in self.grid.items()]
        runs = []
        for combination in itertools.product(*axes):
            for seed in self.seeds:
                merged = dict(self.fixed)
                for part in combination:
                    merged.update(part)
                runs.append({**merged, "seed": seed})
        return runs

    def configs(self, epochs: int | None = None) -> list[TrainConfig]:
        """The resolved config of every run; an ExperimentError names a bad combination."""
        extra = {"epochs": epochs} if epochs is not None else {}
        configs = []
        for settings in self.settings():
            try:
                configs.append(resolve_config(self.task, {**settings, **extra}))
            except ConfigError as error:  # values that are valid alone but not together
                _fail(self.path, f"grid combination {settings} is invalid: {error}")
        return configs


def _fail(path: Path, message: str):
    raise ExperimentError(f"{path}: {message}")


def _check_settings(path: Path, where: str, settings: dict) -> None:
    for key in settings:
        if key not in SETTINGS:
            _fail(path, f"unknown setting {key!r} in {where}; valid: {', '.join(SETTINGS)}.")


def _check_names(path: Path, where: str, settings: dict) -> None:
    from .data import AUGMENTATIONS, DATASETS
    from .models import MODELS
    from .optim import OPTIMIZERS, SCHEDULES, WARMUPS

    registries = {"opt": OPTIMIZERS, "warmup": WARMUPS, "schedule": SCHEDULES,
                  "model": MODELS, "dataset": DATASETS, "augment": AUGMENTATIONS}
    for key, value in settings.items():
        if key in registries and value not in registries[key]:
            _fail(path, f"{where}: {key} {value!r} is not valid; choose from: "
                        f"{', '.join(registries[key])}.")


def load_experiment(path: Path) -> Experiment:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        _fail(path, f"cannot read ({error.strerror}).")
    except tomllib.TOMLDecodeError as error:
        _fail(path, f"not valid TOML ({error}).")
    for key in raw:
        if key not in FILE_KEYS:
            _fail(path, f"unknown key {key!r}; valid keys: {', '.join(FILE_KEYS)}.")
    task = raw.get("task")
    if task not in TASKS:
        _fail(path, f"task {task!r} is not valid; choose from: {', '.join(TASKS)}.")
    seeds = raw.get("seeds", [1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        _fail(path, f"seeds must be a non-empty list of ints, got {seeds!r}.")
    fixed, grid = raw.get("fixed", {}), raw.get("grid", {})
    _check_settings(path, "[fixed]", fixed)
    for key, values in grid.items():
        # a key that is no setting names an axis of tables (settings bundled together)
        if key not in SETTINGS and not (isinstance(values, list)
                                        and all(isinstance(v, dict) for v in values)):
            _fail(path, f"unknown setting {key!r} in [grid]; valid: {', '.join(SETTINGS)} "
                        "(or any name for a list of tables).")
        if not isinstance(values, list) or not values:
            _fail(path, f"[grid] {key} must be a non-empty list, got {values!r}.")
        for value in values:
            bundle = value if isinstance(value, dict) else {key: value}
            _check_settings(path, f"[grid] {key}", bundle)
            _check_names(path, f"[grid] {key}", bundle)
    _check_names(path, "[fixed]", fixed)
    table = raw.get("table", {})
    for key in table:
        if key not in ("rows", "columns"):
            _fail(path, f"unknown key {key!r} in [table]; valid keys: rows, columns.")
    rows = tuple(table.get("rows", ("opt", "warmup")))
    columns = table.get("columns", "lr")
    for key in (*rows, columns):
        if key not in TABLE_KEYS:
            _fail(path, f"[table] key {key!r} is not valid; choose from: {', '.join(TABLE_KEYS)}.")
    experiment = Experiment(path, raw.get("title", path.stem), task, tuple(seeds), fixed, grid,
                            rows, columns, raw.get("published", {}))
    experiment.configs()  # every combination must resolve before anything runs
    return experiment


# ---- execution -----------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    config: dict
    out: str
    data_dir: str | None
    device: str
    threads: int | None = None


def run_job(job: Job) -> dict:
    """Runs one config to its end (resuming if it can) and reports its status; never raises.
    A top-level function so that process pools and Ray can ship it."""
    import torch

    from .train import train

    if job.threads:
        torch.set_num_threads(job.threads)
    cfg = TrainConfig.from_dict(job.config)
    try:
        result = train(cfg, Path(job.out), data_dir=Path(job.data_dir) if job.data_dir else None,
                       device=job.device, resume=True, on_note=lambda _: None)
        status = "complete" if result.status == "already-complete" else result.status
        return {"run": result.directory.name, "status": status,
                "best_test_acc": result.summary.get("best_test_acc"),
                "error": result.summary.get("error")}
    except Exception as error:  # one failed run must not stop a sweep
        return {"run": run_dir(Path(job.out), cfg).name, "status": "failed",
                "best_test_acc": None, "error": f"{type(error).__name__}: {error}"}


FINISHED = ("complete", "diverged")  # final results: a diverged run diverges again


def plan(configs: list[TrainConfig], out: Path) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """(already finished, still to run): failed runs are retried, interrupted ones resumed."""
    done, todo = [], []
    for cfg in configs:
        summary = read_summary(run_dir(out, cfg))
        (done if summary and summary.get("status") in FINISHED else todo).append(cfg)
    return done, todo


def make_jobs(configs: list[TrainConfig], out: Path, data_dir: Path | None,
              devices: list[str], jobs: int) -> list[Job]:
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs)) if jobs > 1 else None
    return [Job(cfg.to_dict(), str(out), str(data_dir) if data_dir else None,
                devices[i % len(devices)], threads) for i, cfg in enumerate(configs)]


def run_local(jobs: list[Job], parallel: int, on_result: Callable[[dict], None]) -> None:
    if parallel <= 1:
        for job in jobs:
            on_result(run_job(job))
        return
    # spawn: a forked child would inherit the parent's torch thread pools and locks
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            on_result(future.result())


def run_ray(jobs: list[Job], address: str | None, cpus: float, gpus: float,
            on_result: Callable[[dict], None]) -> None:
    try:
        import ray
    except ImportError:
        raise ExperimentError("--backend ray needs Ray: pip install 'warmup-bench[ray]'.") \
            from None
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
