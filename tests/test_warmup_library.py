"""Construction errors, the effective warmup period, and the library's independence."""

from __future__ import annotations

import math
import subprocess
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest
import torch

import warmup_bench.warmup as wu


def adam(*beta2s: float) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "betas": (0.9, b)} for b in beta2s]
    return torch.optim.Adam(groups, lr=0.01)


def sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


@pytest.mark.parametrize(
    ("make", "error", "needle"),
    [
        (lambda: wu.LinearWarmup("adam", 10), TypeError, "adam (str) is not an Optimizer."),
        (lambda: wu.RAdamWarmup(None), TypeError, "None"),
        (lambda: wu.LinearWarmup(adam(0.999), 0), ValueError, "a positive integer, but is 0."),
        (lambda: wu.LinearWarmup(adam(0.999), -5), ValueError, "a positive integer, but is -5"),
        (lambda: wu.ExponentialWarmup(adam(0.999), 2.5), TypeError, "2.5"),
        (lambda: wu.LinearWarmup(adam(0.999), True), TypeError, "True"),
        (lambda: wu.LinearWarmup(adam(0.999, 0.99), [10]), ValueError,
         "The size of warmup_period (1) does not match the size of param_groups (2)."),
        (lambda: wu.LinearWarmup(adam(0.999, 0.99), [10, 0]), ValueError,
         "An element in warmup_period must be a positive integer, but is 0."),
        (lambda: wu.UntunedLinearWarmup(sgd()), ValueError, "SGD"),
        (lambda: wu.UntunedExponentialWarmup(sgd()), ValueError, "betas"),
        (lambda: wu.RAdamWarmup(sgd()), ValueError, "SGD"),
        (lambda: wu.UntunedLinearWarmup(adam(1.0)), ValueError, "1.0"),
        (lambda: wu.UntunedExponentialWarmup(adam(1.0)), ValueError, "1.0"),
        (lambda: wu.RAdamWarmup(adam(0.5)), ValueError, "0.5"),
        (lambda: wu.RAdamWarmup(adam(0.6)), ValueError, "0.6"),
    ],
)
def test_bad_input_raises_at_construction_naming_the_value(make, error, needle) -> None:
    with pytest.raises(error) as info:
        make()
    assert needle in str(info.value)


def test_untuned_periods_are_per_group() -> None:
    warm = wu.UntunedLinearWarmup(adam(0.999, 0.99))
    assert [p["warmup_period"] for p in warm.warmup_params] == [1999, 199]  # int() truncation
    warm = wu.UntunedExponentialWarmup(adam(0.999, 0.99))
    assert [p["warmup_period"] for p in warm.warmup_params] == [999, 99]
    # beta2 = 0 is Adam's (and pytorch_warmup's): periods 2 and 1
    assert wu.UntunedLinearWarmup(adam(0.0)).warmup_params == [{"warmup_period": 2}]
    assert wu.UntunedExponentialWarmup(adam(0.0)).warmup_params == [{"warmup_period": 1}]


def test_radam_helpers() -> None:
    assert wu.rho_inf_fn(0.999) == pytest.approx(1999.0)
    # rho_1 = rho_inf - 2 * beta2 / (1 - beta2) = 1 for any beta2
    assert wu.rho_fn(1, 0.999, wu.rho_inf_fn(0.999)) == pytest.approx(1.0)
    assert wu.get_offset(0.999, wu.rho_inf_fn(0.999)) == 5  # delta <= 5 for beta2 > 0.8


def test_first_factor_applied_at_construction() -> None:
    optimizer = adam(0.999)
    wu.LinearWarmup(optimizer, 4)
    assert optimizer.param_groups[0]["lr"] == 0.01 * 0.25


# ---- effective warmup period -------------------------------------------------------


@pytest.mark.parametrize("tau", [1, 7, 1000, 12345])
def test_numeric_period_matches_closed_forms(tau: int) -> None:
    assert wu.effective_warmup_period(wu.linear_factors(tau)) == pytest.approx(
        wu.linear_period_closed_form(tau), rel=1e-12, abs=1e-12)
    assert wu.effective_warmup_period(wu.exponential_factors(tau)) == pytest.approx(
        wu.exponential_period_closed_form(tau), rel=1e-9)


@pytest.mark.parametrize("beta2", [0.99, 0.995, 0.999, 0.9999])
def test_untuned_periods_match_paper_closed_forms(beta2: float) -> None:
    linear = wu.effective_warmup_period(wu.UNTUNED_FACTORS["untuned-linear"](beta2))
    expo = wu.effective_warmup_period(wu.UNTUNED_FACTORS["untuned-exponential"](beta2))
    # exact for the implemented (int-truncated) tau ...
    assert linear == pytest.approx((wu.untuned_linear_period(beta2) - 1) / 2, rel=1e-12)
    assert expo == pytest.approx(
        wu.exponential_period_closed_form(wu.untuned_exponential_period(beta2)), rel=1e-9)
    # ... and within the truncation (tau moves by < 1) of the paper's formulas
    assert abs(linear - wu.untuned_linear_period_closed_form(beta2)) <= 0.5 + 1e-6
    assert abs(expo - wu.untuned_exponential_period_closed_form(beta2)) <= 1.0


def radam_period_decimal(beta2: float, terms: int) -> Decimal:
    """RAdam's T(omega) straight from the definition, in 40-digit decimal arithmetic."""
    getcontext().prec = 40
    b2 = Decimal(repr(beta2))
    r_inf = 2 / (1 - b2) - 1
    rho = lambda t: r_inf - 2 * t * b2**t / (1 - b2**t)  # noqa: E731
    delta = next(t for t in range(1, 100) if rho(t) > 4)
    total = Decimal(0)
    for t in range(1, terms + 1):
        r = rho(t + delta - 1)
        total += 1 - ((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r)).sqrt()
    return total


@pytest.mark.parametrize(("beta2", "terms"), [(0.9, 600), (0.99, 5000), (0.999, 40000)])
def test_radam_period_matches_independent_derivation(beta2: float, terms: int) -> None:
    expected = float(radam_period_decimal(beta2, terms))
    assert wu.effective_warmup_period(wu.radam_factors(beta2)) == pytest.approx(expected, rel=1e-9)


def test_radam_period_close_to_untuned_over_the_paper_range() -> None:
    """Ma & Yarats: RAdam's effective period is roughly that of the untuned schedules."""
    beta2s = wu.beta2_grid(0.99, 0.9999, 7)
    periods = wu.period_curves(beta2s)
    ratio = periods["radam"] / periods["untuned-exponential"]
    assert np.all((ratio > 1.0) & (ratio < 1.05)), ratio
    assert beta2s[0] == pytest.approx(0.99) and beta2s[-1] == pytest.approx(0.9999)


def test_period_that_never_converges_is_an_error() -> None:
    with pytest.raises(ValueError, match="did not converge"):
        wu.effective_warmup_period(lambda t: np.full_like(t, 0.5), max_steps=10**6)


def test_vectorised_factors_equal_the_classes() -> None:
    optimizer = adam(0.999)
    t = np.arange(1, 3001, dtype=np.float64)
    for name, cls in [("radam", wu.RAdamWarmup), ("untuned-linear", wu.UntunedLinearWarmup),
                      ("untuned-exponential", wu.UntunedExponentialWarmup)]:
        warm = cls(optimizer)
        scalar = [warm.warmup_factor(int(s) - 1, **warm.warmup_params[0]) for s in t]
        # numpy pow differs from CPython pow by ulps that rho_t amplifies; the classes
        # (which set LRs) are the bit-exact path, this one only feeds sums and plots.
        np.testing.assert_allclose(wu.UNTUNED_FACTORS[name](0.999)(t), scalar, rtol=1e-10)
        assert math.isclose(scalar[0], wu.factor_curves(0.999, 1)[name][0], rel_tol=1e-10)


def test_library_never_imports_pytorch_warmup() -> None:
    code = ("import sys, warmup_bench.warmup, warmup_bench.cli; "
            "assert 'pytorch_warmup' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    package = Path(wu.__file__).parents[1]
    for source in package.rglob("*.py"):
        assert "import pytorch_warmup" not in source.read_text(), source
        assert "from pytorch_warmup" not in source.read_text(), source
