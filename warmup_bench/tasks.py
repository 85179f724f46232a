"""Task presets (data set + model + the reference hyperparameters) and the resolved
training configuration: a preset with every user override applied and validated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data import AUGMENTATIONS, DATASETS
from .models import MODELS
from .optim import OPTIMIZERS, SCHEDULES, WARMUPS


class ConfigError(ValueError):
    """A bad name or value in a configuration (a user-facing one-line message)."""


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


TASKS: dict[str, TrainConfig] = {
    "cifar10-resnet20": TrainConfig(
        task="cifar10-resnet20", dataset="cifar10", model="resnet20", opt="adamw",
        warmup="untuned-linear", schedule="multistep", milestones=(81, 122), lr=0.01,
        weight_decay=1e-4, epochs=186, batch_size=128, augment="crop-flip"),
    "emnist-cnn": TrainConfig(
        task="emnist-cnn", dataset="emnist", model="emnist-cnn", opt="adamw",
        warmup="untuned-linear", schedule="cosine", eta_min=1e-5, lr=0.01, weight_decay=0.01,
        epochs=10, batch_size=64),
    "mnist-vit": TrainConfig(
        task="mnist-vit", dataset="mnist", model="vit", opt="adamw", warmup="none",
        schedule="cosine-epoch", lr=1e-3, weight_decay=1e-4, epochs=20, batch_size=128,
        label_smoothing=0.1, grad_clip=1.0, augment="rotate-translate", val_fraction=0.1),
    "digits": TrainConfig(
        task="digits", dataset="digits", model="digits-net", opt="adamw",
        warmup="untuned-linear", schedule="cosine", lr=0.01, weight_decay=1e-4, epochs=30,
        batch_size=32, test_batch_size=512),
}
TASKS["fashion-mnist-vit"] = dataclasses.replace(
    TASKS["mnist-vit"], task="fashion-mnist-vit", dataset="fashion-mnist")
TASK_DESCRIPTIONS = {
    "cifar10-resnet20": "ResNet-20 (or --model resnetN) on CIFAR-10, Ma & Yarats' recipe",
    "emnist-cnn": "the pytorch_warmup EMNIST-balanced CNN recipe",
    "mnist-vit": "ViT (1.8M params) on MNIST, 90/10 train/val split",
    "fashion-mnist-vit": "the ViT recipe on Fashion-MNIST",
    "digits": "small conv net on scikit-learn's embedded 8x8 digits (seconds on a CPU)",
}


def _choice(option: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{option} {value!r} is not valid; choose from: {', '.join(choices)}.")


def resolve_config(task: str, overrides: dict | None = None) -> TrainConfig:
    """The preset of `task` with `overrides` (None values ignored), validated."""
    _choice("--task", task, TASKS)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}.")
    cfg = TrainConfig.from_dict({**TASKS[task].to_dict(), **given})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    _choice("--opt", cfg.opt, OPTIMIZERS)
    _choice("--warmup", cfg.warmup, WARMUPS)
    _choice("--schedule", cfg.schedule, SCHEDULES)
    _choice("--model", cfg.model, MODELS)
    _choice("dataset", cfg.dataset, DATASETS)
    _choice("augment", cfg.augment, AUGMENTATIONS)
    positive = {"--lr": cfg.lr, "--epochs": cfg.epochs, "--batch-size": cfg.batch_size,
                "--test-batch-size": cfg.test_batch_size, "--log-interval": cfg.log_interval}
    for option, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{option} {value} must be positive.")
    if cfg.weight_decay < 0:
        raise ConfigError(f"--weight-decay {cfg.weight_decay} must be >= 0.")
    for option, value in (("--beta1", cfg.beta1), ("--beta2", cfg.beta2)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{option} {value} must be in [0, 1).")
    warmup = WARMUPS[cfg.warmup]
    if warmup.needs_period and cfg.warmup_period is None:
        raise ConfigError(f"--warmup {cfg.warmup} needs --warmup-period (a positive int).")
    if cfg.schedule == "inverse-sqrt" and cfg.warmup_period is None:
        raise ConfigError("--schedule inverse-sqrt needs --warmup-period (its peak).")
    if cfg.warmup_period is not None and cfg.warmup_period < 1:
        raise ConfigError(f"--warmup-period {cfg.warmup_period} must be a positive int.")
    if warmup.needs_betas and not OPTIMIZERS[cfg.opt].has_betas:
        with_betas = [n for n, o in OPTIMIZERS.items() if o.has_betas]
        raise ConfigError(f"--warmup {cfg.warmup} derives its period from beta2, which "
                          f"--opt {cfg.opt} does not have; use one of: {', '.join(with_betas)}.")
    if cfg.warmup == "radam" and not cfg.beta2 > 0.6:
        raise ConfigError(f"--warmup radam needs --beta2 > 0.6, got {cfg.beta2}.")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError(f"val_fraction {cfg.val_fraction} must be in [0, 1).")
    if cfg.train_samples is not None and cfg.train_samples < 1:
        raise ConfigError(f"--train-samples {cfg.train_samples} must be positive.")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ConfigError(f"--grad-clip {cfg.grad_clip} must be positive.")
    if cfg.schedule == "multistep" and not cfg.milestones:
        raise ConfigError("--schedule multistep needs --milestones (epochs).")
    if any(m < 1 for m in cfg.milestones):
        raise ConfigError(f"--milestones {list(cfg.milestones)} must be positive epochs.")


def redundant_warmup_note(cfg: TrainConfig) -> str | None:
    if cfg.warmup == "radam" and cfg.opt in ("radam", "radamw"):
        return (f"note: --warmup radam on --opt {cfg.opt} is redundant: RAdam already "
                "applies this rectification.")
    return None


__all__ = ["TASKS", "TASK_DESCRIPTIONS", "TrainConfig", "ConfigError", "resolve_config",
           "validate", "redundant_warmup_note"]
