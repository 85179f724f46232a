"""The resolved training configuration: every setting declared once, with its help text,
its check and (for settings added after 0.1.0) the default that keeps older run names.

`TrainConfig` is what identifies an experiment cell (with its seed): it is recorded as
the run folder's config file and hashed into the run folder's name. From its field
declarations come the `train` command's options, the grid files' keys and their type
errors, the range checks with their one-line messages, and the `--help` texts. How a run
is executed (device, threads, ...) is not here: see `execution.RunOptions`.

Adding an optimizer hyperparameter is one `setting(...)` line here naming the keyword it
`feeds`; any other hyperparameter is one line here plus the code that reads it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ConfigError
from .registry import UnknownName, check_choice  # noqa: F401  (re-exported: the one check)

MAX_SEED = 2**63 - 1  # torch.manual_seed's range


# ---- checks: (how the message names the setting, its value) -> ConfigError or nothing --

Check = Callable[[str, typing.Any], None]


def positive(name: str, value) -> None:
    if not value > 0:
        raise ConfigError(f"{name} {value} must be positive.")


def at_least_zero(name: str, value) -> None:
    if value < 0:
        raise ConfigError(f"{name} {value} must be >= 0.")


def below_one(name: str, value) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} {value} must be in [0, 1).")


def seed_range(name: str, value) -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name} {value} must be in 0..2^63-1.")


def positive_int(name: str, value) -> None:
    if value < 1:
        raise ConfigError(f"{name} {value} must be a positive int.")


def fraction(name: str, value) -> None:
    if not 0.0 < value <= 1.0:
        raise ConfigError(f"{name} {value} must be in (0, 1].")


def one_of(*choices: str) -> Check:
    def check(name: str, value) -> None:
        check_choice(name, value, choices)
    return check


def positive_epochs(name: str, value) -> None:
    if any(m < 1 for m in value):
        raise ConfigError(f"{name} {list(value)} must be positive epochs.")


@dataclass(frozen=True)
class Range:
    """The values a registry entry accepts for a setting, where that is narrower than the
    setting's own check (schedule-free AdamW divides by beta1: it takes (0, 1), not [0, 1))."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}" \
               f"{')' if self.high_open else ']'}"


OPEN_UNIT = Range(0.0, 1.0, low_open=True, high_open=True)


@dataclass(frozen=True)
class Setting:
    """What a TrainConfig field declares about itself."""

    help: str
    check: Check | None = None  # run on the value unless it is None
    names: str | None = None  # the kind of registry entry it names ("optimizer")
    flag: str | None = None  # its `train` option; None: --field-name; "": none of its own
    added: bool = False  # added after 0.1.0: left out of the run's hash at its default
    # may differ between the members of a pack (train.pack): it does not shape the
    # computation (an LR, a seed, a warmup); every other setting the members share
    per_member: bool = False
    # read only by the optimizer, warmup or schedule entries that say they read it (their
    # `reads`): with any other, a value of its own is refused (tasks.check_unread)
    conditional: bool = False
    # the optimizer's keyword argument it feeds ("eps"; ("betas", 0): the first item of
    # the tuple `betas`). A conditional one goes to the optimizers whose factory takes
    # that keyword (and is read by them alone); any other to every optimizer
    feeds: str | tuple[str, int] | None = None
    # read by the text (language-model) tasks alone: a value of its own elsewhere is refused
    text_only: bool = False


def setting(default=dataclasses.MISSING, help: str = "", check: Check | None = None, *,
            names: str | None = None, flag: str | None = None, added: bool = False,
            per_member: bool = False, conditional: bool = False,
            feeds: str | tuple[str, int] | None = None, text_only: bool = False):
    return field(default=default, metadata={"setting": Setting(
        help, check, names, flag, added, per_member, conditional, feeds, text_only)})


# what --weight-decay-on may name (optim.decay_groups)
DECAY_TARGETS = ("all", "matrices")


@dataclass(frozen=True)
class TrainConfig:
    task: str = setting(help="Task preset (see `list tasks`).", names="task", flag="")
    dataset: str = setting(help="Data set (see `data list`).", names="dataset", flag="")
    model: str = setting(help="Model, e.g. resnet56 (default: the task's).", names="model")
    opt: str = setting("adamw", "Optimizer (see `list optimizers`).", names="optimizer")
    warmup: str = setting("none", "Warmup (see `list warmups`).", names="warmup",
                          per_member=True)
    warmup_period: int | None = setting(None, "Period of linear/exponential warmup, and the "
                                        "peak of inverse-sqrt.", positive_int, per_member=True,
                                        conditional=True)
    schedule: str = setting("constant", "LR schedule (see `list schedules`).",
                            names="schedule")
    delay_schedule: bool = setting(False, "Hold the schedule until the warmup has passed.",
                                   per_member=True, conditional=True)
    lr: float = setting(1e-3, "Base learning rate.", positive, per_member=True, feeds="lr")
    beta1: float = setting(0.9, "Adam beta1.", below_one, per_member=True, conditional=True,
                           feeds=("betas", 0))
    beta2: float = setting(0.999, "Adam beta2.", below_one, per_member=True, conditional=True,
                           feeds=("betas", 1))
    eps: float = setting(1e-8, "Adam epsilon.", positive, added=True, per_member=True,
                         conditional=True, feeds="eps")
    momentum: float = setting(0.9, "SGD momentum.", below_one, added=True, per_member=True,
                              conditional=True, feeds="momentum")
    weight_decay: float = setting(0.0, "Weight decay.", at_least_zero, per_member=True,
                                  feeds="weight_decay")
    weight_decay_on: str = setting("all", "The parameters weight decay acts on: all, or "
                                   "matrices (those of 2+ dimensions: not biases or norm "
                                   "gains, as GPT-2 and nanoGPT).", one_of(*DECAY_TARGETS),
                                   added=True, per_member=True)
    epochs: int = setting(10, "Epochs.", positive)
    batch_size: int = setting(128, "Training batch size.", positive)
    test_batch_size: int = setting(1000, "Evaluation batch size.", positive)
    seed: int = setting(1, "Seed (model init, batch order, augmentation).", seed_range,
                        per_member=True)
    milestones: tuple[int, ...] = setting((), "Multistep milestones in epochs.",
                                          positive_epochs, per_member=True, conditional=True)
    gamma: float = setting(0.1, "Multistep decay factor.", at_least_zero, per_member=True,
                           conditional=True)
    eta_min: float = setting(0.0, "The final LR of the cosine schedules and of WSD's "
                             "cooldown.", at_least_zero, per_member=True, conditional=True)
    cooldown_fraction: float = setting(0.2, "WSD: the share of training its cooldown takes.",
                                       fraction, added=True, per_member=True, conditional=True)
    cooldown_shape: str = setting("linear", "WSD: the cooldown's shape: linear, cosine or "
                                  "1-sqrt.", one_of("linear", "cosine", "1-sqrt"), added=True,
                                  per_member=True, conditional=True)
    label_smoothing: float = setting(0.0, "Label smoothing.", below_one, per_member=True)
    grad_clip: float | None = setting(None, "Gradient-norm clipping threshold.", positive,
                                      per_member=True)
    augment: str = setting("none", "Training augmentation (default: the task's).",
                           names="augmentation")
    val_fraction: float = setting(0.0, "Fraction of the train split held out for "
                                  "validation.", below_one)
    val_split_seed: int = setting(42, "Seed of the train/val split.", seed_range)
    train_samples: int | None = setting(None, "Train on the first N samples only (smoke "
                                        "runs).", positive)
    log_interval: int = setting(10, "Iterations between logged steps.", positive)
    precise_bn: int | None = setting(None, "Also evaluate with BatchNorm statistics "
                                     "recomputed at each epoch's weights over N fixed "
                                     "training batches (epochs.csv's *_pbn columns; the "
                                     "training is unchanged).", positive_int, added=True,
                                     per_member=True)
    amp: bool = setting(False, "bf16 autocast on CUDA, or on a CPU with native bf16 "
                        "(AVX512-BF16, AMX); float32 elsewhere.")
    compile: bool = setting(False, "torch.compile the model.")
    # the language-model tasks' own settings (tasks.check_text_settings refuses them
    # elsewhere): the window, the Transformer's block form, and what an epoch is
    context: int = setting(64, "Text tasks: tokens per window, the model's context.",
                           positive_int, added=True, text_only=True)
    norm: str = setting("pre", "Text tasks: LayerNorm placement, pre (GPT-2) or post (the "
                        "original Transformer).", one_of("pre", "post"), added=True,
                        text_only=True)
    qk_norm: bool = setting(False, "Text tasks: LayerNorm on attention queries and keys.",
                            added=True, text_only=True)
    dropout: float = setting(0.0, "Text tasks: the Transformer's dropout.", below_one,
                             added=True, text_only=True)
    bias: bool = setting(True, "Text tasks: biases in the Transformer's linear and LayerNorm "
                         "layers (nanoGPT has none).", added=True, text_only=True)
    epoch_steps: int | None = setting(None, "Text tasks: optimizer steps per epoch, the "
                                      "interval between evaluations.", positive_int,
                                      added=True, text_only=True)
    # the plugins (files, packages, data files) providing a name this config uses, each
    # "name#sha256:<16 hex>": derived when the config is resolved, never set by hand
    plugins: tuple[str, ...] = setting((), "Plugins behind the names used.", flag="",
                                       added=True)

    def to_dict(self) -> dict:
        # every value is a scalar or a tuple of ints: no deep copy needed (asdict's is slow)
        return {name: getattr(self, name) for name in SETTINGS}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The inverse of to_dict, checking every value's type (JSON and TOML give lists
        where the config has tuples, and ints where it has floats). Unknown or missing
        required keys raise ConfigError."""
        unknown = set(values) - set(SETTINGS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}.")
        checked = {k: check_value_type(k, v) for k, v in values.items()}
        try:
            return cls(**checked)
        except TypeError as error:  # a required setting missing
            raise ConfigError(f"incomplete configuration ({error}).") from None


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
SETTINGS = tuple(FIELDS)
DECLARED: dict[str, Setting] = {name: f.metadata["setting"] for name, f in FIELDS.items()}
# Settings added after 0.1.0, with their defaults: a run at the default hashes (and so is
# named) as it did before the setting existed, so older run folders keep being found.
ADDED_SETTINGS = {name: FIELDS[name].default for name, s in DECLARED.items() if s.added}
# the settings that name a registry entry, by the kind of entry they name
NAMES = {s.names: name for name, s in DECLARED.items() if s.names}
CONDITIONAL = tuple(name for name, s in DECLARED.items() if s.conditional)
TEXT_ONLY = tuple(name for name, s in DECLARED.items() if s.text_only)
# the settings an optimizer's factory is called with: setting name -> (keyword, tuple
# position or None)
FEEDS = {name: s.feeds if isinstance(s.feeds, tuple) else (s.feeds, None)
         for name, s in DECLARED.items() if s.feeds is not None}


def option(key: str) -> str:
    """The CLI spelling of a setting: warmup_period -> --warmup-period."""
    flag = DECLARED[key].flag if key in DECLARED else None
    return flag or "--" + key.replace("_", "-")


def _field_kinds() -> dict[str, tuple[type, bool, type | None]]:
    """Each setting's value type (int, float, str, bool or a tuple), whether it may be
    None, and a tuple's item type, read from TrainConfig's annotations."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if optional else hint
        items = typing.get_args(base)[0] if typing.get_origin(base) is tuple else None
        kinds[name] = (typing.get_origin(base) or base, optional, items)
    return kinds


FIELD_KINDS = _field_kinds()
_KIND_NAMES = {int: "an integer", float: "a finite number", str: "a string",
               bool: "true or false", (tuple, int): "a list of integers",
               (tuple, str): "a list of strings"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is not 1 here


def check_value_type(key: str, value):
    """`value` checked against setting `key`'s type and returned in its canonical form
    (ints given for floats become floats, lists become tuples); ConfigError otherwise."""
    kind, optional, items = FIELD_KINDS[key]
    if value is None and optional:
        return None
    if kind is float and (_is_int(value) or isinstance(value, float)):
        if math.isfinite(value):
            return float(value)
    elif kind is int and _is_int(value) or kind is bool and isinstance(value, bool) \
            or kind is str and isinstance(value, str):
        return value
    elif kind is tuple and isinstance(value, (list, tuple)) and all(
            _is_int(v) if items is int else isinstance(v, items) for v in value):
        return tuple(value)
    expected = _KIND_NAMES[(kind, items) if items else kind] + \
        (" (or omitted)" if optional else "")
    raise ConfigError(f"{option(key)} {value!r} must be {expected}.")


def check_values(cfg: TrainConfig) -> None:
    """Every setting's type, then its declared check (ranges), in declaration order."""
    for key, value in cfg.to_dict().items():
        check_value_type(key, value)
    for key, declared in DECLARED.items():
        value = getattr(cfg, key)
        if declared.check is not None and value is not None:
            declared.check(option(key), value)
