"""The resolved training configuration, and the one error type for bad configuration.

`TrainConfig` is what identifies an experiment cell (with its seed): it is recorded as
the run folder's config file and hashed into the run folder's name. Everything about *how* a run was
executed (device, threads, versions, start time) is bookkeeping and lives elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass


class ConfigError(ValueError):
    """A bad name or value in a configuration: a user-facing one-line message."""


class UnknownName(ConfigError):
    """A name no registry holds (perhaps one a plugin that is not loaded would provide)."""

    def __init__(self, message: str, value):
        super().__init__(message)
        self.value = value


def check_choice(option: str, value, choices: Iterable[str]) -> None:
    """The one check of a name against its valid choices (CLI flags, presets, grid files,
    data-set names): raises UnknownName listing them."""
    choices = list(choices)
    if value not in choices:
        raise UnknownName(f"{option} {value!r} is not valid; choose from: "
                          f"{', '.join(choices)}.", value)


@dataclass(frozen=True)
class TrainConfig:
    task: str
    dataset: str
    model: str
    opt: str = "adamw"
    warmup: str = "none"
    warmup_period: int | None = None
    schedule: str = "constant"
    delay_schedule: bool = False
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8  # Adam's epsilon (added in 0.2.0)
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    test_batch_size: int = 1000
    seed: int = 1
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    eta_min: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    augment: str = "none"
    val_fraction: float = 0.0
    val_split_seed: int = 42
    train_samples: int | None = None  # first N training samples only (smoke runs)
    log_interval: int = 10
    amp: bool = False
    compile: bool = False
    # the plugins (files, packages, data files) providing a name this config uses, each
    # "name#sha256:<16 hex>": derived when the config is resolved, never set by hand
    plugins: tuple[str, ...] = ()

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


SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Settings added after 0.1.0, with their defaults: a run at the default hashes (and so is
# named) as it did before the setting existed, so older run folders keep being found.
ADDED_SETTINGS = {"eps": 1e-8, "plugins": ()}
MAX_SEED = 2**63 - 1  # torch.manual_seed's range


def option(key: str) -> str:
    """The CLI spelling of a setting: warmup_period -> --warmup-period."""
    return "--" + key.replace("_", "-")


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
