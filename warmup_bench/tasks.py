"""Task presets (data set + model + the reference hyperparameters) and the resolved
training configuration: a preset with every user override applied and validated."""

from __future__ import annotations

import dataclasses

from .config import MAX_SEED, SETTINGS, ConfigError, TrainConfig, check_choice, check_value_type
from .data import AUGMENTATIONS, DATASETS
from .models import MODELS
from .optim import OPTIMIZERS, SCHEDULES, WARMUPS
from .plugins import check_recorded, plugins_for

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
        # "none": what the write-up's code ran, not what its text says (see TASK_DESCRIPTIONS)
        label_smoothing=0.1, grad_clip=1.0, augment="none", val_fraction=0.1),
    "digits": TrainConfig(
        task="digits", dataset="digits", model="digits-net", opt="adamw",
        warmup="untuned-linear", schedule="cosine", lr=0.01, weight_decay=1e-4, epochs=30,
        batch_size=32, test_batch_size=512),
}
TASKS["fashion-mnist-vit"] = dataclasses.replace(
    TASKS["mnist-vit"], task="fashion-mnist-vit", dataset="fashion-mnist")
# every registry a config names an entry of, by the kind of entry (what plugins register)
REGISTRIES = {"task": TASKS, "optimizer": OPTIMIZERS, "warmup": WARMUPS, "schedule": SCHEDULES,
              "model": MODELS, "dataset": DATASETS}
TASK_DESCRIPTIONS = {
    "cifar10-resnet20": "ResNet-20 (or --model resnetN) on CIFAR-10, Ma & Yarats' recipe",
    "emnist-cnn": "the pytorch_warmup EMNIST-balanced CNN recipe",
    "mnist-vit": "ViT (1.8M params) on MNIST, 90/10 train/val split; no augmentation, as the "
                 "write-up's code ran (its text describes rotation + translation, but its "
                 "val transform also replaced the train subset's: --augment "
                 "rotate-translate for the described one)",
    "fashion-mnist-vit": "the ViT recipe on Fashion-MNIST",
    "digits": "small conv net on scikit-learn's embedded 8x8 digits (seconds on a CPU)",
}


def resolve_config(task: str, overrides: dict | None = None) -> TrainConfig:
    """The preset of `task` with `overrides` (None values ignored), validated. Its
    `plugins` are derived: those providing the names it uses."""
    check_choice("--task", task, TASKS)
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k != "plugins"}
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}.")
    canonical = {key: check_value_type(key, value) for key, value in given.items()}
    cfg = dataclasses.replace(TASKS[task], **canonical)
    cfg = dataclasses.replace(cfg, plugins=plugins_for(cfg))
    validate(cfg)  # every field's type, range and the registries' rules
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Every name against its registry, every value against its range, and the rules the
    chosen entries state (what a warmup or schedule needs)."""
    for key, value in cfg.to_dict().items():
        check_value_type(key, value)
    check_recorded(cfg)  # first: a name from a plugin that is not loaded names the plugin
    for option, value, registry in (
            ("--opt", cfg.opt, OPTIMIZERS), ("--warmup", cfg.warmup, WARMUPS),
            ("--schedule", cfg.schedule, SCHEDULES), ("--model", cfg.model, MODELS),
            ("dataset", cfg.dataset, DATASETS), ("augment", cfg.augment, AUGMENTATIONS)):
        check_choice(option, value, registry)
    positive = {"--lr": cfg.lr, "--epochs": cfg.epochs, "--batch-size": cfg.batch_size,
                "--test-batch-size": cfg.test_batch_size, "--log-interval": cfg.log_interval}
    for option, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{option} {value} must be positive.")
    if not cfg.eps > 0:
        raise ConfigError(f"--eps {cfg.eps} must be positive.")
    for option, value in (("--weight-decay", cfg.weight_decay), ("--eta-min", cfg.eta_min),
                          ("--gamma", cfg.gamma)):
        if value < 0:
            raise ConfigError(f"{option} {value} must be >= 0.")
    for option, value in (("--seed", cfg.seed), ("--val-split-seed", cfg.val_split_seed)):
        if not 0 <= value <= MAX_SEED:
            raise ConfigError(f"{option} {value} must be in 0..2^63-1.")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError(f"--label-smoothing {cfg.label_smoothing} must be in [0, 1).")
    for option, value in (("--beta1", cfg.beta1), ("--beta2", cfg.beta2)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{option} {value} must be in [0, 1).")
    if cfg.warmup_period is not None and cfg.warmup_period < 1:
        raise ConfigError(f"--warmup-period {cfg.warmup_period} must be a positive int.")
    optimizer, warmup, schedule = OPTIMIZERS[cfg.opt], WARMUPS[cfg.warmup], SCHEDULES[cfg.schedule]
    if warmup.needs_period and cfg.warmup_period is None:
        raise ConfigError(f"--warmup {cfg.warmup} needs --warmup-period (a positive int).")
    if schedule.needs_period and cfg.warmup_period is None:
        raise ConfigError(f"--schedule {cfg.schedule} needs --warmup-period (its peak).")
    if warmup.needs_betas and not optimizer.has_betas:
        with_betas = [n for n, o in OPTIMIZERS.items() if o.has_betas]
        raise ConfigError(f"--warmup {cfg.warmup} derives its period from beta2, which "
                          f"--opt {cfg.opt} does not have; use one of: {', '.join(with_betas)}.")
    if warmup.min_beta2 is not None and not cfg.beta2 > warmup.min_beta2:
        raise ConfigError(f"--warmup {cfg.warmup} needs --beta2 > {warmup.min_beta2}, "
                          f"got {cfg.beta2}.")
    if schedule.needs_milestones and not cfg.milestones:
        raise ConfigError(f"--schedule {cfg.schedule} needs --milestones (epochs).")
    if any(m < 1 for m in cfg.milestones):
        raise ConfigError(f"--milestones {list(cfg.milestones)} must be positive epochs.")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError(f"val_fraction {cfg.val_fraction} must be in [0, 1).")
    if cfg.train_samples is not None and cfg.train_samples < 1:
        raise ConfigError(f"--train-samples {cfg.train_samples} must be positive.")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ConfigError(f"--grad-clip {cfg.grad_clip} must be positive.")


def redundant_warmup_note(cfg: TrainConfig) -> str | None:
    """A note when the warmup repeats what the optimizer already does (RAdam on RAdam)."""
    if cfg.warmup == "radam" and OPTIMIZERS[cfg.opt].rectified:
        return (f"note: --warmup radam on --opt {cfg.opt} is redundant: the optimizer already "
                "applies RAdam's rectification.")
    return None


__all__ = ["TASKS", "TASK_DESCRIPTIONS", "TrainConfig", "ConfigError", "resolve_config",
           "validate", "redundant_warmup_note"]
