"""The resolved training configuration, and the one error type for bad configuration.

`TrainConfig` is what identifies an experiment cell (with its seed): it is recorded as
the run folder's config file and hashed into the run folder's name. Everything about *how* a run was
executed (device, threads, versions, start time) is bookkeeping and lives elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass


class ConfigError(ValueError):
    """A bad name or value in a configuration: a user-facing one-line message."""


def check_choice(option: str, value, choices: Iterable[str]) -> None:
    """The one check of a name against its valid choices (CLI flags, presets, grid files,
    data-set names): raises ConfigError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{option} {value!r} is not valid; choose from: {', '.join(choices)}.")


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The inverse of to_dict (JSON and TOML give lists where the config has tuples)."""
        return cls(**{**values, "milestones": tuple(values.get("milestones", ()))})


SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig))
