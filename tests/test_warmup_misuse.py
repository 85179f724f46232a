"""Misuse of the warmups and of WarmupScheduler is refused (or warned about) with the
reason, and the legitimate uses next to each misuse stay silent."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from protocol import protocol_lrs
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, ReduceLROnPlateau

import warmup_bench.warmup as wu

STEPS = 300


def adam(lr: float = 0.01, beta2: float = 0.99) -> torch.optim.Optimizer:
    return torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=lr, betas=(0.9, beta2))


def cosine_setup(lr: float = 0.01):
    optimizer = adam(lr)
    scheduler = CosineAnnealingLR(optimizer, T_max=STEPS, eta_min=1e-4)
    return optimizer, scheduler, wu.UntunedLinearWarmup(optimizer)  # period 199


class FactorWarmup(wu.BaseWarmup):
    """A plugin-style warmup whose factor at step index `bad_step` is `bad`."""

    def __init__(self, optimizer, bad, bad_step: int = 2):
        self.bad, self.bad_step = bad, bad_step
        super().__init__(optimizer, [{} for _ in optimizer.param_groups])

    def warmup_factor(self, step: int) -> float:
        return self.bad if step == self.bad_step else 0.5


def silent_loop(optimizer, wrapper, steps: int) -> list[float]:
    """The framework loop (optimizer.step, then scheduler.step): the LRs it applies."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        wrapper.step()
    return lrs


# ---- 1. a param group added after the warmup ---------------------------------------


def test_param_group_added_after_the_warmup_is_refused() -> None:
    optimizer = adam()
    wrapper = wu.WarmupScheduler(wu.LinearWarmup(optimizer, 10))
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    optimizer.step()
    with pytest.raises(ValueError, match="gained a param group after the warmup was created") \
            as info:
        wrapper.step()
    assert "after all param groups are added" in str(info.value)

    warmup = wu.LinearWarmup(optimizer := adam(), 10)
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    with pytest.raises(ValueError, match="gained a param group"):
        with warmup.dampening():
            pass
    with pytest.raises(ValueError, match="gained a param group"):
        warmup.dampen()


# ---- 2. the warmup stepped twice ---------------------------------------------------


def test_second_wrapper_over_one_warmup_is_refused() -> None:
    warmup = wu.LinearWarmup(adam(), 10)
    wu.WarmupScheduler(warmup)
    with pytest.raises(ValueError, match="already has a WarmupScheduler"):
        wu.WarmupScheduler(warmup)


def test_wrapper_mixed_with_manual_dampening_is_refused() -> None:
    optimizer = adam()
    warmup = wu.LinearWarmup(optimizer, 10)
    wrapper = wu.WarmupScheduler(warmup)
    optimizer.step()
    wrapper.step()  # step index 1
    with warmup.dampening():  # a second stepper: step index 2
        pass
    with pytest.raises(RuntimeError) as info:
        wrapper.step()
    message = str(info.value)
    assert "step index 2" in message and "left it at 1" in message
    assert "only through the WarmupScheduler" in message


def test_loading_the_warmup_directly_is_no_foreign_step() -> None:
    """The training loop restores the inner scheduler and the warmup one by one."""
    optimizer, scheduler, warmup = cosine_setup()
    wrapper = wu.WarmupScheduler(warmup, scheduler)
    silent_loop(optimizer, wrapper, 50)
    saved = {"scheduler": scheduler.state_dict(), "warmup": warmup.state_dict()}
    expected = silent_loop(optimizer, wrapper, 20)

    optimizer, scheduler, warmup = cosine_setup(lr=0.5)
    wrapper = wu.WarmupScheduler(warmup, scheduler)
    scheduler.load_state_dict(saved["scheduler"])
    warmup.load_state_dict(saved["warmup"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert silent_loop(optimizer, wrapper, 20) == expected


# ---- 3. load_state_dict with other periods: loaded, as pytorch_warmup loads them ------


def linear_lrs(period: int, first: int, then: int, load_into: int | None = None):
    """LinearWarmup(period) over Adam without a scheduler: the LRs of `then` iterations
    after `first`, going on in the same warmup, or in a LinearWarmup(load_into) over a
    fresh optimizer loaded with the state saved after `first`."""
    optimizer = adam(lr=0.5)
    warmup = wu.LinearWarmup(optimizer, period)
    wrapper = wu.WarmupScheduler(warmup)
    silent_loop(optimizer, wrapper, first)
    if load_into is not None:
        saved = wrapper.state_dict()
        optimizer = adam(lr=0.5)
        wrapper = wu.WarmupScheduler(wu.LinearWarmup(optimizer, load_into))
        with pytest.warns(UserWarning) as caught:
            wrapper.load_state_dict(saved)
        assert [str(w.message) for w in caught] == [
            f"LinearWarmup.load_state_dict: the saved warmup_period {period} replaces "
            f"{load_into} (param group 0)"]
        assert wrapper.warmup.warmup_params == [{"warmup_period": period}]
    return silent_loop(optimizer, wrapper, then)


def test_a_state_saved_with_another_period_loads_and_goes_on_with_it() -> None:
    """pytorch_warmup restores a saved state periods included: so does this library, and
    says which period replaced the constructed one."""
    assert linear_lrs(199, 50, 200, load_into=999) == linear_lrs(199, 50, 200)
    saved = wu.UntunedLinearWarmup(adam(beta2=0.999)).state_dict()  # period 1999
    warmup = wu.LinearWarmup(optimizer := adam(), 999)
    with pytest.warns(UserWarning, match="saved warmup_period 1999 replaces 999"):
        warmup.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == 0.01 / 1999  # the saved warmup's first LR
    radam = wu.RAdamWarmup(adam(beta2=0.99))
    with pytest.warns(UserWarning, match="saved warmup params .*'beta2': 0.999.* replace"):
        radam.load_state_dict(wu.RAdamWarmup(adam(beta2=0.999)).state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same period: silent
        wu.LinearWarmup(adam(), 1999).load_state_dict(saved)


def test_loading_another_number_of_groups_or_kind_of_warmup_is_refused() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(2)]
    saved = wu.LinearWarmup(torch.optim.Adam(groups, lr=0.1), 10).state_dict()
    optimizer = adam()
    warmup = wu.LinearWarmup(optimizer, 10)
    lr = optimizer.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="saved state has 2 param groups, this warmup 1"):
        warmup.load_state_dict(saved)
    with pytest.raises(ValueError, match="another kind of warmup: its params .*'rho_inf'"):
        warmup.load_state_dict(wu.RAdamWarmup(adam(beta2=0.999)).state_dict())
    assert warmup.warmup_params == [{"warmup_period": 10}]
    assert optimizer.param_groups[0]["lr"] == lr  # nothing changed

    optimizer, scheduler, warmup = cosine_setup()
    wrapper = wu.WarmupScheduler(warmup, scheduler)
    before = scheduler.state_dict()
    other = wu.WarmupScheduler(wu.RAdamWarmup(adam()))
    with pytest.raises(ValueError, match="another kind of warmup"):
        wrapper.load_state_dict({**other.state_dict(), "scheduler": before})
    assert scheduler.state_dict() == before  # checked before the scheduler was loaded


def test_a_warmup_scheduler_around_another_is_refused() -> None:
    optimizer, scheduler, warmup = cosine_setup()
    inner = wu.WarmupScheduler(warmup, scheduler)
    with pytest.raises(TypeError, match="itself a WarmupScheduler: .*double warmup"):
        wu.WarmupScheduler(wu.LinearWarmup(optimizer, 10), inner)


# ---- 4. stepped before optimizer.step() --------------------------------------------


@pytest.mark.parametrize("inner", [False, True])
def test_step_before_optimizer_step_warns_once(inner: bool) -> None:
    optimizer, scheduler, warmup = cosine_setup()
    wrapper = wu.WarmupScheduler(warmup, scheduler if inner else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapper.step()
        optimizer.step()
        wrapper.step()
        wrapper.step()
    assert [str(w.message)[:60] for w in caught] == [
        "WarmupScheduler.step() was called before optimizer.step(): t"]  # torch's not repeated
    assert caught[0].category is UserWarning and caught[0].filename == __file__
    assert "first LR of the schedule" in str(caught[0].message)
    assert "is skipped" in str(caught[0].message)


# ---- 5. what is not a WarmupScheduler's state or an LRScheduler ----------------------


def test_plain_scheduler_state_is_refused_naming_the_keys() -> None:
    optimizer, scheduler, warmup = cosine_setup()
    wrapper = wu.WarmupScheduler(warmup)
    with pytest.raises(ValueError, match="not a WarmupScheduler state dict") as info:
        wrapper.load_state_dict(scheduler.state_dict())
    assert "'scheduler'" in str(info.value) and "'T_max'" in str(info.value)
    with pytest.raises(ValueError, match="not a warmup state dict"):
        warmup.load_state_dict(scheduler.state_dict())


@pytest.mark.parametrize("thing", ["optimizer", "lambda"])
def test_not_an_lr_scheduler_is_a_type_error(thing: str) -> None:
    optimizer = adam()
    given = optimizer if thing == "optimizer" else (lambda step: 1.0)
    warmup = wu.LinearWarmup(optimizer, 10)
    with pytest.raises(TypeError, match=r"expects a torch\.optim\.lr_scheduler\.LRScheduler") \
            as info:
        wu.WarmupScheduler(warmup, given)
    assert type(given).__name__ in str(info.value)


def test_reduce_lr_on_plateau_is_refused_with_the_alternative() -> None:
    optimizer = adam()
    plateau = ReduceLROnPlateau(optimizer)
    warmup = wu.LinearWarmup(optimizer, 10)
    with pytest.raises(TypeError, match=r"steps on a metric \(step\(metrics\)\)") as info:
        wu.WarmupScheduler(warmup, plateau)
    assert "with warmup.dampening():" in str(info.value)
    wu.WarmupScheduler(warmup)  # the refused wrapper did not claim the warmup


# ---- 6. warmup factors outside [0, 1] -----------------------------------------------


@pytest.mark.parametrize("bad", [-0.5, 1.5, math.nan, math.inf, "0.5", torch.tensor(0.5),
                                 True, None])
def test_bad_factor_is_refused_before_it_reaches_the_optimizer(bad) -> None:
    optimizer = adam(lr=0.1)
    warmup = FactorWarmup(optimizer, bad)
    wrapper = wu.WarmupScheduler(warmup)
    silent_loop(optimizer, wrapper, 1)  # step index 1
    optimizer.step()
    with pytest.raises(ValueError) as info:
        wrapper.step()  # step index 2
    message = str(info.value)
    assert message.startswith(f"FactorWarmup.warmup_factor returned {bad!r}")
    assert "at iteration 3 (step index 2, param group 0)" in message
    assert message.endswith("a warmup factor must be a finite number in [0, 1].")
    assert optimizer.param_groups[0]["lr"] == 0.1  # undampened, not multiplied by `bad`


def test_factor_noise_above_one_and_the_bounds_are_accepted() -> None:
    for factor in (0.0, 1.0, 1.0 + 1e-13):
        FactorWarmup(adam(), factor, bad_step=0)
    with pytest.raises(ValueError, match="returned 1.000001"):
        FactorWarmup(adam(), 1.000001, bad_step=0)


def test_exception_of_warmup_factor_propagates_unchanged() -> None:
    class Broken(FactorWarmup):
        def warmup_factor(self, step: int) -> float:
            raise ZeroDivisionError("plugin bug")

    with pytest.raises(ZeroDivisionError, match="plugin bug"):
        Broken(adam(), 0.5)


def test_bad_factor_is_not_blamed_on_the_creation_order() -> None:
    optimizer = adam()
    scheduler = LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(ValueError, match="warmup_factor returned -1"):
        FactorWarmup(optimizer, -1.0, bad_step=0)  # caught where the warmup is created
    warmup = FactorWarmup(optimizer, 0.5, bad_step=0)
    warmup.bad = -1.0  # a factor that changes after creation: still named as the factor
    with pytest.raises(ValueError, match="warmup_factor returned -1.0") as info:
        wu.WarmupScheduler(warmup, scheduler)
    assert "create the LR scheduler" not in str(info.value)


# ---- the legitimate uses: no error, no warning -------------------------------------


def reference_lrs() -> list[float]:
    return protocol_lrs(*cosine_setup(), STEPS)


def test_framework_loop_is_silent_and_gives_the_protocol_lrs() -> None:
    expected = reference_lrs()
    optimizer, scheduler, warmup = cosine_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapper = wu.WarmupScheduler(warmup, scheduler)
        assert silent_loop(optimizer, wrapper, STEPS) == expected


def test_state_round_trip_mid_warmup_is_silent() -> None:
    expected = reference_lrs()
    optimizer, scheduler, warmup = cosine_setup()
    wrapper = wu.WarmupScheduler(warmup, scheduler)
    silent_loop(optimizer, wrapper, 100)
    saved = {"optimizer": optimizer.state_dict(), "lr": wrapper.state_dict()}

    optimizer, scheduler, warmup = cosine_setup(lr=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = wu.WarmupScheduler(warmup, scheduler)
        optimizer.load_state_dict(saved["optimizer"])
        resumed.load_state_dict(saved["lr"])
        assert silent_loop(optimizer, resumed, STEPS - 100) == expected[100:]


def test_wrapper_without_a_scheduler_is_silent() -> None:
    optimizer = adam(lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapper = wu.WarmupScheduler(wu.LinearWarmup(optimizer, 4))
        lrs = silent_loop(optimizer, wrapper, 6)
    assert lrs == [0.1 * min(1.0, t / 4) for t in range(1, 7)]
