"""The experiment grid file (experiments/*.toml): reading, validating, and expanding it
into the resolved config of every run.

A grid file:

    title = "CIFAR-10, no warmup"
    description = "shown by sweep and report"
    plugins = ["cosine_warmup.py"] # plugin files (paths relative to this file): Python code,
                                 # loaded only with the user's consent (PluginConsent)
    tensorboard = false          # also write TensorBoard event files in every run folder
    pack = "off"                 # sweep's default --pack: off, auto or a pack size
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
    split = "opt"                # one table per optimizer (a row setting), as the papers do
    metric = "best"              # best | final | at-best-val | steps-to:ACC | ... (see
                                 # warmup_bench.metrics; report --metric overrides)
    [slurm]                      # sweep --backend slurm: what each run asks for (see
    partition = "gpu"            # warmup_bench.slurm.SlurmOptions; --slurm-* overrides)
    [published]                  # top-1 error (%) [mean, std] per row label and column
    "SGD/none" = { "0.1" = [8.23, 0.25], "0.01" = [10.70, 0.14] }
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import MAX_SEED, NAMES, ConfigError, TrainConfig, check_choice, check_value_type
from .config import SETTINGS as CONFIG_SETTINGS
from .data.verify import sha256_of
from .metrics import Metric, parse_metric
from .plugins import load_plugins
from .registry import Registry
from .slurm.options import SlurmOptions, grid_extras_needing_consent
from .sweep_packs import parse_pack
from .tasks import TASKS, UnreadSetting, resolve_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILE_KEYS = ("title", "description", "plugins", "tensorboard", "task", "seeds", "fixed", "grid",
             "table", "published", "slurm", "pack")
SETTINGS = tuple(name for name in CONFIG_SETTINGS if name not in ("task", "plugins"))
TABLE_KEYS = tuple(k for k in CONFIG_SETTINGS if k not in ("task", "seed", "plugins"))
TABLE_FILE_KEYS = ("rows", "columns", "split", "metric")
MAX_GRID_BYTES = 1 << 20  # a grid file is a page of text: more is not one
MAX_GRID_RUNS = 100_000  # resolving takes about 0.2 ms a run: 20 s at this bound


class ExperimentError(ConfigError):
    """A bad experiment file: the message names the file, the key and the valid choices."""


@dataclass(frozen=True)
class PluginConsent:
    """Which of a grid's plugin files the user agreed to run. A grid is what people
    download to reproduce a paper, so reading one (even for --dry-run or a report's
    labels) never runs its plugins by itself: `allow` (--allow-plugins) consents to those
    inside the grid's folder, `named` (--plugin FILE) to those files wherever they are."""

    allow: bool = False
    named: tuple[Path, ...] = ()

    def refusal(self, grid: Path, files: tuple[Path, ...]) -> str | None:
        """Why some of `files` may not be loaded (one line naming each with its SHA-256),
        or None when all may."""
        named = {Path(f).resolve() for f in self.named}
        folder = grid.resolve().parent
        refused, outside = [], []
        for file in files:
            resolved = file.resolve()
            if resolved in named:
                continue
            inside = resolved.is_relative_to(folder)
            if self.allow and inside:
                continue
            (refused if inside else outside).append(
                f"{file.name} (sha256:{sha256_of(file)[:16]})")
        if not refused and not outside:
            return None
        parts = []
        if refused:
            parts.append(f"it lists plugin(s) {', '.join(refused)}, which run Python code: "
                         "pass --allow-plugins to load them")
        if outside:
            parts.append(f"plugin(s) {', '.join(outside)} lie outside the grid's folder: "
                         "name each with --plugin FILE to load it")
        return "; ".join(parts) + "."


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
    published: dict = field(default_factory=dict)  # {row label: {column: (mean, std)}}
    description: str = ""
    metric: Metric = field(default_factory=lambda: parse_metric("best"))  # report's default
    split: str | None = None  # a row setting: one table per value of it
    slurm: SlurmOptions = SlurmOptions()  # [slurm]: what each run asks a cluster for
    resolved: tuple[TrainConfig, ...] = ()  # every distinct run, in grid order
    duplicates: int = 0  # grid entries that resolved to a run listed before them
    plugins: tuple[Path, ...] = ()  # plugin files, loaded before anything is validated
    tensorboard: bool = False
    pack: int | str = 1  # sweep's default --pack: a pack size (1: off) or "auto"
    left_out: dict = field(default_factory=dict)  # [fixed] key -> runs that do not read it

    def notes(self) -> list[str]:
        """What resolving the grid did that its text does not show: runs listed twice,
        [fixed] settings left out of the runs that do not read them."""
        notes = [f"note: {self.duplicates} grid entries repeat an earlier run; each run is "
                 "trained once."] if self.duplicates else []
        if self.left_out:
            parts = [f"{key} = {self.fixed[key]!r} (left out of {count} "
                     f"run{'s' * (count != 1)})"
                     for key, count in self.left_out.items()]
            notes.append(f"note: [fixed] {'; '.join(parts)}: their optimizer, warmup and "
                         "schedule do not read it.")
        return notes

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
        """The resolved config of every distinct run (with `epochs` overridden)."""
        if epochs is None:
            return list(self.resolved)
        configs = []
        for cfg in self.resolved:
            try:
                configs.append(resolve_config(self.task, {**cfg.to_dict(), "epochs": epochs}))
            except ConfigError as error:
                _fail(self.path, f"--epochs {epochs} does not fit run {cfg.to_dict()}: {error}")
        return list(dict.fromkeys(configs))


def _fail(path: Path, message: str):
    raise ExperimentError(f"{path}: {message}")


def _read_grid_text(path: Path) -> bytes:
    """The grid file's bytes, read only from a regular file of at most MAX_GRID_BYTES (a
    FIFO would block, a device never end); ExperimentError otherwise. Opened without
    blocking, then checked by its descriptor: what is read is what was checked."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        _fail(path, f"cannot read ({error.strerror}).")
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        _fail(path, "not a regular file (a grid file is TOML text).")
    with os.fdopen(handle, "rb") as file:
        try:
            data = file.read(MAX_GRID_BYTES + 1)
        except OSError as error:
            _fail(path, f"cannot read ({error.strerror}).")
    if len(data) > MAX_GRID_BYTES:
        _fail(path, f"larger than {MAX_GRID_BYTES >> 20} MiB: not a grid file.")
    return data


def _check_settings(path: Path, where: str, settings: dict) -> None:
    """Every key a known setting, every value of its type, every name in its registry."""
    registries = {key: Registry.by_kind[kind] for kind, key in NAMES.items() if kind != "task"}
    for key, value in settings.items():
        if key not in SETTINGS:
            _fail(path, f"unknown setting {key!r} in {where}; valid: {', '.join(SETTINGS)}.")
        try:
            check_value_type(key, value)
            if key in registries:
                check_choice(key, value, registries[key])
        except ConfigError as error:
            _fail(path, f"{where}: {error}")


def _expect(path: Path, where: str, value, kind: type, what: str):
    if not isinstance(value, kind):
        _fail(path, f"{where} must be {what}, got {value!r} ({type(value).__name__}).")
    return value


def _published(path: Path, raw) -> dict:
    """{row label: {column: (mean, std)}}, every number checked."""
    published = {}
    for label, by_column in _expect(path, "[published]", raw, dict, "a table").items():
        where = f"[published] {label!r}"
        cells = _expect(path, where, by_column, dict, "a table of column = [mean, std]")
        for column, pair in cells.items():
            if not (isinstance(pair, list) and len(pair) == 2 and
                    all(isinstance(v, (int, float)) and not isinstance(v, bool) and
                        math.isfinite(v) for v in pair) and pair[1] >= 0):
                _fail(path, f"{where} {column!r} must be [mean, std] (two finite numbers, "
                            f"std >= 0), got {pair!r}.")
            published.setdefault(str(label), {})[str(column)] = (float(pair[0]), float(pair[1]))
    return published


def grids_folder() -> Path | None:
    """Where the built-in grids are: an installed wheel's warmup_bench/grids (the
    repository's experiments/), else a source checkout's experiments/."""
    import importlib.util

    spec = importlib.util.find_spec("warmup_bench.grids")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    checkout = Path(__file__).resolve().parents[1] / "experiments"
    return checkout if checkout.is_dir() else None


def builtin_grids() -> dict[str, Path]:
    """The grids that ship with warmup-bench, by name ("digits": its digits.toml)."""
    folder = grids_folder()
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder is not None else {}


def grid_path(given: Path | str) -> Path:
    """`given` where it names a file or is more than a bare name, else the built-in grid
    of that name; ExperimentError, naming the built-in ones, for neither."""
    path = Path(given)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    grids = builtin_grids()
    if str(given) in grids:
        return grids[str(given)]
    raise ExperimentError(f"{given}: no such grid file, and no built-in grid of that name; "
                          f"built-in grids: {', '.join(grids) or 'none installed'}.")


def load_experiment(path: Path, consent: PluginConsent = PluginConsent()) -> Experiment:
    """Reads and validates a grid file (a path, or a built-in grid's name), and resolves
    every run it lists (once). Its plugin files are loaded only as far as `consent`
    allows; otherwise ExperimentError."""
    path = grid_path(path)
    try:
        text = _read_grid_text(path).decode("utf-8")
    except UnicodeDecodeError:
        _fail(path, "not UTF-8 text.")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        _fail(path, f"not valid TOML ({error}).")
    except RecursionError:
        _fail(path, "not valid TOML (its arrays or tables nest too deeply).")
    except ValueError:  # an integer of thousands of digits (Python's own limit)
        _fail(path, "not valid TOML (a number too long to read).")
    for key in raw:
        if key not in FILE_KEYS:
            _fail(path, f"unknown key {key!r}; valid keys: {', '.join(FILE_KEYS)}.")
    plugin_files = _expect(path, "plugins", raw.get("plugins", []), list, "a list of file paths")
    if not all(isinstance(p, str) for p in plugin_files):
        _fail(path, f"plugins must be a list of file paths, got {plugin_files!r}.")
    plugin_files = tuple(path.parent / p for p in plugin_files)
    for file in plugin_files:
        if not file.is_file():
            _fail(path, f"plugin {file}: no such file.")
    refusal = consent.refusal(path, plugin_files)
    if refusal is not None:
        _fail(path, refusal)
    try:
        load_plugins(plugin_files)
    except ConfigError as error:
        _fail(path, str(error))
    tensorboard = _expect(path, "tensorboard", raw.get("tensorboard", False), bool,
                          "true or false")
    pack = raw.get("pack", "off")
    try:
        pack = parse_pack(pack if isinstance(pack, str) else str(pack), "pack")
    except ConfigError as error:
        _fail(path, str(error))
    title = _expect(path, "title", raw.get("title", path.stem), str, "a string")
    description = _expect(path, "description", raw.get("description", ""), str, "a string")
    task = raw.get("task")
    try:
        check_choice("task", task, TASKS)
    except ConfigError as error:
        _fail(path, str(error))
    seeds = raw.get("seeds", [1])
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
            for s in seeds):
        _fail(path, f"seeds must be a non-empty list of integers in 0..2^63-1, got {seeds!r}.")
    fixed = _expect(path, "[fixed]", raw.get("fixed", {}), dict, "a table of settings")
    grid = _expect(path, "[grid]", raw.get("grid", {}), dict, "a table of lists")
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
            _check_settings(path, f"[grid] {key}",
                            value if isinstance(value, dict) else {key: value})
    table = _expect(path, "[table]", raw.get("table", {}), dict, "a table")
    for key in table:
        if key not in TABLE_FILE_KEYS:
            _fail(path, f"unknown key {key!r} in [table]; valid keys: "
                        f"{', '.join(TABLE_FILE_KEYS)}.")
    try:
        metric = parse_metric(_expect(path, "[table] metric",
                                      table.get("metric", TASKS[task].metric), str,
                                      "a metric name"))
    except ConfigError as error:
        _fail(path, str(error).replace("--metric", "[table] metric"))
    rows = table.get("rows", ["opt", "warmup"])
    if not isinstance(rows, list) or not rows or not all(isinstance(r, str) for r in rows):
        _fail(path, f"[table] rows must be a non-empty list of setting names, got {rows!r}.")
    columns = _expect(path, "[table] columns", table.get("columns", "lr"), str,
                      "one setting name")
    for key in (*rows, columns):
        try:
            check_choice("[table] key", key, TABLE_KEYS)
        except ConfigError as error:
            _fail(path, str(error))
    slurm_table = raw.get("slurm", {})
    try:
        slurm = SlurmOptions.from_table(slurm_table)
    except ConfigError as error:
        _fail(path, str(error))
    unsafe = grid_extras_needing_consent(slurm_table)
    if unsafe and not consent.allow:
        _fail(path, f"[slurm] extra sets {', '.join(repr(k) for k in unsafe)}, which can choose "
                    "what the Slurm tasks run (their environment, folder, container or "
                    "scripts): pass --allow-plugins to let the grid set it, or give it "
                    "yourself with --slurm-extra.")
    split = table.get("split")
    if split is not None and (split not in rows or len(rows) < 2):
        _fail(path, f"[table] split {split!r} must be one of several rows ({', '.join(rows)}).")
    runs = math.prod(len(values) for values in grid.values()) * len(seeds)
    if runs > MAX_GRID_RUNS:
        _fail(path, f"the grid lists {runs:,} runs; a grid file holds at most "
                    f"{MAX_GRID_RUNS:,}: split it into several.")
    experiment = Experiment(path, title, task, tuple(seeds), fixed, grid, tuple(rows), columns,
                            _published(path, raw.get("published", {})), description, metric)
    resolved, left_out = _resolve_runs(path, experiment)
    distinct = tuple(dict.fromkeys(resolved))  # a run listed twice is one run
    return dataclasses.replace(experiment, resolved=distinct,
                               duplicates=len(resolved) - len(distinct), plugins=plugin_files,
                               tensorboard=tensorboard, split=split, slurm=slurm,
                               pack=pack, left_out=left_out)


def _resolve_runs(path: Path, experiment: Experiment) -> tuple[list[TrainConfig], dict]:
    """Every run's config, and {[fixed] key: runs it was left out of}: a [fixed] setting
    that a run's optimizer, warmup and schedule do not read (momentum for the AdamW runs
    of a grid over SGD and AdamW) applies to the runs that read it only. A grid axis over
    such a setting is refused: its runs would differ in name only."""
    varied = {k for key, values in experiment.grid.items() for v in values
              for k in (v if isinstance(v, dict) else (key,))}
    resolved, left_out = [], {}
    for settings in experiment.settings():
        while True:
            try:
                resolved.append(resolve_config(experiment.task, settings))
                break
            except UnreadSetting as error:
                if error.key in varied or error.key not in experiment.fixed:
                    _fail(path, f"grid combination {settings} is invalid: {error}")
                settings = {k: v for k, v in settings.items() if k != error.key}
                left_out[error.key] = left_out.get(error.key, 0) + 1
            except ConfigError as error:  # values that are valid alone but not together
                _fail(path, f"grid combination {settings} is invalid: {error}")
    return resolved, left_out
