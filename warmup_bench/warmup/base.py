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
import numbers
import warnings
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim import Optimizer

# The error messages of optimizer and period checks are pytorch_warmup's, word for word:
# code (and pytorch_warmup's own tests) written against it may match on them.

def check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{optimizer} ({type(optimizer).__name__}) is not an Optimizer.")


def warmup_periods(warmup_period: int | list[int], group_count: int) -> list[int]:
    """One positive int period per param group, from one int or a list of them. A bool
    is refused as a period (True is an int to Python, but a period of True is a bug)."""
    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if isinstance(warmup_period, list):
        if len(warmup_period) != group_count:
            raise ValueError(f"The size of warmup_period ({len(warmup_period)}) does not "
                             f"match the size of param_groups ({group_count}).")
        for period in warmup_period:
            if not is_int(period):
                raise TypeError(f"An element in warmup_period, {type(period).__name__}, is "
                                "not an int.")
            if period <= 0:
                raise ValueError("An element in warmup_period must be a positive integer, "
                                 f"but is {period}.")
        return list(warmup_period)
    if not is_int(warmup_period):
        raise TypeError(f"{warmup_period} ({type(warmup_period).__name__}) is not a list nor "
                        "an int.")
    if warmup_period <= 0:
        raise ValueError(f"warmup_period must be a positive integer, but is {warmup_period}.")
    return [warmup_period] * group_count


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
        if not 0.0 <= beta2 < 1.0:  # Adam's own range; the periods need beta2 < 1
            raise ValueError(f"{warmup_name} needs beta2 in [0, 1), got {beta2}.")
        beta2s.append(beta2)
    return beta2s


def _copy_lr(lr: float | torch.Tensor) -> float | torch.Tensor:
    return lr.detach().clone() if isinstance(lr, torch.Tensor) else lr


FACTOR_TOLERANCE = 1e-12  # a factor may exceed 1 by float noise (the built-in ones never do)


def check_state_keys(state_dict: Any, expected: tuple[str, ...], what: str) -> None:
    """A dict holding at least the keys `expected` (those `what.state_dict()` returns)."""
    found = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else None
    if found is None or not set(expected) <= set(found):
        shown = found if found is not None else f"a {type(state_dict).__name__}"
        raise ValueError(f"not a {what} state dict: expected the keys {sorted(expected)}, "
                         f"found {shown}.")


class WarmupFactorError(ValueError):
    """A warmup_factor that returned no finite number in [0, 1]; `culprit` is its class."""

    def __init__(self, message: str, culprit: type):
        super().__init__(message)
        self.culprit = culprit


class BaseWarmup:
    """Base class: multiplies each group's LR by `warmup_factor(step, **params)`.

    `warmup_params` holds one dict of keyword parameters per param group.
    `last_step` is the index of the last dampened step (-1: none yet); step index s
    stands for iteration t = s + 1.

    Rules: the optimizer keeps the param groups it had when the warmup was created;
    `warmup_factor` returns a finite number in [0, 1] (checked before any LR is
    multiplied); a state loads only into a warmup over as many param groups (its params
    replace this warmup's, with a warning when they differ).
    """

    _scheduler = None  # the WarmupScheduler stepping this warmup, once one is created

    def __init__(self, optimizer: Optimizer, warmup_params: list[dict], last_step: int = -1):
        if len(warmup_params) != len(optimizer.param_groups):  # zip would skip a group
            raise ValueError(f"warmup_params has {len(warmup_params)} entries but the "
                             f"optimizer has {len(optimizer.param_groups)} param groups.")
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

    def checked_factors(self, step: int) -> list[float]:
        """omega of every param group at step index `step`, each checked to be a finite
        number in [0, 1] (exceptions of `warmup_factor` itself propagate unchanged)."""
        factors = []
        for index, params in enumerate(self.warmup_params):
            omega = self.warmup_factor(step, **params)
            # plain comparisons, false for NaN; bool is a Real but a factor of True is a bug
            if (not isinstance(omega, numbers.Real) or isinstance(omega, bool)
                    or not 0.0 <= omega <= 1.0 + FACTOR_TOLERANCE):
                kind = "" if isinstance(omega, float) else f" ({type(omega).__name__})"
                raise WarmupFactorError(
                    f"{type(self).__name__}.warmup_factor returned {omega!r}{kind} at "
                    f"iteration {step + 1} (step index {step}, param group {index}): a "
                    f"warmup factor must be a finite number in [0, 1].", type(self))
            factors.append(omega)
        return factors

    def dampen(self, step: int | None = None) -> None:
        """Multiplies every group's current LR by the factor of `step` (default: next).
        All factors are checked first, so a bad one never reaches the optimizer."""
        self._check_groups()
        self.last_step = self.last_step + 1 if step is None else step
        factors = self.checked_factors(self.last_step)
        for group, omega in zip(self.optimizer.param_groups, factors):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].mul_(omega)  # in place: compiled optimizers hold this tensor
            else:
                group["lr"] *= omega

    @contextmanager
    def dampening(self):
        """Undampened LRs inside (for schedulers to step); dampened again on exit."""
        self._check_groups()
        self._restore_lrs()
        yield
        self.lrs = [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]
        self.dampen()

    def _check_groups(self) -> None:
        """A group added later would never be warmed up (and zip would skip it): refuse."""
        count, recorded = len(self.optimizer.param_groups), len(self.lrs)
        if count != recorded:
            change = "gained" if count > recorded else "lost"
            raise ValueError(
                f"the optimizer {change} a param group after the warmup was created (it has "
                f"{count} param groups, the warmup was created for {recorded}): create the "
                f"warmup (and its WarmupScheduler) after all param groups are added.")

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
        """Restores the state, periods included, and re-dampens the optimizer's LRs to
        match it.

        As in pytorch_warmup, the saved params replace the constructed ones (a state saved
        with another warmup_period loads, and the warmup goes on with the saved period);
        here that replacement is said in a UserWarning naming both. Re-dampening gives the
        same LR the optimizer had when the state was saved, so loading works whether or
        not the optimizer's own state was loaded first.
        """
        replaced = self.check_state(state_dict)
        self._check_groups()
        if replaced:
            warnings.warn(f"{type(self).__name__}.load_state_dict: {replaced}", UserWarning,
                          stacklevel=2)
        self.warmup_params = [dict(params) for params in state_dict["warmup_params"]]
        self.last_step = state_dict["last_step"]
        self.lrs = [_copy_lr(lr) for lr in state_dict["lrs"]]
        self._restore_lrs()
        self.dampen(self.last_step)
        if self._scheduler is not None:  # loading is no foreign step of its WarmupScheduler
            self._scheduler._left_step = self.last_step

    def check_state(self, state_dict: Any) -> str | None:
        """Refuses what is not a state of this kind of warmup over this optimizer (other
        keys, another number of param groups, params of another kind); returns what
        loading it would change in this warmup's params ("the saved warmup_period 50
        replaces 199 (param group 0)"), or None."""
        check_state_keys(state_dict, ("last_step", "lrs", "warmup_params"), "warmup")
        saved, own = state_dict["warmup_params"], self.warmup_params
        if not isinstance(saved, list) or not all(isinstance(p, dict) for p in saved):
            raise ValueError("not a warmup state dict: its warmup_params is not a list of "
                             "dicts (one per param group).")
        if len(saved) != len(own) or len(state_dict["lrs"]) != len(own):
            raise ValueError(f"the saved state has {len(saved)} param groups, this warmup "
                             f"{len(own)}: load it into a warmup over the same optimizer.")
        changes = []
        for index, (theirs, ours) in enumerate(zip(saved, own)):
            if dict(theirs) == ours:
                continue
            if set(theirs) != set(ours):  # warmup_factor could not take them
                raise ValueError(f"the saved state is of another kind of warmup: its params "
                                 f"{dict(theirs)}, this {type(self).__name__}'s {ours} "
                                 f"(param group {index}).")
            if set(ours) == {"warmup_period"}:  # the usual case
                changes.append(f"the saved warmup_period {theirs['warmup_period']} replaces "
                               f"{ours['warmup_period']} (param group {index})")
            else:
                changes.append(f"the saved warmup params {dict(theirs)} replace {ours} "
                               f"(param group {index})")
        return "; ".join(changes) or None


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
