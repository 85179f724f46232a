"""Extending warmup-bench without editing it: register a warmup, optimizer, LR schedule,
model, task or data set, and load the plugins that do so.

A plugin is a Python file (`--plugin FILE.py`, or `plugins = [...]` in a grid file) or an
installed package that declares an entry point in the group `warmup_bench.plugins`
(loaded by every command). Loading one runs its `register_*` calls:

    import warmup_bench as wb
    wb.register_warmup("cosine", lambda optimizer, *, period: CosineWarmup(optimizer, period),
                       description="(1 - cos(pi t / period)) / 2", needs_period=True)

A registered name is used like a built-in one (`--warmup cosine`, `list warmups`, grid
files) and validated by the same rules, which its entry states. Every run records, in its
config's `plugins`, which plugin provided the names it uses together with the SHA-256 of
the plugin's source, so a changed plugin makes a new run rather than silently continuing
an old one, and a run whose plugin is not loaded is refused with a message naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from .config import ConfigError, TrainConfig
from .data.verify import sha256_of

ENTRY_POINT_GROUP = "warmup_bench.plugins"
# the kinds of entry a plugin registers, and the config setting that names one of each
FIELDS = {"optimizer": "opt", "warmup": "warmup", "schedule": "schedule", "model": "model",
          "dataset": "dataset", "task": "task"}
HASH_CHARS = 16  # of the SHA-256 recorded in a run's config
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # what a plugin may call what it registers


class PluginError(ConfigError):
    """A plugin that cannot be loaded, or a registration that cannot be taken."""


@dataclass(frozen=True)
class Plugin:
    """Where registered names came from: a file's (or package module's) name and the
    SHA-256 of its content (a data file's, for a data set read from the user's files)."""

    name: str
    sha256: str
    path: Path | None = None

    @property
    def ref(self) -> str:
        """What a run's config records: "cosine_warmup.py#sha256:1a2b..." (the file name,
        not its path, so a run's identity does not depend on where it was started)."""
        return f"{self.name}#sha256:{self.sha256[:HASH_CHARS]}"


PROVIDED: dict[tuple[str, str], Plugin] = {}  # (kind, name) -> the plugin that registered it
_loaded: dict[Path, Plugin] = {}  # plugin files loaded in this process, by resolved path
_entry_points_loaded = False
_loading: list[Plugin] = []  # the plugin whose code is running (registrations are its)


# ---- loading ------------------------------------------------------------------------


def load_plugin_file(path: Path) -> Plugin:
    """Runs a plugin file (once per process: loading it again is a no-op); PluginError,
    in one line, when it is missing or its code fails."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"--plugin {path}: no such file.")
    if path.suffix != ".py":
        raise PluginError(f"--plugin {path}: a plugin is a Python file (.py).")
    resolved = path.resolve()
    if resolved in _loaded:
        return _loaded[resolved]
    plugin = Plugin(path.name, sha256_of(path), resolved)
    module_name = f"warmup_bench_plugin_{path.stem}_{plugin.sha256[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    _run(plugin, lambda: spec.loader.exec_module(module), str(path))
    _loaded[resolved] = plugin
    return plugin


def load_entry_points() -> list[Plugin]:
    """Imports every installed plugin package (entry-point group `warmup_bench.plugins`),
    once per process; an entry point naming a function has it called without arguments."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    plugins = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        module_name = point.value.split(":")[0]
        spec = importlib.util.find_spec(module_name)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        sha = sha256_of(origin) if origin is not None and origin.is_file() else \
            hashlib.sha256(point.value.encode()).hexdigest()
        plugin = Plugin(point.name, sha, origin)

        def load(point=point) -> None:
            target = point.load()
            if callable(target) and not inspect.ismodule(target):
                target()
        _run(plugin, load, f"entry point {point.name} ({point.value})")
        plugins.append(plugin)
    return plugins


def load_plugins(files: Iterable[Path] = ()) -> list[Plugin]:
    """The installed plugin packages, then the given plugin files."""
    return load_entry_points() + [load_plugin_file(Path(f)) for f in files]


def _unregister(plugin: Plugin) -> None:
    """Takes back what a plugin that failed half-way had registered."""
    from .tasks import REGISTRIES

    for kind, name in [key for key, by in PROVIDED.items() if by == plugin]:
        REGISTRIES[kind].pop(name, None)
        del PROVIDED[(kind, name)]


def _run(plugin: Plugin, code: Callable[[], None], where: str) -> None:
    """Runs a plugin's code as `plugin`; a failure leaves nothing of it registered."""
    _loading.append(plugin)
    try:
        code()
    except PluginError:
        _unregister(plugin)
        raise
    except SystemExit as error:  # a plugin must not end the program
        _unregister(plugin)
        raise PluginError(f"plugin {where} called sys.exit({error.code!r}) while loading; "
                          "a plugin must only register things.") from None
    except Exception as error:
        _unregister(plugin)
        line = next((f" (line {frame.lineno})" for frame in reversed(
            traceback.extract_tb(error.__traceback__))
            if plugin.path is not None and Path(frame.filename) == plugin.path), "")
        if isinstance(error, SyntaxError):
            line = f" (line {error.lineno})"
        raise PluginError(f"plugin {where} failed to load{line}: "
                          f"{describe_error(error)}") from None
    finally:
        _loading.pop()


def blame(error: BaseException) -> str | None:
    """"plugin NAME (line N)" for the innermost frame of `error`'s traceback that runs a
    loaded plugin file's code, or None when no plugin code was running."""
    paths = {p.path: p for p in (*_loaded.values(), *PROVIDED.values()) if p.path is not None}
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        plugin = paths.get(Path(frame.filename))
        if plugin is not None:
            return f"plugin {plugin.name} (line {frame.lineno})"
    culprit = getattr(error, "culprit", None)  # code that returned a bad value, not raised
    try:
        source = inspect.getsourcefile(culprit) if culprit is not None else None
    except TypeError:  # a built-in: no source file
        source = None
    plugin = paths.get(Path(source)) if source else None
    return f"plugin {plugin.name}" if plugin is not None else None


@contextmanager
def plugin_errors(doing: str) -> Iterator[None]:
    """An error that plugin code raises (or a sys.exit it calls) while `doing` becomes a
    one-line PluginError naming the plugin; errors of warmup-bench's own pass unchanged."""
    try:
        yield
    except ConfigError:
        raise
    except (Exception, SystemExit) as error:
        culprit = blame(error)
        if culprit is None:
            raise
        raise PluginError(f"{culprit} failed while {doing}: {describe_error(error)}") from None


def describe_error(error: BaseException) -> str:
    """An exception in one line: "TypeError: message" (sys.exit as what was called)."""
    if isinstance(error, SystemExit):
        return f"sys.exit({error.code!r})"
    text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _provider() -> Plugin:
    """The plugin registering now: the one being loaded, else the calling script."""
    if _loading:
        return _loading[-1]
    caller = next((frame for frame in inspect.stack(context=0)[2:]
                   if not frame.filename.startswith(str(Path(__file__).parent))), None)
    path = Path(caller.filename) if caller is not None else None
    if path is not None and path.is_file():
        return Plugin(path.name, sha256_of(path), path.resolve())
    return Plugin("interactive", hashlib.sha256(b"interactive").hexdigest())


def _add(kind: str, registry: dict, name: str, entry, provider: Plugin | None = None) -> str:
    provider = provider or _provider()
    if not (isinstance(name, str) and (NAME.fullmatch(name) or provider.name == name)):
        raise PluginError(f"{kind} name {name!r} from plugin {provider.name} must be a "
                          "non-empty string of letters, digits and . _ + - only.")
    if name in registry:
        previous = PROVIDED.get((kind, name))
        if previous is None:
            raise PluginError(f"{kind} {name!r} is built in; plugin {provider.name} must "
                              "choose another name.")
        if previous.sha256 != provider.sha256:
            raise PluginError(f"{kind} {name!r} is registered by {previous.name} already; "
                              f"plugin {provider.name} must choose another name.")
    registry[name] = entry
    PROVIDED[(kind, name)] = provider
    return name


# ---- what a config depends on -------------------------------------------------------


def _names(cfg: TrainConfig) -> dict[str, str]:
    return {kind: getattr(cfg, field) for kind, field in FIELDS.items()}


def plugins_for(cfg: TrainConfig) -> tuple[str, ...]:
    """The refs of the loaded plugins that provide a name `cfg` uses, sorted."""
    return tuple(sorted({PROVIDED[(kind, name)].ref for kind, name in _names(cfg).items()
                         if (kind, name) in PROVIDED}))


def check_recorded(cfg: TrainConfig) -> None:
    """A config read back from a run (or handed in) must use the plugins it was made with:
    ConfigError naming a plugin that is missing or whose source changed."""
    loaded = {ref.split("#")[0]: ref for ref in plugins_for(cfg)}
    for ref in cfg.plugins:
        name = ref.split("#")[0]
        if name not in loaded:
            load = f"--data {name.split(':')[0]}:PATH" if ":" in name else \
                f"--plugin PATH/{name} (or install its package)"
            raise ConfigError(f"this run needs plugin {ref}, which is not loaded: pass {load}.")
        if loaded[name] != ref:
            raise ConfigError(f"this run was made with plugin {ref}; the loaded {name} is "
                              f"{loaded[name].split('#')[1]} (its source changed).")
    extra = set(loaded.values()) - set(cfg.plugins)
    if extra:
        raise ConfigError(f"this config uses names from plugin(s) {', '.join(sorted(extra))} "
                          "but does not record them.")


def plugin_hint(root: Path, name: str) -> str | None:
    """For a name no registry knows: which recorded plugin provided it to a run under
    `root` (so the message can say what to load), or None."""
    from .runs import find_runs

    if not Path(root).is_dir():
        return None
    for run in find_runs(root):
        cfg = run.read_config()
        if cfg is not None and cfg.plugins and name in _names(cfg).values():
            return (f"{name!r} is not a built-in name; runs under {root} got it from plugin "
                    f"{' / '.join(cfg.plugins)}: pass --plugin with that file (or install "
                    "its package).")
    return None


def describe(kind: str, name: str) -> str:
    """"built in" or the providing plugin's ref (for `list`)."""
    provider = PROVIDED.get((kind, name))
    return "built in" if provider is None else provider.ref


# ---- the registration API ------------------------------------------------------------


def register_warmup(name: str, build: Callable, *, description: str, label: str | None = None,
                    title: str | None = None, length: Callable[[TrainConfig], int] | None = None,
                    needs_period: bool = False, needs_betas: bool = False,
                    min_beta2: float | None = None) -> str:
    """A warmup: `build(optimizer, *, period)` returns a `warmup_bench.warmup.BaseWarmup`
    (period is --warmup-period, None when not given). `length(cfg)`: the iterations until
    its factor reaches about 1 (what --delay-schedule waits; default: the period, or 0)."""
    from .optim import WARMUPS, WarmupEntry

    length = length or (lambda cfg: cfg.warmup_period or 0)
    entry = WarmupEntry(description, label or name, title or name, build, length,
                        needs_period=needs_period, needs_betas=needs_betas, min_beta2=min_beta2)
    return _add("warmup", WARMUPS, name, entry)


def register_optimizer(name: str, factory: Callable, *, description: str,
                       label: str | None = None, options: dict | None = None,
                       has_betas: bool = True, rectified: bool = False,
                       foreach: bool = False, fused: bool = False) -> str:
    """An optimizer: `factory(params, lr=, weight_decay=, [betas=, eps=,] **options)`, an
    Adam-style one (`has_betas`) also getting --beta1/--beta2/--eps, one that takes it
    (`foreach`) also `foreach=True`, one with a fused step (`fused`) `fused=True` where
    the run takes fused steps (CPUs by default)."""
    from .optim import OPTIMIZERS, OptimizerEntry

    entry = OptimizerEntry(description, label or name, factory, dict(options or {}),
                           has_betas=has_betas, rectified=rectified, foreach=foreach,
                           fused=fused)
    return _add("optimizer", OPTIMIZERS, name, entry)


def register_schedule(name: str, build: Callable, *, description: str,
                      label: str | None = None, per_epoch: bool = False,
                      needs_milestones: bool = False, needs_period: bool = False) -> str:
    """An LR schedule: `build(optimizer, *, cfg, iters_per_epoch, total, delay)` returns a
    torch LRScheduler, stepped every iteration (or every epoch when `per_epoch`)."""
    from .optim import SCHEDULES, ScheduleEntry

    entry = ScheduleEntry(description, label or name, build, per_epoch=per_epoch,
                          needs_milestones=needs_milestones, needs_period=needs_period)
    return _add("schedule", SCHEDULES, name, entry)


def register_model(name: str, factory: Callable, *, channels_last: bool = False) -> str:
    """A model: `factory(num_classes=, in_channels=)` returns an nn.Module taking a float
    batch (N, C, H, W) and returning logits; `channels_last` for conv nets (trained in
    that layout on CUDA and CPUs, where oneDNN's and cuDNN's NHWC kernels are faster)."""
    from .models import CONV_NETS, MODELS

    _add("model", MODELS, name, factory)
    if channels_last:
        CONV_NETS.add(name)
    return name


def register_dataset(name: str, read: Callable, *, num_classes: int,
                     shape: tuple[int, int, int], title: str | None = None,
                     class_names: tuple[str, ...] = (), mean: tuple[float, ...] = (),
                     std: tuple[float, ...] = ()) -> str:
    """A data set held in memory: `read()` returns ((train images, train labels), (test
    images, test labels)) as numpy arrays, images uint8 (N, C, H, W), labels integers in
    0..num_classes-1. Without mean/std, the train split's are used."""
    from .data.catalog import custom_spec

    return _register_spec(name, custom_spec(name, read, num_classes, shape, title,
                                            class_names, mean, std))


def register_data(source: str) -> str:
    """A data set from the user's files: "npz:PATH" (arrays x_train, y_train, x_test,
    y_test) or "folder:PATH" (train/ and test/ folders of class subfolders of images).
    Returns its name, "npz:FILE" or "folder:FOLDER"; its provider is the data itself."""
    from .data.custom import open_data_source

    spec, fingerprint, path = open_data_source(source)
    return _register_spec(spec.name, spec, Plugin(spec.name, fingerprint, path.resolve()))


def _register_spec(name: str, spec, provider: Plugin | None = None) -> str:
    from .data import DATASETS

    return _add("dataset", DATASETS, name, spec, provider)


def register_task(name: str, *, dataset: str, model: str, description: str,
                  **settings) -> str:
    """A task preset: a data set and a model (built in or registered before it) with any
    settings (opt, warmup, lr, epochs, ...), which `--task NAME` then starts from."""
    from .tasks import TASK_DESCRIPTIONS, TASKS, validate

    try:
        cfg = TrainConfig.from_dict({"task": name, "dataset": dataset, "model": model,
                                     **settings})
    except ConfigError as error:
        raise PluginError(f"task {name!r}: {error}") from None
    provider = _provider()
    _add("task", TASKS, name, cfg, provider)
    try:
        validate(dataclasses.replace(cfg, plugins=plugins_for(cfg)))
    except ConfigError as error:
        del TASKS[name], PROVIDED[("task", name)]
        raise PluginError(f"task {name!r}: {error}") from None
    TASK_DESCRIPTIONS[name] = description
    return name


__all__ = ["register_warmup", "register_optimizer", "register_schedule", "register_model",
           "register_dataset", "register_data", "register_task", "load_plugins",
           "load_plugin_file", "load_entry_points", "plugins_for", "check_recorded",
           "plugin_hint", "FIELDS",
           "Plugin", "PluginError", "ENTRY_POINT_GROUP"]
