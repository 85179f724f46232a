"""Bit-for-bit LR parity with the pytorch-warmup 0.2.0 package (a test-only oracle)."""

from __future__ import annotations

import io

import pytest
import torch
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    ExponentialLR,
    MultiStepLR,
    StepLR,
)

import warmup_bench.warmup as ours

oracle = pytest.importorskip("pytorch_warmup")

STEPS = 6000
ITERS_PER_EPOCH = 100
GROUPS = [  # several groups with different LRs and betas
    {"lr": 0.1, "betas": (0.9, 0.999)},
    {"lr": 0.01, "betas": (0.9, 0.99)},
    {"lr": 3e-3, "betas": (0.8, 0.9995)},
]

WARMUPS = {  # name -> (ours factory, oracle factory)
    "linear": (lambda o: ours.LinearWarmup(o, 1000), lambda o: oracle.LinearWarmup(o, 1000)),
    "linear-per-group": (lambda o: ours.LinearWarmup(o, [500, 1000, 2500]),
                         lambda o: oracle.LinearWarmup(o, [500, 1000, 2500])),
    "exponential": (lambda o: ours.ExponentialWarmup(o, 700),
                    lambda o: oracle.ExponentialWarmup(o, 700)),
    "exponential-per-group": (lambda o: ours.ExponentialWarmup(o, [300, 700, 1500]),
                              lambda o: oracle.ExponentialWarmup(o, [300, 700, 1500])),
    "untuned-linear": (ours.UntunedLinearWarmup, oracle.UntunedLinearWarmup),
    "untuned-exponential": (ours.UntunedExponentialWarmup, oracle.UntunedExponentialWarmup),
    "radam": (ours.RAdamWarmup, oracle.RAdamWarmup),
}


def make_optimizer() -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], **g} for g in GROUPS]
    return torch.optim.AdamW(groups, weight_decay=0.0)


class Schedule:
    """One LR-scheduling scenario: builds its schedulers and steps them per iteration."""

    def __init__(self, name: str, optimizer: torch.optim.Optimizer):
        self.name = name
        self.schedulers = {
            "none": lambda: [],
            "multistep": lambda: [MultiStepLR(optimizer, milestones=[1500, 3500], gamma=0.1)],
            "cosine": lambda: [CosineAnnealingLR(optimizer, T_max=STEPS, eta_min=1e-5)],
            "chain": lambda: [ExponentialLR(optimizer, gamma=0.9995),
                              StepLR(optimizer, step_size=1000, gamma=0.5)],
            "epoch": lambda: [StepLR(optimizer, step_size=5, gamma=0.7)],
            "delayed": lambda: [CosineAnnealingLR(optimizer, T_max=STEPS - 2000, eta_min=0.0)],
        }[name]()

    def step(self, warmup, iteration: int) -> None:
        """Called after optimizer.step() of 0-based `iteration`, inside no context."""
        with warmup.dampening():
            if self.name == "epoch" and (iteration + 1) % ITERS_PER_EPOCH != 0:
                return
            if self.name == "delayed" and warmup.last_step + 1 < 2000:
                return
            for scheduler in self.schedulers:
                scheduler.step()


SCHEDULES = ["none", "multistep", "cosine", "chain", "epoch", "delayed"]


def lr_trajectory(warmup_factory, schedule_name: str, steps: int = STEPS) -> list[list[float]]:
    optimizer = make_optimizer()
    schedule = Schedule(schedule_name, optimizer)
    warmup = warmup_factory(optimizer)
    lrs = []
    for iteration in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step(warmup, iteration)
    return lrs


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("warmup", list(WARMUPS))
def test_same_lr_as_oracle_every_step(warmup: str, schedule: str) -> None:
    ours_factory, oracle_factory = WARMUPS[warmup]
    expected = lr_trajectory(oracle_factory, schedule)
    actual = lr_trajectory(ours_factory, schedule)
    assert len(actual) == STEPS
    for step, (a, e) in enumerate(zip(actual, expected)):
        assert a == e, f"step {step}: {a} != {e}"  # exact float equality, every group
    # the scenario really exercised the warmup: the first LR is dampened, later ones not
    assert actual[0][0] < GROUPS[0]["lr"]


@pytest.mark.parametrize("warmup", list(WARMUPS))
@pytest.mark.parametrize("schedule", ["cosine", "epoch"])
def test_state_dict_mid_warmup_resumes_identically(warmup: str, schedule: str) -> None:
    factory, _ = WARMUPS[warmup]
    expected = lr_trajectory(factory, schedule)
    split = 777  # inside every warmup period above

    optimizer = make_optimizer()
    scheduler = Schedule(schedule, optimizer)
    warm = factory(optimizer)
    for iteration in range(split):
        optimizer.step()
        scheduler.step(warm, iteration)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(),
                "schedulers": [s.state_dict() for s in scheduler.schedulers],
                "warmup": warm.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh = make_optimizer()
    fresh_schedule = Schedule(schedule, fresh)
    fresh_warmup = factory(fresh)  # dampens the fresh LRs for step 0 ...
    fresh.load_state_dict(state["optimizer"])  # ... which the loaded state then replaces
    for s, s_state in zip(fresh_schedule.schedulers, state["schedulers"]):
        s.load_state_dict(s_state)
    fresh_warmup.load_state_dict(state["warmup"])
    assert fresh_warmup.last_step == split
    resumed = []
    for iteration in range(split, STEPS):
        resumed.append([group["lr"] for group in fresh.param_groups])
        fresh.step()
        fresh_schedule.step(fresh_warmup, iteration)
    assert resumed == expected[split:]


def test_load_state_dict_before_optimizer_state_gives_same_lr() -> None:
    """Our load re-dampens, so loading order does not matter (oracle needs optimizer first)."""
    optimizer = make_optimizer()
    warm = ours.UntunedLinearWarmup(optimizer)
    for _ in range(50):
        with warm.dampening():
            pass
    saved_lrs = [g["lr"] for g in optimizer.param_groups]
    fresh = make_optimizer()
    fresh_warmup = ours.UntunedLinearWarmup(fresh)
    fresh_warmup.load_state_dict(warm.state_dict())
    assert [g["lr"] for g in fresh.param_groups] == saved_lrs


def test_tensor_lrs_updated_in_place_and_match_float_lrs() -> None:
    def run(lr_of):
        groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr_of(g["lr"]),
                   "betas": g["betas"]} for g in GROUPS]
        optimizer = torch.optim.Adam(groups)
        scheduler = MultiStepLR(optimizer, milestones=[300], gamma=0.1)
        tensors = [g["lr"] for g in optimizer.param_groups]
        warm = ours.RAdamWarmup(optimizer)
        lrs = []
        for _ in range(600):
            lrs.append([float(g["lr"]) for g in optimizer.param_groups])
            optimizer.step()
            with warm.dampening():
                scheduler.step()
        return lrs, tensors, optimizer

    float_lrs, _, _ = run(float)
    tensor_lrs, tensors, optimizer = run(lambda x: torch.tensor(x, dtype=torch.float64))
    assert all(g["lr"] is t for g, t in zip(optimizer.param_groups, tensors))
    assert tensor_lrs == float_lrs  # float64 tensors: the same IEEE arithmetic


# ---- property-based: any groups, LRs, betas and periods -------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

group_strategy = st.fixed_dictionaries({
    "lr": st.floats(1e-6, 1.0, allow_nan=False),
    "beta2": st.floats(0.61, 0.99995, allow_nan=False),
    "period": st.integers(1, 400),
})
KINDS = ["linear", "exponential", "untuned-linear", "untuned-exponential", "radam"]


def build_pair(kind: str, groups: list[dict]):
    def make(module):
        optimizer = torch.optim.Adam(
            [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g["lr"],
              "betas": (0.9, g["beta2"])} for g in groups])
        periods = [g["period"] for g in groups]
        warmup = {
            "linear": lambda: module.LinearWarmup(optimizer, periods),
            "exponential": lambda: module.ExponentialWarmup(optimizer, periods),
            "untuned-linear": lambda: module.UntunedLinearWarmup(optimizer),
            "untuned-exponential": lambda: module.UntunedExponentialWarmup(optimizer),
            "radam": lambda: module.RAdamWarmup(optimizer),
        }[kind]()
        return optimizer, warmup
    return make(ours), make(oracle)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(KINDS), groups=st.lists(group_strategy, min_size=1, max_size=3),
       gamma=st.floats(0.5, 1.0))
def test_any_configuration_matches_oracle(kind, groups, gamma) -> None:
    (opt_a, warm_a), (opt_b, warm_b) = build_pair(kind, groups)
    sched_a = ExponentialLR(opt_a, gamma=gamma)
    sched_b = ExponentialLR(opt_b, gamma=gamma)
    for _ in range(300):
        assert [g["lr"] for g in opt_a.param_groups] == [g["lr"] for g in opt_b.param_groups]
        opt_a.step()
        opt_b.step()
        with warm_a.dampening():
            sched_a.step()
        with warm_b.dampening():
            sched_b.step()


# ---- the LRScheduler wrapper: what a framework calling .step() gets -----------------


def wrapper_trajectory(warmup_factory, schedule_name: str) -> list[list[float]]:
    """The same scenario driven the way Lightning or the HF Trainer drive a scheduler: one
    `.step()` after every optimizer step, nothing else."""
    optimizer = make_optimizer()
    inner = Schedule(schedule_name, optimizer).schedulers
    scheduler = inner[0] if len(inner) == 1 else ChainedScheduler(inner) if inner else None
    wrapper = ours.WarmupScheduler(
        warmup_factory(optimizer), scheduler,
        scheduler_every=ITERS_PER_EPOCH if schedule_name == "epoch" else 1,
        scheduler_delay=2000 if schedule_name == "delayed" else 0)
    lrs = []
    for _ in range(STEPS):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        assert wrapper.get_last_lr() == lrs[-1]  # what the next optimizer.step() applies
        optimizer.step()
        wrapper.step()
    return lrs


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("warmup", list(WARMUPS))
def test_wrapper_gives_the_oracle_protocol_lr_every_step(warmup: str, schedule: str) -> None:
    ours_factory, oracle_factory = WARMUPS[warmup]
    expected = lr_trajectory(oracle_factory, schedule)  # pytorch_warmup's dampening()
    actual = wrapper_trajectory(ours_factory, schedule)
    for step, (a, e) in enumerate(zip(actual, expected)):
        assert a == e, f"step {step}: {a} != {e}"
    assert len(actual) == STEPS and actual[0][0] < GROUPS[0]["lr"]
