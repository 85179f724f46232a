"""The LR schedules' registry: a name maps to an entry that builds the torch scheduler
(per iteration, or per epoch) and states its own rules (what it needs, what it reads).
optim.build_training puts the chosen one under the warmup."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch.optim import lr_scheduler

from .config import ConfigError, TrainConfig
from .registry import Registry
from .wsd import WarmupStableDecay


@dataclass(frozen=True)
class ScheduleEntry:
    description: str
    label: str
    # (optimizer, *, cfg, iters_per_epoch, total, delay) -> the torch scheduler
    build: Callable[..., lr_scheduler.LRScheduler]
    per_epoch: bool = False
    needs_milestones: bool = False
    needs_period: bool = False  # reads --warmup-period (inverse-sqrt: its peak)
    # the conditional settings it reads (tasks.check_unread refuses the others); None: not
    # declared (a plugin's), so none is refused
    reads: tuple[str, ...] | None = ()

    def check(self, cfg: TrainConfig) -> None:
        """What this schedule needs: its period (peak), or milestones; a final LR below the
        LR it decays from."""
        if self.needs_period and cfg.warmup_period is None:
            raise ConfigError(f"--schedule {cfg.schedule} needs --warmup-period (its peak).")
        if self.needs_milestones and not cfg.milestones:
            raise ConfigError(f"--schedule {cfg.schedule} needs --milestones (epochs).")
        if "eta_min" in (self.reads or ()) and cfg.eta_min > cfg.lr:
            raise ConfigError(f"--eta-min {cfg.eta_min:g} is above --lr {cfg.lr:g}: --schedule "
                              f"{cfg.schedule} decays from the LR down to --eta-min, so it "
                              "would raise the LR instead; choose --eta-min <= --lr.")


def _inverse_sqrt(optimizer, *, cfg, iters_per_epoch, total, delay):
    peak = cfg.warmup_period
    # lr_t = lr * sqrt(w) * min(t^-0.5, t * w^-1.5): rises linearly to lr at t = w, then
    # decays as 1/sqrt(t) (Vaswani et al., normalised so the peak is --lr).
    return lr_scheduler.LambdaLR(
        optimizer, lambda s: math.sqrt(peak) * min((s + 1) ** -0.5, (s + 1) * peak**-1.5))


def _constant(optimizer, **_):
    return lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)


def _multistep(optimizer, *, cfg, iters_per_epoch, total, delay):
    milestones = [m * iters_per_epoch - delay for m in cfg.milestones]
    return lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.gamma)


def _cosine(optimizer, *, cfg, iters_per_epoch, total, delay):
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - delay),
                                          eta_min=cfg.eta_min)


def _cosine_epoch(optimizer, *, cfg, iters_per_epoch, total, delay):
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.eta_min)


def _wsd(optimizer, *, cfg, iters_per_epoch, total, delay):
    return WarmupStableDecay(optimizer, max(1, total - delay), cfg.cooldown_fraction,
                             cfg.cooldown_shape, cfg.eta_min)


SCHEDULES: Registry[ScheduleEntry] = Registry("schedule", "--schedule", {
    "constant": ScheduleEntry("the base LR throughout", "constant", _constant),
    "multistep": ScheduleEntry("x gamma at each milestone epoch, applied per iteration",
                               "multistep", _multistep, needs_milestones=True,
                               reads=("milestones", "gamma", "delay_schedule")),
    "cosine": ScheduleEntry("cosine to eta_min over all iterations, per iteration", "cosine",
                            _cosine, reads=("eta_min", "delay_schedule")),
    "cosine-epoch": ScheduleEntry("cosine to eta_min over the epochs, per epoch",
                                  "cosine (per epoch)", _cosine_epoch, per_epoch=True,
                                  reads=("eta_min", "delay_schedule")),
    "inverse-sqrt": ScheduleEntry("linear rise to the LR at --warmup-period, then 1/sqrt(t)",
                                  "inverse sqrt", _inverse_sqrt, needs_period=True,
                                  reads=("warmup_period", "delay_schedule")),
    "wsd": ScheduleEntry("warmup-stable-decay: constant, then a cooldown over the last "
                         "--cooldown-fraction to eta_min (--cooldown-shape)", "WSD", _wsd,
                         reads=("eta_min", "cooldown_fraction", "cooldown_shape",
                                "delay_schedule")),
})
