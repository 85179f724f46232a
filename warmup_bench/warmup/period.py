"""Effective warmup period T(omega) = sum_{t >= 1} (1 - omega_t) (Ma & Yarats).

The warmup classes compute omega one step at a time with Python floats (bit-exact LRs);
here the same formulas run on numpy arrays, so the long sums (RAdam at beta2 = 0.9999
needs ~10^5 terms) take milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .radam import get_offset, radam_factor_squared, rho_fn, rho_inf_fn
from .untuned import untuned_exponential_period, untuned_linear_period

FactorFn = Callable[[np.ndarray], np.ndarray]


def linear_factors(period: int) -> FactorFn:
    return lambda t: np.minimum(1.0, t / period)


def exponential_factors(period: int) -> FactorFn:
    return lambda t: 1.0 - np.exp(-t / period)


def radam_factors(beta2: float) -> FactorFn:
    limit = rho_inf_fn(beta2)
    delta = get_offset(beta2, limit)
    return lambda t: np.sqrt(radam_factor_squared(rho_fn(t + delta - 1, beta2, limit), limit))


# The beta2-derived schedules of the paper, by warmup name: beta2 -> omega(t).
UNTUNED_FACTORS: dict[str, Callable[[float], FactorFn]] = {
    "radam": radam_factors,
    "untuned-exponential": lambda b2: exponential_factors(untuned_exponential_period(b2)),
    "untuned-linear": lambda b2: linear_factors(untuned_linear_period(b2)),
}


def effective_warmup_period(
    factors: FactorFn, tol: float = 1e-10, max_steps: int = 10**9
) -> float:
    """T(omega) summed numerically for any schedule given as omega(t): a function of a
    numpy array of iterations (fast), or of one iteration at a time (such as
    `lambda t: min(1, t / 1999)`; evaluated element by element).

    Sums blocks of doubling length and stops once a whole block adds less than
    `tol` (relative to the sum so far, or absolute below 1); omega must approach 1.
    """
    factors = _on_arrays(factors)
    total, start, block = 0.0, 1, 1024
    while start <= max_steps:
        t = np.arange(start, start + block, dtype=np.float64)
        contribution = float(np.sum(1.0 - factors(t)))
        total += contribution
        if abs(contribution) < tol * max(1.0, abs(total)):
            return total
        start, block = start + block, block * 2
    raise ValueError(f"T(omega) did not converge within {max_steps} steps; does omega reach 1?")


def _on_arrays(factors: Callable) -> FactorFn:
    """`factors` itself where it maps an array to an array of the same shape, else the
    function applied element by element."""
    probe = np.arange(1.0, 4.0)
    try:
        result = np.asarray(factors(probe), dtype=np.float64)
        if result.shape == probe.shape:
            return factors
    except (TypeError, ValueError):  # e.g. min(1, t / 1999) on an array is ambiguous
        pass
    return np.vectorize(lambda t: float(factors(float(t))), otypes=[np.float64])


def linear_period_closed_form(period: int) -> float:
    """T of linear(tau) = sum_{t<tau} (1 - t/tau) = (tau - 1) / 2."""
    return (period - 1) / 2


def exponential_period_closed_form(period: float) -> float:
    """T of exponential(tau) = sum_t exp(-t/tau) = 1 / (exp(1/tau) - 1)."""
    return 1.0 / math.expm1(1.0 / period)


def untuned_linear_period_closed_form(beta2: float) -> float:
    """The paper's 1/(1 - beta2) - 1/2 (tau = 2/(1 - beta2) before truncation to an int)."""
    return 1.0 / (1.0 - beta2) - 0.5


def untuned_exponential_period_closed_form(beta2: float) -> float:
    """The paper's 1/(exp(1 - beta2) - 1) (tau = 1/(1 - beta2) before truncation)."""
    return 1.0 / math.expm1(1.0 - beta2)


def beta2_grid(beta2_min: float, beta2_max: float, points: int) -> np.ndarray:
    """beta2 values evenly spaced in log(1 - beta2), from beta2_min to beta2_max."""
    return 1.0 - np.geomspace(1.0 - beta2_min, 1.0 - beta2_max, points)


def period_curves(beta2s: np.ndarray) -> dict[str, np.ndarray]:
    """T(omega) of each untuned schedule (and RAdam's) at every beta2."""
    return {
        name: np.array([effective_warmup_period(factors(float(b))) for b in beta2s])
        for name, factors in UNTUNED_FACTORS.items()
    }


def factor_curves(beta2: float, steps: int) -> dict[str, np.ndarray]:
    """omega_t for t = 1..steps of each untuned schedule (and RAdam's) at one beta2."""
    t = np.arange(1, steps + 1, dtype=np.float64)
    return {name: factors(beta2)(t) for name, factors in UNTUNED_FACTORS.items()}
