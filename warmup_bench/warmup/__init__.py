"""Warmup schedules with the semantics of the pytorch_warmup package (never imported here)."""

from .base import BaseWarmup, ExponentialWarmup, LinearWarmup, NoWarmup
from .period import (
    UNTUNED_FACTORS,
    beta2_grid,
    effective_warmup_period,
    exponential_factors,
    exponential_period_closed_form,
    factor_curves,
    linear_factors,
    linear_period_closed_form,
    period_curves,
    radam_factors,
    untuned_exponential_period_closed_form,
    untuned_linear_period_closed_form,
)
from .radam import MIN_BETA2, RAdamWarmup, get_offset, rho_fn, rho_inf_fn
from .scheduler import WarmupScheduler
from .untuned import (
    UntunedExponentialWarmup,
    UntunedLinearWarmup,
    untuned_exponential_period,
    untuned_linear_period,
)

__all__ = [
    "BaseWarmup", "WarmupScheduler", "NoWarmup", "LinearWarmup", "ExponentialWarmup",
    "UntunedLinearWarmup",
    "UntunedExponentialWarmup", "RAdamWarmup", "MIN_BETA2", "rho_inf_fn", "rho_fn",
    "get_offset", "untuned_linear_period", "untuned_exponential_period",
    "effective_warmup_period", "linear_factors", "exponential_factors", "radam_factors",
    "UNTUNED_FACTORS", "beta2_grid", "period_curves", "factor_curves",
    "linear_period_closed_form", "exponential_period_closed_form",
    "untuned_linear_period_closed_form", "untuned_exponential_period_closed_form",
]
