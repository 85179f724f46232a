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
    needs_period: bool = False
    needs_betas: bool = False


WARMUPS: dict[str, WarmupEntry] = {
    "none": WarmupEntry("no warmup", lambda o, period: wu.NoWarmup(o)),
    "linear": WarmupEntry("min(1, t / period)", wu.LinearWarmup, needs_period=True),
    "exponential": WarmupEntry("1 - exp(-t / period)", wu.ExponentialWarmup,
                               needs_period=True),
    "untuned-linear": WarmupEntry("linear, period 2 / (1 - beta2)",
                                  lambda o, period: wu.UntunedLinearWarmup(o),
                                  needs_betas=True),
    "untuned-exponential": WarmupEntry("exponential, period 1 / (1 - beta2)",
                                       lambda o, period: wu.UntunedExponentialWarmup(o),
                                       needs_betas=True),
    "radam": WarmupEntry("RAdam's rectification term", lambda o, period: wu.RAdamWarmup(o),
                         needs_betas=True),
}


def warmup_length(warmup: wu.BaseWarmup) -> int:
    """Iterations until omega reaches (about) 1: tau for linear/exponential, T for RAdam."""
    periods = [p.get("warmup_period") for p in warmup.warmup_params]
    if any(p is not None for p in periods):
        return max(p for p in periods if p is not None)
    if isinstance(warmup, wu.RAdamWarmup):
        return max(wu.untuned_linear_period(p["beta2"]) for p in warmup.warmup_params)
    return 0


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
    # the delay must be known before building the schedule; a throwaway warmup on a
    # throwaway optimizer computes it without touching the real LRs
    delay = 0
    if cfg.delay_schedule:
        probe = OPTIMIZERS[cfg.opt].build([torch.nn.Parameter(torch.zeros(1))], cfg.lr,
                                          (cfg.beta1, cfg.beta2), cfg.weight_decay)
        delay = warmup_length(WARMUPS[cfg.warmup].build(probe, cfg.warmup_period))
    total = iters_per_epoch * cfg.epochs
    schedule = SCHEDULES[cfg.schedule].build(optimizer, cfg, iters_per_epoch, total, delay)
    warmup = WARMUPS[cfg.warmup].build(optimizer, cfg.warmup_period)
    return optimizer, schedule, warmup, delay
