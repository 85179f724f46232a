"""Registries of optimizers, warmups and LR schedules: a name maps to a factory.

Adding an optimizer, warmup or schedule is one entry here; the CLI, `list` and the
validation of configs all read these dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import lr_scheduler

from . import warmup as wu


@dataclass(frozen=True)
class OptimizerEntry:
    description: str
    build: Callable[..., torch.optim.Optimizer]  # (params, lr, betas, weight_decay)
    has_betas: bool = True


def adam_family(cls, **options) -> Callable[..., torch.optim.Optimizer]:
    """A builder for an Adam-style optimizer class with fixed extra options."""
    return lambda p, lr, betas, wd: cls(p, lr=lr, betas=betas, weight_decay=wd, **options)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry("SGD, momentum 0.9, L2 weight decay",
                          lambda p, lr, betas, wd: torch.optim.SGD(
                              p, lr=lr, momentum=0.9, weight_decay=wd), has_betas=False),
    "adam": OptimizerEntry("Adam, L2 weight decay", adam_family(torch.optim.Adam)),
    "adamw": OptimizerEntry("AdamW (decoupled weight decay)", adam_family(torch.optim.AdamW)),
    "amsgradw": OptimizerEntry("AdamW with AMSGrad",
                               adam_family(torch.optim.AdamW, amsgrad=True)),
    "nadamw": OptimizerEntry("NAdam with decoupled weight decay",
                             adam_family(torch.optim.NAdam, decoupled_weight_decay=True)),
    "adamax": OptimizerEntry("AdaMax, L2 weight decay", adam_family(torch.optim.Adamax)),
    "radamw": OptimizerEntry("RAdam with decoupled weight decay",
                             adam_family(torch.optim.RAdam, decoupled_weight_decay=True)),
    "radam": OptimizerEntry("RAdam, L2 weight decay", adam_family(torch.optim.RAdam)),
}


@dataclass(frozen=True)
class WarmupEntry:
    description: str
    build: Callable[..., wu.BaseWarmup]  # (optimizer, period)
    # iterations until omega reaches (about) 1, from the config: what --delay-schedule waits
    length: Callable[..., int]  # (cfg)
    needs_period: bool = False
    needs_betas: bool = False


WARMUPS: dict[str, WarmupEntry] = {
    "none": WarmupEntry("no warmup", lambda o, period: wu.NoWarmup(o), lambda cfg: 0),
    "linear": WarmupEntry("min(1, t / period)", wu.LinearWarmup,
                          lambda cfg: cfg.warmup_period, needs_period=True),
    "exponential": WarmupEntry("1 - exp(-t / period)", wu.ExponentialWarmup,
                               lambda cfg: cfg.warmup_period, needs_period=True),
    "untuned-linear": WarmupEntry("linear, period 2 / (1 - beta2)",
                                  lambda o, period: wu.UntunedLinearWarmup(o),
                                  lambda cfg: wu.untuned_linear_period(cfg.beta2),
                                  needs_betas=True),
    "untuned-exponential": WarmupEntry("exponential, period 1 / (1 - beta2)",
                                       lambda o, period: wu.UntunedExponentialWarmup(o),
                                       lambda cfg: wu.untuned_exponential_period(cfg.beta2),
                                       needs_betas=True),
    # RAdam has no period; the paper's rule of thumb equates it with untuned linear's
    "radam": WarmupEntry("RAdam's rectification term", lambda o, period: wu.RAdamWarmup(o),
                         lambda cfg: wu.untuned_linear_period(cfg.beta2), needs_betas=True),
}


@dataclass(frozen=True)
class Schedule:
    """A built LR schedule: the torch scheduler and whether it steps once per epoch."""

    scheduler: lr_scheduler.LRScheduler
    per_epoch: bool = False


@dataclass(frozen=True)
class ScheduleEntry:
    description: str
    # (optimizer, cfg, iters_per_epoch, total_iters, delay) -> Schedule
    build: Callable[..., Schedule]


def _inverse_sqrt(optimizer, cfg, iters_per_epoch, total, delay) -> Schedule:
    peak = cfg.warmup_period
    # lr_t = lr * sqrt(w) * min(t^-0.5, t * w^-1.5): rises linearly to lr at t = w, then
    # decays as 1/sqrt(t) (Vaswani et al., normalised so the peak is --lr).
    factor = lambda s: math.sqrt(peak) * min((s + 1) ** -0.5, (s + 1) * peak**-1.5)  # noqa: E731
    return Schedule(lr_scheduler.LambdaLR(optimizer, factor))


SCHEDULES: dict[str, ScheduleEntry] = {
    "constant": ScheduleEntry("the base LR throughout",
                              lambda o, cfg, ipe, total, delay: Schedule(
                                  lr_scheduler.LambdaLR(o, lambda s: 1.0))),
    "multistep": ScheduleEntry("x gamma at each milestone epoch, applied per iteration",
                               lambda o, cfg, ipe, total, delay: Schedule(
                                   lr_scheduler.MultiStepLR(
                                       o, [m * ipe - delay for m in cfg.milestones],
                                       gamma=cfg.gamma))),
    "cosine": ScheduleEntry("cosine to eta_min over all iterations, per iteration",
                            lambda o, cfg, ipe, total, delay: Schedule(
                                lr_scheduler.CosineAnnealingLR(
                                    o, T_max=max(1, total - delay), eta_min=cfg.eta_min))),
    "cosine-epoch": ScheduleEntry("cosine to eta_min over the epochs, per epoch",
                                  lambda o, cfg, ipe, total, delay: Schedule(
                                      lr_scheduler.CosineAnnealingLR(
                                          o, T_max=cfg.epochs, eta_min=cfg.eta_min),
                                      per_epoch=True)),
    "inverse-sqrt": ScheduleEntry("linear rise to the LR at --warmup-period, then 1/sqrt(t)",
                                  _inverse_sqrt),
}


def build_training(model: torch.nn.Module, cfg, iters_per_epoch: int):
    """Optimizer, warmup (created after the scheduler, as the protocol requires), schedule,
    and the iteration from which the schedule steps (0 unless delayed until warmup ends)."""
    optimizer = OPTIMIZERS[cfg.opt].build(model.parameters(), cfg.lr, (cfg.beta1, cfg.beta2),
                                          cfg.weight_decay)
    delay = WARMUPS[cfg.warmup].length(cfg) if cfg.delay_schedule else 0
    total = iters_per_epoch * cfg.epochs
    schedule = SCHEDULES[cfg.schedule].build(optimizer, cfg, iters_per_epoch, total, delay)
    warmup = WARMUPS[cfg.warmup].build(optimizer, cfg.warmup_period)
    return optimizer, schedule, warmup, delay
