"""The experiment grid file (experiments/*.toml): reading, validating, and expanding it
into the resolved config of every run.

A grid file:

    title = "CIFAR-10, no warmup"
    description = "shown by sweep and report"
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

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import SETTINGS as CONFIG_SETTINGS
from .config import ConfigError, TrainConfig, check_choice
from .tasks import TASKS, resolve_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILE_KEYS = ("title", "description", "task", "seeds", "fixed", "grid", "table", "published")
SETTINGS = tuple(name for name in CONFIG_SETTINGS if name != "task")
TABLE_KEYS = ("opt", "warmup", "lr", "model", "beta2", "schedule", "weight_decay")


class ExperimentError(ConfigError):
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
    description: str = ""

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
        if key in registries:
            try:
                check_choice(key, value, registries[key])
            except ConfigError as error:
                _fail(path, f"{where}: {error}")


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
    try:
        check_choice("task", task, TASKS)
    except ConfigError as error:
        _fail(path, str(error))
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
        try:
            check_choice("[table] key", key, TABLE_KEYS)
        except ConfigError as error:
            _fail(path, str(error))
    experiment = Experiment(path, raw.get("title", path.stem), task, tuple(seeds), fixed, grid,
                            rows, columns, raw.get("published", {}),
                            raw.get("description", ""))
    experiment.configs()  # every combination must resolve before anything runs
    return experiment
