"""The registration API for plugins: add a warmup, optimizer, LR schedule, model, task or
data set with the same fields the built-ins have. A registered name then works wherever a
built-in one does (`--warmup NAME`, grid files, `list`, the report's labels) and is
validated by the rules its entry states.

    import warmup_bench as wb
    wb.register_warmup("cosine", lambda optimizer, *, period: CosineWarmup(optimizer, period),
                       description="(1 - cos(pi t / period)) / 2", needs_period=True)

Each registration is recorded with its provider: the plugin file being loaded
(`plugins.load_plugin_file`), else the script that calls it, with the SHA-256 of its source.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path

from .config import ConfigError, Range, TrainConfig
from .data import DATASETS
from .data.catalog import custom_spec
from .data.custom import open_data_source
from .data.verify import sha256_of
from .models import MODELS, ModelEntry
from .optim import (
    OPTIMIZERS,
    SCHEDULES,
    WARMUPS,
    OptimizerEntry,
    ScheduleEntry,
    WarmupEntry,
    factory_keywords,
)
from .registry import INTERACTIVE, Provider, RegistrationError, current_provider
from .tasks import TASKS, TaskEntry, plugins_for, validate


def _provider() -> Provider:
    """The plugin registering now: the one being loaded, else the calling script."""
    loading = current_provider()
    if loading is not None:
        return loading
    here = str(Path(__file__).parent)
    caller = next((frame for frame in inspect.stack(context=0)[2:]
                   if not frame.filename.startswith(here)), None)
    path = Path(caller.filename) if caller is not None else None
    if path is not None and path.is_file():
        return Provider(path.name, sha256_of(path), path.resolve())
    return INTERACTIVE


def register_warmup(name: str, build: Callable, *, description: str, label: str | None = None,
                    title: str | None = None, length: Callable[[TrainConfig], int] | None = None,
                    needs_period: bool = False, needs_betas: bool = False,
                    min_beta2: float | None = None) -> str:
    """A warmup: `build(optimizer, *, period)` returns a `warmup_bench.warmup.BaseWarmup`
    (period is --warmup-period, None when not given). `length(cfg)`: the iterations until
    its factor reaches about 1 (what --delay-schedule waits; default: the period, or 0)."""
    length = length or (lambda cfg: cfg.warmup_period or 0)
    entry = WarmupEntry(description, label or name, title or name, build, length,
                        needs_period=needs_period, needs_betas=needs_betas, min_beta2=min_beta2)
    return WARMUPS.register(name, entry, _provider())


def register_optimizer(name: str, factory: Callable, *, description: str,
                       label: str | None = None, options: dict | None = None,
                       has_betas: bool | None = None, rectified: bool = False,
                       foreach: bool = False, fused: bool = False,
                       ranges: dict[str, Range] | None = None) -> str:
    """An optimizer: `factory(params, lr=, weight_decay=, **options)` plus every setting
    whose keyword its signature takes (betas and eps: --beta1/--beta2/--eps; momentum:
    --momentum); a factory taking **kwargs gets betas and eps. `has_betas` forces (True)
    or refuses (False) betas and eps whatever the signature says. One that takes it
    (`foreach`) also `foreach=True`, one with a fused step (`fused`) `fused=True` where
    the run takes fused steps (CPUs by default). `ranges`: settings it takes only within
    a narrower range than their own ({"beta1": config.OPEN_UNIT})."""
    keywords = None
    if has_betas is not None:
        keywords = factory_keywords(factory) - {"betas", "eps"} | \
            ({"betas", "eps"} if has_betas else set())
    entry = OptimizerEntry(description, label or name, factory, dict(options or {}),
                           keywords, rectified=rectified, foreach=foreach,
                           fused=fused, ranges=dict(ranges or {}))
    return OPTIMIZERS.register(name, entry, _provider())


def register_schedule(name: str, build: Callable, *, description: str,
                      label: str | None = None, per_epoch: bool = False,
                      needs_milestones: bool = False, needs_period: bool = False,
                      reads: tuple[str, ...] | None = None) -> str:
    """An LR schedule: `build(optimizer, *, cfg, iters_per_epoch, total, delay)` returns a
    torch LRScheduler, stepped every iteration (or every epoch when `per_epoch`).
    `reads`: the conditional settings it reads from cfg ("eta_min", "warmup_period", ...), so
    that the others are refused as doing nothing with it; None (the default): it may read
    any, and none is refused."""
    entry = ScheduleEntry(description, label or name, build, per_epoch=per_epoch,
                          needs_milestones=needs_milestones, needs_period=needs_period,
                          reads=None if reads is None else tuple(reads))
    return SCHEDULES.register(name, entry, _provider())


def register_model(name: str, factory: Callable, *, channels_last: bool = False,
                   description: str | None = None) -> str:
    """A model: `factory(num_classes=, in_channels=)` returns an nn.Module taking a float
    batch (N, C, H, W) and returning logits; `channels_last` for conv nets (trained in
    that layout on CUDA and CPUs, where oneDNN's and cuDNN's NHWC kernels are faster)."""
    base = getattr(factory, "func", factory)
    doc = description or (getattr(base, "__doc__", None) or "").strip().split("\n")[0]
    entry = ModelEntry(factory, doc, getattr(base, "__name__", name), channels_last)
    return MODELS.register(name, entry, _provider())


def register_dataset(name: str, read: Callable, *, num_classes: int,
                     shape: tuple[int, int, int], title: str | None = None,
                     class_names: tuple[str, ...] = (), mean: tuple[float, ...] = (),
                     std: tuple[float, ...] = ()) -> str:
    """A data set held in memory: `read()` returns ((train images, train labels), (test
    images, test labels)) as numpy arrays, images uint8 (N, C, H, W), labels integers in
    0..num_classes-1. Without mean/std, the train split's are used."""
    spec = custom_spec(name, read, num_classes, shape, title, class_names, mean, std)
    return DATASETS.register(name, spec, _provider())


def register_data(source: str) -> str:
    """A data set from the user's files, for a grid's plugin: "npz:PATH" (arrays x_train,
    y_train, x_test, y_test) or "folder:PATH" (train/ and test/ folders of class
    subfolders of images). Returns its name, "npz:FILE" or "folder:FOLDER"; its provider
    is the data itself (its content's SHA-256)."""
    data = open_data_source(source)
    return DATASETS.register(data.name, data.spec, data.provider)


def register_task(name: str, *, dataset: str, model: str, description: str,
                  **settings) -> str:
    """A task preset: a data set and a model (built in or registered before it) with any
    settings (opt, warmup, lr, epochs, ...), which `--task NAME` then starts from."""
    try:
        cfg = TrainConfig.from_dict({"task": name, "dataset": dataset, "model": model,
                                     **settings})
    except ConfigError as error:
        raise RegistrationError(f"task {name!r}: {error}") from None
    TASKS.register(name, TaskEntry(cfg, description), _provider())
    try:
        validate(dataclasses.replace(cfg, plugins=plugins_for(cfg)))
    except ConfigError as error:
        del TASKS[name]
        raise RegistrationError(f"task {name!r}: {error}") from None
    return name


API = ("register_warmup", "register_optimizer", "register_schedule", "register_model",
       "register_dataset", "register_data", "register_task")
