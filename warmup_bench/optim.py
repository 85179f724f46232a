"""Registries of optimizers and warmups (the LR schedules': schedules.py): a name maps to
an entry that builds the object and states its own rules (what it needs, how the papers
label it).

Adding an optimizer, warmup or schedule is one entry here: the CLI, `list`, config
validation (tasks.validate calls each entry's `check`) and the report's labels all read
these entries.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.optim import lr_scheduler

from . import warmup as wu
from .config import CONDITIONAL, FEEDS, OPEN_UNIT, ConfigError, Range, TrainConfig, option
from .gi_adam import GIAdamW
from .registry import Registry, expect_result
from .schedules import SCHEDULES, ScheduleEntry  # noqa: F401  (optim.SCHEDULES, as before)


@dataclass(frozen=True)
class OptimizerEntry:
    description: str
    label: str  # the papers' name ("AdamW")
    factory: type[torch.optim.Optimizer]
    options: dict = field(default_factory=dict)  # fixed extra keyword arguments
    # the keyword arguments its factory takes, which decide the settings it reads (those
    # that feed one of them: config.Setting.feeds); None: its signature's
    keywords: frozenset[str] | None = None
    # schedule-free (Defazio et al. 2024): trains at an interpolation y, evaluates at the
    # averaged weights x; the loop switches it with optimizer.train() / optimizer.eval()
    schedule_free: bool = False
    rectified: bool = False  # applies RAdam's rectification itself
    # pass foreach=True: torch's multi-tensor implementation, its default on CUDA already;
    # on CPU far fewer dispatches (docs/cpu-speed.md measures it) and, for
    # these entries, the same floats as its per-parameter loop (tested). Not for NAdam and
    # RAdam, whose multi-tensor versions round differently (1 ulp), nor plugins' optimizers
    foreach: bool = True
    # foreach=True on GPUs even so (NAdam, RAdam): there it is torch's default, and the
    # per-parameter loop would launch several kernels per parameter per step
    foreach_on_gpu: bool = False
    # torch has a fused (one kernel, one pass over memory) step for it: `build(fused=True)`
    # takes it. The same update, rounded differently in the last bits
    fused: bool = False
    # settings whose values it takes only within a narrower range than their own
    ranges: dict[str, Range] = field(default_factory=dict)

    @functools.cached_property
    def takes(self) -> frozenset[str]:
        """The keyword arguments its factory takes: `keywords`, else its signature's."""
        return self.keywords if self.keywords is not None else factory_keywords(self.factory)

    @property
    def has_betas(self) -> bool:
        return "betas" in self.takes

    @property
    def reads(self) -> tuple[str, ...]:
        """The conditional settings it reads (tasks.check_unread refuses the others):
        those feeding a keyword its factory takes and its `options` do not fix."""
        return tuple(name for name, (keyword, _) in FEEDS.items() if name in CONDITIONAL
                     and keyword in self.takes and keyword not in self.options)

    def settings(self, cfg: TrainConfig) -> dict:
        """The keyword arguments the settings feed it: every unconditional one, and the
        conditional ones it reads (a tuple keyword assembled from its items in order)."""
        reads, values, items = set(self.reads), {}, {}
        for name, (keyword, position) in FEEDS.items():
            if name in CONDITIONAL and name not in reads:
                continue
            if position is None:
                values[keyword] = getattr(cfg, name)
            else:
                items.setdefault(keyword, {})[position] = getattr(cfg, name)
        return values | {k: tuple(v[i] for i in sorted(v)) for k, v in items.items()}

    def check(self, cfg: TrainConfig) -> None:
        """The rules this optimizer states about a config: the ranges it accepts; a
        schedule-free one needs its package, and replaces the LR schedule (constant
        only)."""
        check_ranges(f"--opt {cfg.opt}", self.ranges, cfg)
        if self.schedule_free:
            _schedulefree()
            if cfg.schedule != "constant":
                raise ConfigError(f"--opt {cfg.opt} is schedule-free: it replaces the LR "
                                  f"schedule, so it takes --schedule constant, not "
                                  f"{cfg.schedule} (warmups apply as usual).")

    def kernel(self, device: torch.device, fused: bool = False) -> dict:
        """The keyword that picks the optimizer's implementation on `device`: its fused
        step where asked for and it has one, else the multi-tensor one where it takes it."""
        if fused and self.fused:
            return {"fused": True}
        if self.foreach or self.foreach_on_gpu and device.type != "cpu":
            return {"foreach": True}
        return {}

    def build(self, params, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
        params = list(params)
        first = params[0] if params else torch.zeros(0)
        device = (first["params"][0] if isinstance(first, dict) else first).device
        return expect_result(self.factory(params, **(self.settings(cfg) |
                                                     self.kernel(device, fused) | self.options)),
                             torch.optim.Optimizer, "torch.optim.Optimizer",
                             f"the factory of optimizer {cfg.opt!r}", self.factory)


def factory_keywords(factory: Callable) -> frozenset[str]:
    """The keyword arguments an optimizer factory takes, read from its signature; one
    taking **kwargs (or without a signature to read) is taken to be Adam-style."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin)
        parameters = ()
    if not parameters or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return frozenset({"lr", "weight_decay", "betas", "eps"})
    return frozenset(p.name for p in parameters)


def check_ranges(entry: str, ranges: dict[str, Range], cfg: TrainConfig) -> None:
    """ConfigError for a setting outside the range `entry` ("--opt sgd") accepts."""
    for key, accepted in ranges.items():
        value = getattr(cfg, key)
        if value is not None and value not in accepted:
            raise ConfigError(f"{option(key)} {value} is outside {accepted}, the range {entry} "
                              "accepts.")


def _schedulefree():
    """The optional schedulefree package; ConfigError naming the extra without it."""
    try:
        import schedulefree
    except ImportError:
        raise ConfigError("the schedule-free optimizers need the schedulefree package: pip "
                          "install 'warmup-bench[schedulefree]'.") from None
    return schedulefree


def _from_schedulefree(name: str) -> Callable[..., torch.optim.Optimizer]:
    """A factory of schedulefree's optimizer `name`. Its own warmup_steps stays 0: our
    warmup dampens the LR it reads, the same arithmetic (linear over tau is exactly its
    warmup_steps = tau, and the averaging weights follow the dampened LR as with it)."""
    def build(params, **settings):
        return getattr(_schedulefree(), name)(params, warmup_steps=0, **settings)
    build.__name__ = name
    return build


def optimizer_kernel(optimizer: torch.optim.Optimizer) -> str:
    """How `optimizer` steps: "fused", "foreach" (multi-tensor) or "for-loop"."""
    return "fused" if optimizer.defaults.get("fused") else \
        "foreach" if optimizer.defaults.get("foreach") else "for-loop"


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer", "--opt", {
    "sgd": OptimizerEntry("SGD with momentum (--momentum, 0.9), L2 weight decay", "SGD",
                          torch.optim.SGD, fused=True),
    "adam": OptimizerEntry("Adam, L2 weight decay", "Adam", torch.optim.Adam, fused=True),
    "adamw": OptimizerEntry("AdamW (decoupled weight decay)", "AdamW", torch.optim.AdamW,
                            fused=True),
    "amsgradw": OptimizerEntry("AdamW with AMSGrad", "AMSGradW", torch.optim.AdamW,
                               {"amsgrad": True}, fused=True),
    "nadamw": OptimizerEntry("NAdam with decoupled weight decay", "NAdamW", torch.optim.NAdam,
                             {"decoupled_weight_decay": True}, foreach=False,
                             foreach_on_gpu=True),
    "adamax": OptimizerEntry("AdaMax, L2 weight decay", "AdaMax", torch.optim.Adamax),
    "radamw": OptimizerEntry("RAdam with decoupled weight decay", "RAdamW", torch.optim.RAdam,
                             {"decoupled_weight_decay": True}, rectified=True,
                             foreach=False, foreach_on_gpu=True),
    "radam": OptimizerEntry("RAdam, L2 weight decay", "RAdam", torch.optim.RAdam,
                            rectified=True, foreach=False, foreach_on_gpu=True),
    "gi-adamw": OptimizerEntry("GI-Adam: AdamW with v_0 = g_1^2 (Kalra & Barkeshli 2024)",
                               "GI-AdamW", GIAdamW, fused=True),
    "adamw-schedule-free": OptimizerEntry(
        "schedule-free AdamW (Defazio et al. 2024): evaluates the averaged weights",
        "SF-AdamW", _from_schedulefree("AdamWScheduleFree"), foreach=False,
        keywords=frozenset({"lr", "weight_decay", "betas", "eps"}),  # schedulefree's
        schedule_free=True, ranges={"beta1": OPEN_UNIT}),  # it divides by beta1
    "sgd-schedule-free": OptimizerEntry(
        "schedule-free SGD with momentum (--momentum; Defazio et al. 2024)", "SF-SGD",
        _from_schedulefree("SGDScheduleFree"), foreach=False,
        keywords=frozenset({"lr", "weight_decay", "momentum"}),  # schedulefree's
        schedule_free=True, ranges={"momentum": OPEN_UNIT}),
})


@dataclass(frozen=True)
class WarmupEntry:
    description: str
    label: str  # the papers' table name: "Linear" (untuned), "Linear-10k" adds the period
    title: str  # a legend's name: "untuned linear"
    build: Callable[..., wu.BaseWarmup]  # (optimizer, *, period)
    # iterations until omega reaches (about) 1: what --delay-schedule waits
    length: Callable[[TrainConfig], int]
    needs_period: bool = False
    needs_betas: bool = False
    min_beta2: float | None = None  # exclusive lower bound on beta2, where there is one
    lasts: bool = True  # it has a length, for --delay-schedule to wait (not "none")
    colour: str | None = None  # its lines' colour in every figure (None: matplotlib's next)
    # omega(t) on arrays of iterations, for a config: what its effective period
    # T(omega) = sum_t (1 - omega_t) is summed from (None: unknown, a plugin's)
    factors: Callable[[TrainConfig], Callable] | None = None

    def effective_period(self, cfg: TrainConfig) -> float | None:
        """T(omega) of this warmup under `cfg` (Ma & Yarats' measure of how long a warmup
        is: 98.5 iterations for the untuned exponential one at beta2 0.99, 99.0 for the
        untuned linear one, 102.9 for RAdam's), or None where its omega is not known."""
        return None if self.factors is None else \
            wu.effective_warmup_period(self.factors(cfg))

    @property
    def reads(self) -> tuple[str, ...]:
        """The conditional settings it reads (tasks.check_unread refuses the others)."""
        return ("warmup_period",) * self.needs_period + ("beta2",) * self.needs_betas

    def check(self, cfg: TrainConfig) -> None:
        """What this warmup needs: a period, an optimizer with beta2, a large beta2."""
        if self.needs_period and cfg.warmup_period is None:
            raise ConfigError(f"--warmup {cfg.warmup} needs --warmup-period (a positive int).")
        if self.needs_betas and not OPTIMIZERS[cfg.opt].has_betas:
            with_betas = [n for n, o in OPTIMIZERS.items() if o.has_betas]
            raise ConfigError(f"--warmup {cfg.warmup} derives its period from beta2, which "
                              f"--opt {cfg.opt} does not have; use one of: "
                              f"{', '.join(with_betas)}.")
        if self.min_beta2 is not None and not cfg.beta2 > self.min_beta2:
            raise ConfigError(f"--warmup {cfg.warmup} needs --beta2 > {self.min_beta2}, "
                              f"got {cfg.beta2}.")
        if cfg.delay_schedule and not self.lasts:
            raise ConfigError(f"--delay-schedule does nothing with --warmup {cfg.warmup}: "
                              "there is no warmup for the schedule to wait for.")

    def label_for(self, period: int | None) -> str:
        """'Linear-10k' for a tuned period of 10000, the bare label otherwise."""
        if not self.needs_period or period is None:
            return self.label
        return f"{self.label}-{period // 1000}k" if period % 1000 == 0 else \
            f"{self.label}-{period}"


# in the papers' table order (no warmup, RAdam, the untuned ones, the tuned ones): the
# order of a report's rows and of every figure's legend
WARMUPS: Registry[WarmupEntry] = Registry("warmup", "--warmup", {
    "none": WarmupEntry("no warmup", "None", "no warmup",
                        lambda optimizer, *, period: wu.NoWarmup(optimizer), lambda cfg: 0,
                        lasts=False, colour="tab:blue",
                        factors=lambda cfg: lambda t: np.ones_like(t)),
    # RAdam has no period; the paper's rule of thumb equates it with untuned linear's
    "radam": WarmupEntry(
        "RAdam's rectification term", "RAdam", "RAdam",
        lambda optimizer, *, period: wu.RAdamWarmup(optimizer),
        lambda cfg: wu.untuned_linear_period(cfg.beta2), needs_betas=True,
        min_beta2=wu.MIN_BETA2, colour="tab:purple",
        factors=lambda cfg: wu.UNTUNED_FACTORS["radam"](cfg.beta2)),
    "untuned-exponential": WarmupEntry(
        "exponential, period 1 / (1 - beta2)", "Expo", "untuned exponential",
        lambda optimizer, *, period: wu.UntunedExponentialWarmup(optimizer),
        lambda cfg: wu.untuned_exponential_period(cfg.beta2), needs_betas=True,
        colour="tab:orange",
        factors=lambda cfg: wu.UNTUNED_FACTORS["untuned-exponential"](cfg.beta2)),
    "untuned-linear": WarmupEntry(
        "linear, period 2 / (1 - beta2)", "Linear", "untuned linear",
        lambda optimizer, *, period: wu.UntunedLinearWarmup(optimizer),
        lambda cfg: wu.untuned_linear_period(cfg.beta2), needs_betas=True,
        colour="tab:red",
        factors=lambda cfg: wu.UNTUNED_FACTORS["untuned-linear"](cfg.beta2)),
    "exponential": WarmupEntry(
        "1 - exp(-t / period)", "Expo", "exponential",
        lambda optimizer, *, period: wu.ExponentialWarmup(optimizer, period),
        lambda cfg: cfg.warmup_period, needs_period=True, colour="tab:brown",
        factors=lambda cfg: wu.exponential_factors(cfg.warmup_period)),
    "linear": WarmupEntry("min(1, t / period)", "Linear", "linear",
                          lambda optimizer, *, period: wu.LinearWarmup(optimizer, period),
                          lambda cfg: cfg.warmup_period, needs_period=True,
                          colour="tab:green",
                          factors=lambda cfg: wu.linear_factors(cfg.warmup_period)),
})


def warmup_of_label(label: str) -> tuple[int, float, WarmupEntry | None]:
    """A table or legend label's warmup ("Linear": untuned linear; "Linear-10k": linear
    over 10,000 iterations): its place in WARMUPS' order, its period (0 for none), and
    its entry; labels of no warmup entry come last."""
    for rank, entry in enumerate(WARMUPS.values()):
        if not entry.needs_period and label == entry.label:
            return rank, 0.0, entry
        if entry.needs_period and label.startswith(f"{entry.label}-"):
            period = label[len(entry.label) + 1:]
            try:
                return rank, float(period[:-1]) * 1000 if period.endswith("k") else \
                    float(period), entry
            except ValueError:
                continue
    return len(WARMUPS), 0.0, None


@dataclass
class Training:
    """What updates the weights: the optimizer and its LR schedule under its warmup (one
    `WarmupScheduler`, stepped once per iteration after optimizer.step())."""

    lr_schedule: wu.WarmupScheduler
    schedule_free: bool = False  # evaluate at optimizer.eval()'s averaged weights

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.lr_schedule.optimizer

    @property
    def warmup(self) -> wu.BaseWarmup:
        return self.lr_schedule.warmup


def decay_groups(model: torch.nn.Module, decay_on: str) -> list:
    """The model's parameters as the optimizer takes them: one group that weight decay
    acts on entirely ("all"), or ("matrices") the parameters of two or more dimensions
    (weights, embeddings, convolution kernels) then the rest (biases, norm gains) with
    weight decay 0, in the model's parameter order within each group."""
    params = list(model.parameters())
    if decay_on == "all":
        return params
    groups = [{"params": [p for p in params if p.dim() >= 2]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_training(model: torch.nn.Module, cfg: TrainConfig, iters_per_epoch: int,
                   fused: bool = False) -> Training:
    """Optimizer, schedule, then warmup: the warmup must be created after the scheduler.
    A per-epoch schedule steps every `iters_per_epoch` iterations; --delay-schedule holds
    it until the warmup's length. `fused`: the optimizer's fused step, where it has one."""
    entry = OPTIMIZERS[cfg.opt]
    optimizer = entry.build(decay_groups(model, cfg.weight_decay_on), cfg, fused)
    if entry.schedule_free:
        optimizer.train()  # it steps only in train mode
    delay = WARMUPS[cfg.warmup].length(cfg) if cfg.delay_schedule else 0
    schedule = SCHEDULES[cfg.schedule]
    scheduler = expect_result(
        schedule.build(optimizer, cfg=cfg, iters_per_epoch=iters_per_epoch,
                       total=iters_per_epoch * cfg.epochs, delay=delay),
        lr_scheduler.LRScheduler, "torch.optim.lr_scheduler.LRScheduler",
        f"the builder of schedule {cfg.schedule!r}", schedule.build)
    build_warmup = WARMUPS[cfg.warmup].build
    warmup = expect_result(build_warmup(optimizer, period=cfg.warmup_period), wu.BaseWarmup,
                           "warmup_bench.warmup.BaseWarmup",
                           f"the builder of warmup {cfg.warmup!r}", build_warmup)
    return Training(wu.WarmupScheduler(
        warmup, scheduler, scheduler_every=iters_per_epoch if schedule.per_epoch else 1,
        scheduler_delay=delay), entry.schedule_free)
