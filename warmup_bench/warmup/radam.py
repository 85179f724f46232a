"""RAdam's rectification term used as a warmup schedule (Liu et al.; Ma & Yarats).

    rho_inf = 2 / (1 - beta2) - 1
    rho_t   = rho_inf - 2 t beta2^t / (1 - beta2^t)
    omega_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))

omega is defined only where rho_t > 4, so the schedule starts at the offset delta, the
first t >= 1 with rho_t > 4: iteration t uses omega at t + delta - 1.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from .base import BaseWarmup, check_optimizer, group_beta2s

MIN_BETA2 = 0.6  # below this rho_t never exceeds 4 in practice (Fact 3.1 of Ma & Yarats)


def rho_inf_fn(beta2: float) -> float:
    """rho_inf: the limit of rho_t as t -> infinity."""
    return 2.0 / (1 - beta2) - 1


def rho_fn(t, beta2: float, rho_inf: float):
    """rho_t: length of the approximated simple moving average at iteration t (t may be
    a numpy array)."""
    beta2_t = beta2**t
    return rho_inf - 2 * t * beta2_t / (1 - beta2_t)


def get_offset(beta2: float, rho_inf: float) -> int:
    """delta: the smallest t >= 1 with rho_t > 4."""
    if not beta2 > MIN_BETA2:
        # pytorch_warmup's words, which code written against it may match on
        raise ValueError(f"beta2 ({beta2}) must be greater than {MIN_BETA2}")
    t = 1
    while rho_fn(t, beta2, rho_inf) <= 4:
        t += 1
    return t


def radam_factor_squared(rho, rho_inf):
    """omega^2 for rho_t > 4; works on floats and numpy arrays alike."""
    numerator = (rho - 4) * (rho - 2) * rho_inf
    denominator = (rho_inf - 4) * (rho_inf - 2) * rho
    return numerator / denominator


class RAdamWarmup(BaseWarmup):
    """Warmup factor of RAdam's rectification, per param group's beta2."""

    def __init__(self, optimizer: Optimizer, last_step: int = -1):
        check_optimizer(optimizer)
        params = []
        for beta2 in group_beta2s(optimizer, type(self).__name__):
            limit = rho_inf_fn(beta2)
            params.append({"beta2": beta2, "rho_inf": limit, "offset": get_offset(beta2, limit)})
        super().__init__(optimizer, params, last_step)

    def warmup_factor(self, step: int, beta2: float, rho_inf: float, offset: int) -> float:
        return math.sqrt(radam_factor_squared(rho_fn(step + offset, beta2, rho_inf), rho_inf))
