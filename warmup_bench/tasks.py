"""Task presets (data set + model + the reference hyperparameters) and the resolved
training configuration: a preset with every user override applied and validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import data as _data  # noqa: F401  (the registries: data sets, augmentations,
from . import models as _models  # noqa: F401  models, optimizers, warmups, schedules)
from . import optim
from .config import (
    CONDITIONAL,
    FIELDS,
    NAMES,
    SETTINGS,
    TEXT_ONLY,
    ConfigError,
    TrainConfig,
    check_value_type,
    check_values,
    option,
)
from .registry import Provider, Registry


@dataclass(frozen=True)
class TaskEntry:
    """A preset: the config a task starts from, and what it is."""

    config: TrainConfig
    description: str

    @property
    def label(self) -> str:
        return self.config.task

    @property
    def metric(self) -> str:
        """What its tables show by default: the held-out loss for a text task, the top-1
        error otherwise."""
        return "loss" if text_task(self.config) else "best"

    def check(self, cfg: TrainConfig) -> None:
        """The rules a task states about a config (none: its settings are defaults)."""


TASKS: Registry[TaskEntry] = Registry("task", "--task", {
    "cifar10-resnet20": TaskEntry(TrainConfig(
        task="cifar10-resnet20", dataset="cifar10", model="resnet20", opt="adamw",
        warmup="untuned-linear", schedule="multistep", milestones=(81, 122), lr=0.01,
        weight_decay=1e-4, epochs=186, batch_size=128, augment="crop-flip"),
        "ResNet-20 (or --model resnetN) on CIFAR-10, Ma & Yarats' recipe"),
    "emnist-cnn": TaskEntry(TrainConfig(
        task="emnist-cnn", dataset="emnist", model="emnist-cnn", opt="adamw",
        warmup="untuned-linear", schedule="cosine", eta_min=1e-5, lr=0.01, weight_decay=0.01,
        epochs=10, batch_size=64), "the pytorch_warmup EMNIST-balanced CNN recipe"),
    "mnist-vit": TaskEntry(TrainConfig(
        task="mnist-vit", dataset="mnist", model="vit", opt="adamw", warmup="none",
        schedule="cosine-epoch", lr=1e-3, weight_decay=1e-4, epochs=20, batch_size=128,
        # "none": what the write-up's code ran, not what its text says
        label_smoothing=0.1, grad_clip=1.0, augment="none", val_fraction=0.1),
        "ViT (1.8M params) on MNIST, 90/10 train/val split; no augmentation, as the "
        "write-up's code ran (its text describes rotation + translation, but its val "
        "transform also replaced the train subset's: --augment rotate-translate for the "
        "described one)"),
    "digits": TaskEntry(TrainConfig(
        task="digits", dataset="digits", model="digits-net", opt="adamw",
        warmup="untuned-linear", schedule="cosine", lr=0.01, beta2=0.99, weight_decay=1e-4,
        epochs=30, batch_size=32, test_batch_size=512),
        # β2 0.99: its untuned warmups (199 and 99 iterations) fit its 1,320; at torch's
        # 0.999 the linear one (1,999) would outlast the run
        "small conv net on scikit-learn's embedded 8x8 digits (seconds on a CPU)"),
})
TASKS["fashion-mnist-vit"] = TaskEntry(dataclasses.replace(
    TASKS["mnist-vit"].config, task="fashion-mnist-vit", dataset="fashion-mnist"),
    "the ViT recipe on Fashion-MNIST")
# nanoGPT's character-level Shakespeare presets (its CPU one: 2,000 steps of batch 12,
# context 64; its GPU one: 5,000 steps of batch 64, context 256), an epoch being the
# interval between evaluations; warmed up as every task here, untuned (2 / (1 - beta2) =
# 200 steps), where nanoGPT warms up linearly over 100 (--warmup linear --warmup-period 100)
TASKS["shakespeare-char"] = TaskEntry(TrainConfig(
    task="shakespeare-char", dataset="shakespeare", model="gpt-mini", opt="adamw",
    warmup="untuned-linear", schedule="cosine", eta_min=1e-4, lr=1e-3, beta2=0.99,
    weight_decay=0.1, grad_clip=1.0, epochs=8, epoch_steps=250, batch_size=12,
    test_batch_size=128, context=64, log_interval=25),
    "character-level Transformer LM (4 layers, width 128) on Shakespeare's plays, "
    "nanoGPT's CPU preset: 8 evaluations x 250 steps")
TASKS["shakespeare-char-gpu"] = TaskEntry(dataclasses.replace(
    TASKS["shakespeare-char"].config, task="shakespeare-char-gpu", model="gpt-small",
    batch_size=64, context=256, dropout=0.2, epochs=20, epoch_steps=250, test_batch_size=64),
    "the GPU scale of nanoGPT's Shakespeare run (6 layers, width 384, context 256, dropout "
    "0.2): 20 evaluations x 250 steps")


def registry_of(kind: str) -> Registry:
    return Registry.by_kind[kind]


def _provider(kind: str, name: str, data) -> Provider | None:
    """Who provides `name`: the user's data (a data.custom.DataSource) for its data set's
    name, else the registry's record (None: built in)."""
    if kind == "dataset" and data is not None and name == data.name:
        return data.provider
    return registry_of(kind).provider(name)


def plugins_for(cfg: TrainConfig, data=None) -> tuple[str, ...]:
    """The refs of the plugins (and data files) that provide a name `cfg` uses, sorted."""
    providers = (_provider(kind, getattr(cfg, key), data) for kind, key in NAMES.items())
    return tuple(sorted({p.ref for p in providers if p is not None}))


def check_recorded(cfg: TrainConfig, data=None) -> None:
    """A config read back from a run (or handed in) must use the plugins it was made with:
    ConfigError naming a plugin that is missing or whose source changed."""
    loaded = {ref.split("#")[0]: ref for ref in plugins_for(cfg, data)}
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


def resolve_config(task: str, overrides: dict | None = None, data=None) -> TrainConfig:
    """The preset of `task` with `overrides` (None values ignored) and, when given, the
    user's `data` (a data.custom.DataSource) as its data set; validated. Its `plugins`
    are derived: those (and the data files) providing the names it uses."""
    preset = TASKS.lookup(task)
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k != "plugins"}
    if data is not None:
        given["dataset"] = data.name
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}.")
    canonical = {key: check_value_type(key, value) for key, value in given.items()}
    cfg = dataclasses.replace(preset.config, **canonical)
    cfg = dataclasses.replace(cfg, plugins=plugins_for(cfg, data))
    validate(cfg, data)
    return cfg


def validate(cfg: TrainConfig, data=None) -> None:
    """Every value's type and range (as its setting declares), every name against its
    registry (the data set's may be `data`'s, the user's own), and the rules the chosen
    entries state (what a warmup or schedule needs)."""
    for key, value in cfg.to_dict().items():
        check_value_type(key, value)
    check_recorded(cfg, data)  # first: a name from a plugin that is not loaded names it
    own = {"dataset": data.name} if data is not None else {}
    for kind, key in NAMES.items():
        if own.get(kind) != getattr(cfg, key):
            registry_of(kind).lookup(getattr(cfg, key))
    check_values(cfg)
    check_text_settings(cfg, data)
    if has_own_value(cfg, "weight_decay_on") and cfg.weight_decay == 0:
        raise ConfigError(f"--weight-decay-on {cfg.weight_decay_on} does nothing with "
                          "--weight-decay 0: give a weight decay, or leave it out.")
    for kind, key in NAMES.items():
        entry = data.spec if kind in own and own[kind] == getattr(cfg, key) else \
            registry_of(kind)[getattr(cfg, key)]
        entry.check(cfg)
    check_unread(cfg)


def has_own_value(cfg: TrainConfig, key: str) -> bool:
    """Whether setting `key` holds a value of its own: neither its default nor its task
    preset's (what a rule about settings that do nothing may refuse)."""
    value = getattr(cfg, key)
    preset = TASKS[cfg.task].config if cfg.task in TASKS else None
    return value != FIELDS[key].default and not (preset is not None and
                                                 value == getattr(preset, key))


def text_task(cfg: TrainConfig, data=None) -> bool:
    """Whether `cfg` trains a language model on a text corpus (a built-in one, or the
    user's `text:` source, whose name says so even where only a run's record is left)."""
    spec = data.spec if data is not None and data.name == cfg.dataset else \
        _data.DATASETS.get(cfg.dataset)
    return _data.is_text(spec) or cfg.dataset.startswith("text:")


def judged_by(cfg: TrainConfig, data=None) -> str:
    """What picks a run's best epoch: its held-out loss for a language model (lower is
    better), its accuracy for an image classifier."""
    return "loss" if text_task(cfg, data) else "accuracy"


def check_text_settings(cfg: TrainConfig, data=None) -> None:
    """A text task needs a language model and its epoch length; an image task takes none
    of the text settings (a value of its own would change only the run's name)."""
    language_model = _models.MODELS[cfg.model].language_model \
        if cfg.model in _models.MODELS else None
    if text_task(cfg, data):
        if language_model is False:
            raise ConfigError(f"--model {cfg.model} is an image model; {cfg.dataset} is text: "
                              "choose a language model (gpt-mini, gpt-small).")
        if cfg.epoch_steps is None:
            raise ConfigError(f"{cfg.dataset} is text: give --epoch-steps, the optimizer steps "
                              "between evaluations.")
        return
    if language_model:
        raise ConfigError(f"--model {cfg.model} is a language model; {cfg.dataset} holds "
                          "images: use a text data set (shakespeare, --data text:FILE).")
    for key in TEXT_ONLY:
        if has_own_value(cfg, key):
            raise ConfigError(f"{option(key)} does nothing with {cfg.dataset}: only the text "
                              "tasks read it; leave it out.")


# the kinds of entry that read the conditional settings (an optimizer's betas, a schedule's
# eta_min), and the setting naming each
READERS = {kind: NAMES[kind] for kind in ("optimizer", "warmup", "schedule")}


def check_unread(cfg: TrainConfig) -> None:
    """ConfigError for a conditional setting (config.CONDITIONAL) that none of the chosen
    optimizer, warmup and schedule reads (--momentum with AdamW, --cooldown-fraction with
    cosine), when it holds a value of its own: not its default, nor the task preset's.
    Such a value would change nothing but the run's name. A plugin schedule that does not
    declare what it reads may read anything: then nothing is refused."""
    chosen = {kind: registry_of(kind)[getattr(cfg, key)] for kind, key in READERS.items()}
    if any(entry.reads is None for entry in chosen.values()):
        return
    read = {key for entry in chosen.values() for key in entry.reads}
    for key in CONDITIONAL:
        if key in read or not has_own_value(cfg, key):
            continue
        value = getattr(cfg, key)
        readers = {kind: [name for name, entry in registry_of(kind).items()
                          if key in (entry.reads or ())] for kind in READERS}
        by = " or ".join(f"{registry_of(kind).option} {', '.join(names)}"
                         for kind, names in readers.items() if names)
        given = option(key) if value is True else \
            f"{option(key)} {list(value) if isinstance(value, tuple) else value}"
        used = ", ".join(f"{registry_of(kind).option} {getattr(cfg, key)}"
                         for kind, key in READERS.items())
        raise UnreadSetting(f"{given} does nothing with {used}: only {by} read it; leave it "
                            "out (a run's name would differ, its training would not).", key)


class UnreadSetting(ConfigError):
    """A conditional setting given a value of its own that no chosen entry reads (`key`)."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def recorded_data(cfg: TrainConfig) -> RecordedData | None:
    """For a run made from the user's own data: the data as its config records it (name
    and hash), enough to validate and report the run without opening the data."""
    ref = next((r for r in cfg.plugins if r.split("#")[0] == cfg.dataset), None)
    if ref is None or ":" not in cfg.dataset:
        return None
    name, _, sha = ref.partition("#sha256:")
    return RecordedData(Provider(name, sha))


@dataclass(frozen=True)
class RecordedData:
    """A data source known only from a run's config (see recorded_data)."""

    provider: Provider

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def spec(self):
        return _NoRules()


class _NoRules:
    def check(self, cfg: TrainConfig) -> None:
        """A data set's rules need its files; a recorded one has none to check."""


# a warmup that lasts longer than this share of training is said to be too long: its LR
# stays below the target for much of the run, and a table then measures under-training
LONG_WARMUP = 0.25


def planned_iterations_per_epoch(cfg: TrainConfig) -> int | None:
    """The optimizer steps of an epoch, from its data set's declared train size (None
    where the size is known only once the data is read). A data set's files may hold
    fewer images than it declares: a run may take fewer steps, never more."""
    if cfg.epoch_steps is not None:  # a text task: an epoch is a number of steps
        return cfg.epoch_steps
    spec = _data.DATASETS.get(cfg.dataset)
    if spec is None or spec.sizes is None:
        return None
    train = spec.sizes[0] - int(round(cfg.val_fraction * spec.sizes[0]))
    if cfg.train_samples is not None:
        train = min(train, cfg.train_samples)
    return train // cfg.batch_size


def planned_iterations(cfg: TrainConfig) -> int | None:
    """The run's optimizer steps (see planned_iterations_per_epoch)."""
    per_epoch = planned_iterations_per_epoch(cfg)
    return None if per_epoch is None else per_epoch * cfg.epochs


def long_warmup_note(cfg: TrainConfig, iterations: int | None) -> str | None:
    """One line when the warmup lasts more than LONG_WARMUP of the run's `iterations`."""
    if not iterations:
        return None
    length = optim.WARMUPS[cfg.warmup].length(cfg)
    if length <= LONG_WARMUP * iterations:
        return None
    return (f"warning: --warmup {cfg.warmup} lasts {length:,} iterations, "
            f"{length / iterations:.0%} of the run's {iterations:,}: its LR stays below the "
            "target for much of training; train longer (--epochs), or shorten the warmup "
            "(--warmup-period; a smaller --beta2 for the untuned ones).")


def long_warmups_note(configs: list[TrainConfig]) -> str | None:
    """One line for a grid: the runs whose warmup lasts more than LONG_WARMUP of their
    planned iterations, by warmup."""
    found: dict[tuple[str, int, int], int] = {}
    for cfg in configs:
        iterations = planned_iterations(cfg)
        length = optim.WARMUPS[cfg.warmup].length(cfg)
        if iterations and length > LONG_WARMUP * iterations:
            found[(cfg.warmup, length, iterations)] = found.get((cfg.warmup, length,
                                                                 iterations), 0) + 1
    if not found:
        return None
    parts = [f"{name} {length:,} of {iterations:,} iterations ({count} runs)"
             for (name, length, iterations), count in found.items()]
    return (f"warning: in {sum(found.values())} runs the warmup lasts longer than "
            f"{LONG_WARMUP:.0%} of training: {'; '.join(parts)}. Their LR stays below the "
            "target for much of training: train longer, or shorten the warmup.")


def redundant_warmup_note(cfg: TrainConfig) -> str | None:
    """A note when the warmup repeats what the optimizer already does (RAdam on RAdam)."""
    if cfg.warmup == "radam" and optim.OPTIMIZERS[cfg.opt].rectified:
        return (f"note: --warmup radam on --opt {cfg.opt} is redundant: the optimizer already "
                "applies RAdam's rectification.")
    return None


__all__ = ["TASKS", "TaskEntry", "TrainConfig", "ConfigError", "resolve_config", "validate",
           "redundant_warmup_note", "long_warmup_note", "long_warmups_note",
           "planned_iterations", "planned_iterations_per_epoch", "plugins_for",
           "check_recorded"]
