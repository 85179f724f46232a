"""Warmup schedules that dampen an optimizer's learning rate.

Whatever LR alpha_t a scheduler (or nothing) sets, the optimizer steps with
alpha_t * omega_t, where omega_t in [0, 1] is the warmup factor at iteration
t = 1, 2, ...  The protocol (the semantics of the pytorch_warmup package):

    warmup = LinearWarmup(optimizer, warmup_period=2000)   # after the LR scheduler
    for batch in batches:
        ...
        optimizer.step()
        with warmup.dampening():
            lr_scheduler.step()

Creating the warmup records every group's LR and dampens it for t = 1, so the very
first optimizer step already uses alpha * omega_1.  Entering `dampening()` puts the
undampened LRs back so that schedulers see (and update) them; leaving it records the
new undampened LRs and dampens them for the next iteration.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim import Optimizer


def check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{optimizer!r} ({type(optimizer).__name__}) is not a torch.optim.Optimizer."
        )


def warmup_periods(warmup_period: int | list[int], group_count: int) -> list[int]:
    """One positive int period per param group, from one int or a list of them."""
    periods = warmup_period if isinstance(warmup_period, list) else [warmup_period]
    for period in periods:
        # bool is an int subclass, but a period of True is a mistake, not 1.
        if not isinstance(period, int) or isinstance(period, bool):
            raise TypeError(
                f"warmup_period must be a positive int or a list of them, got "
                f"{period!r} ({type(period).__name__})."
            )
        if period <= 0:
            raise ValueError(f"warmup_period must be a positive int, got {period}.")
    if not isinstance(warmup_period, list):
        return periods * group_count
    if len(periods) != group_count:
        raise ValueError(
            f"warmup_period has {len(periods)} entries but the optimizer has "
            f"{group_count} param groups."
        )
    return periods


def group_beta2s(optimizer: Optimizer, warmup_name: str) -> list[float]:
    """beta2 of every param group; an error for optimizers without `betas` (e.g. SGD)."""
    beta2s = []
    for index, group in enumerate(optimizer.param_groups):
        if "betas" not in group:
            raise ValueError(
                f"{warmup_name} needs Adam-style `betas`, but param group {index} of "
                f"{type(optimizer).__name__} has none."
            )
        beta2 = float(group["betas"][1])
        if not 0.0 < beta2 < 1.0:
            raise ValueError(f"{warmup_name} needs beta2 in (0, 1), got {beta2}.")
        beta2s.append(beta2)
    return beta2s


def _copy_lr(lr: float | torch.Tensor) -> float | torch.Tensor:
    return lr.detach().clone() if isinstance(lr, torch.Tensor) else lr


class BaseWarmup:
    """Base class: multiplies each group's LR by `warmup_factor(step, **params)`.

    `warmup_params` holds one dict of keyword parameters per param group.
    `last_step` is the index of the last dampened step (-1: none yet); step index s
    stands for iteration t = s + 1.
    """

    def __init__(self, optimizer: Optimizer, warmup_params: list[dict], last_step: int = -1):
        self.optimizer = optimizer
        self.warmup_params = warmup_params
        self.last_step = last_step
        self.lrs = [_copy_lr(group["lr"]) for group in optimizer.param_groups]
        self.dampen()

    def warmup_factor(self, step: int, **params: Any) -> float:
        """omega at step index `step` (iteration t = step + 1)."""
        raise NotImplementedError

    def factor_at(self, step: int, group: int = 0) -> float:
        """omega of param group `group` at step index `step` (what a log records)."""
        return self.warmup_factor(step, **self.warmup_params[group])

    def dampen(self, step: int | None = None) -> None:
        """Multiplies every group's current LR by the factor of `step` (default: next)."""
        self.last_step = self.last_step + 1 if step is None else step
        for group, params in zip(self.optimizer.param_groups, self.warmup_params):
            omega = self.warmup_factor(self.last_step, **params)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].mul_(omega)  # in place: compiled optimizers hold this tensor
            else:
                group["lr"] *= omega

    @contextmanager
    def dampening(self):
        """Undampened LRs inside (for schedulers to step); dampened again on exit."""
        self._restore_lrs()
        yield
        self.lrs = [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]
        self.dampen()

    def _restore_lrs(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].copy_(lr)
            else:
                group["lr"] = lr

    def state_dict(self) -> dict:
        """Everything but the optimizer: last_step, undampened LRs, per-group params."""
        return {
            "last_step": self.last_step,
            "lrs": [_copy_lr(lr) for lr in self.lrs],
            "warmup_params": [dict(params) for params in self.warmup_params],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the state and re-dampens the optimizer's LRs to match it.

        Re-dampening gives the same LR the optimizer had when the state was saved, so
        loading works whether or not the optimizer's own state was loaded first.
        """
        self.last_step = state_dict["last_step"]
        self.lrs = [_copy_lr(lr) for lr in state_dict["lrs"]]
        self.warmup_params = [dict(params) for params in state_dict["warmup_params"]]
        self._restore_lrs()
        self.dampen(self.last_step)


class NoWarmup(BaseWarmup):
    """omega_t = 1: the optimizer's LR unchanged (a uniform stand-in for 'no warmup')."""

    def __init__(self, optimizer: Optimizer, last_step: int = -1):
        check_optimizer(optimizer)
        super().__init__(optimizer, [{} for _ in optimizer.param_groups], last_step)

    def warmup_factor(self, step: int) -> float:
        return 1.0


class LinearWarmup(BaseWarmup):
    """omega_t = min(1, t / tau), tau = `warmup_period` (one int, or one per group)."""

    def __init__(self, optimizer: Optimizer, warmup_period: int | list[int], last_step: int = -1):
        check_optimizer(optimizer)
        periods = warmup_periods(warmup_period, len(optimizer.param_groups))
        super().__init__(optimizer, [{"warmup_period": p} for p in periods], last_step)

    def warmup_factor(self, step: int, warmup_period: int) -> float:
        return min(1.0, (step + 1) / warmup_period)


class ExponentialWarmup(BaseWarmup):
    """omega_t = 1 - exp(-t / tau), tau = `warmup_period` (one int, or one per group)."""

    def __init__(self, optimizer: Optimizer, warmup_period: int | list[int], last_step: int = -1):
        check_optimizer(optimizer)
        periods = warmup_periods(warmup_period, len(optimizer.param_groups))
        super().__init__(optimizer, [{"warmup_period": p} for p in periods], last_step)

    def warmup_factor(self, step: int, warmup_period: int) -> float:
        return 1.0 - math.exp(-(step + 1) / warmup_period)
