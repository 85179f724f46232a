"""Untuned warmups of Ma & Yarats: periods derived from each group's beta2."""

from __future__ import annotations

from torch.optim import Optimizer

from .base import ExponentialWarmup, LinearWarmup, check_optimizer, group_beta2s


def untuned_linear_period(beta2: float) -> int:
    """tau = 2 / (1 - beta2), truncated to an int: T(omega) ~= tau / 2 ~= 1 / (1 - beta2)."""
    return int(2.0 / (1.0 - beta2))


def untuned_exponential_period(beta2: float) -> int:
    """tau = 1 / (1 - beta2), truncated: omega_t ~= Adam's bias correction 1 - beta2^t."""
    return int(1.0 / (1.0 - beta2))


class UntunedLinearWarmup(LinearWarmup):
    """Linear warmup with tau = int(2 / (1 - beta2)) per param group."""

    def __init__(self, optimizer: Optimizer, last_step: int = -1):
        check_optimizer(optimizer)
        beta2s = group_beta2s(optimizer, type(self).__name__)
        super().__init__(optimizer, [untuned_linear_period(b) for b in beta2s], last_step)


class UntunedExponentialWarmup(ExponentialWarmup):
    """Exponential warmup with tau = int(1 / (1 - beta2)) per param group."""

    def __init__(self, optimizer: Optimizer, last_step: int = -1):
        check_optimizer(optimizer)
        beta2s = group_beta2s(optimizer, type(self).__name__)
        super().__init__(optimizer, [untuned_exponential_period(b) for b in beta2s], last_step)
