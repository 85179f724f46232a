"""Loading plugins: Python files (`--plugin FILE.py`, or a grid file's `plugins` when the
user consents) and installed packages that declare an entry point in the group
`warmup_bench.plugins` (loaded by every command). Loading one runs its `register_*`
calls (warmup_bench.extend), which record the plugin, with the SHA-256 of its source, as
the provider of every name it registers: a run records those refs in its config, so a
changed plugin makes a new run rather than silently continuing an old one.

This module also says which plugin a failure came from (`blame`, `plugin_errors`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path

from .config import NAMES, ConfigError
from .data.verify import sha256_of
from .errors import UserError
from .registry import Provider, Registry, registering_as
from .runs import find_runs

ENTRY_POINT_GROUP = "warmup_bench.plugins"
Plugin = Provider  # a plugin is the provider of what it registers


class PluginError(ConfigError):
    """A plugin that cannot be loaded, or plugin code that failed."""


_loaded: dict[Path, Provider] = {}  # plugin files loaded in this process, by resolved path
_entry_points_loaded = False


def load_plugin_file(path: Path) -> Provider:
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
    plugin = Provider(path.name, sha256_of(path), resolved)
    module_name = f"warmup_bench_plugin_{path.stem}_{plugin.sha256[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    _run(plugin, lambda: spec.loader.exec_module(module), str(path))
    _loaded[resolved] = plugin
    return plugin


def load_entry_points() -> list[Provider]:
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
        plugin = Provider(point.name, sha, origin)

        def load(point=point) -> None:
            target = point.load()
            if callable(target) and not inspect.ismodule(target):
                target()
        _run(plugin, load, f"entry point {point.name} ({point.value})")
        plugins.append(plugin)
    return plugins


def load_plugins(files: Iterable[Path] = ()) -> list[Provider]:
    """The installed plugin packages, then the given plugin files."""
    return load_entry_points() + [load_plugin_file(Path(f)) for f in files]


def _run(plugin: Provider, code: Callable[[], None], where: str) -> None:
    """Runs a plugin's code as `plugin`; a failure leaves nothing of it registered."""
    try:
        with registering_as(plugin):
            code()
    except UserError:  # a registration refused: its own one-line message
        Registry.withdraw(plugin)
        raise
    except SystemExit as error:  # a plugin must not end the program
        Registry.withdraw(plugin)
        raise PluginError(f"plugin {where} called sys.exit({error.code!r}) while loading; "
                          "a plugin must only register things.") from None
    except Exception as error:
        Registry.withdraw(plugin)
        line = next((f" (line {frame.lineno})" for frame in reversed(
            traceback.extract_tb(error.__traceback__))
            if plugin.path is not None and Path(frame.filename) == plugin.path), "")
        if isinstance(error, SyntaxError):
            line = f" (line {error.lineno})"
        raise PluginError(f"plugin {where} failed to load{line}: "
                          f"{describe_error(error)}") from None


# ---- which plugin a failure came from -------------------------------------------------


def _plugin_paths() -> dict[Path, Provider]:
    providers = [*_loaded.values()] + [p for r in Registry.by_kind.values()
                                       for p in r.providers.values()]
    return {p.path: p for p in providers if p.path is not None}


def blame(error: BaseException) -> str | None:
    """"plugin NAME (line N)" for the innermost frame of `error`'s traceback that runs a
    loaded plugin file's code, or None when no plugin code was running."""
    paths = _plugin_paths()
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
    except UserError:
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


def plugin_hint(root: Path, name: str) -> str | None:
    """For a name no registry knows: which recorded plugin provided it to a run under
    `root` (so the message can say what to load), or None."""
    if not Path(root).is_dir():
        return None
    for run in find_runs(root):
        cfg = run.read_config()
        if cfg is not None and cfg.plugins and name in (getattr(cfg, k) for k in NAMES.values()):
            return (f"{name!r} is not a built-in name; runs under {root} got it from plugin "
                    f"{' / '.join(cfg.plugins)}: pass --plugin with that file (or install "
                    "its package).")
    return None
