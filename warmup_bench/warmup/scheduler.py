"""A warmup and an LR scheduler as one `LRScheduler`, for training frameworks that call
`scheduler.step()` themselves (PyTorch Lightning, the Hugging Face Trainer, Accelerate)
and so cannot use the `with warmup.dampening(): scheduler.step()` protocol.

    scheduler = CosineAnnealingLR(optimizer, T_max=total_steps)   # first the scheduler,
    warmup = UntunedLinearWarmup(optimizer)                        # then the warmup
    lr_scheduler = WarmupScheduler(warmup, scheduler)              # stepped once per iteration

Each `step()` is exactly one iteration of the protocol,

    with warmup.dampening():
        if due(t): scheduler.step()

with t the iteration just finished (1, 2, ...), so the optimizer steps with
alpha_t * omega_t at every iteration, bit for bit what the protocol gives.  A per-epoch
scheduler is stepped every `scheduler_every` (= iterations per epoch) calls; one held
back by `scheduler_delay` iterations is stepped from iteration `scheduler_delay` on:

    due(t) = t % scheduler_every == 0 and t >= scheduler_delay

Rules, each refused (or warned about) with the reason:

- the scheduler is a torch `LRScheduler` stepped without arguments (not ReduceLROnPlateau,
  whose `step(metrics)` needs a metric: step it yourself inside `with warmup.dampening():`);
- one WarmupScheduler per warmup, and the warmup is stepped only through it: a second
  wrapper, or a `with warmup.dampening():` beside it, would step the warmup twice;
- every param group exists before the warmup is created (a later one is never warmed up);
- the scheduler is not itself a WarmupScheduler (its warmup and this one would both apply);
- `load_state_dict` takes a WarmupScheduler's state over as many param groups; its warmup's
  saved periods replace the constructed ones, as in pytorch_warmup (with a UserWarning);
- `step()` comes after `optimizer.step()`; called before it, the first LR of the schedule
  is skipped (a UserWarning, once, as torch's own schedulers give).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext

from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .base import BaseWarmup, _copy_lr, check_state_keys

STATE_KEYS = ("warmup", "scheduler", "scheduler_every", "scheduler_delay")
TORCH_ORDER_WARNING = r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"


class WarmupScheduler(LRScheduler):
    """`warmup` over `scheduler` (or over the constant LR when there is none), stepped once
    per optimizer step. The iteration count is the warmup's own (`warmup.last_step`), so
    `state_dict()` holds everything a framework needs to checkpoint and resume."""

    def __init__(self, warmup: BaseWarmup, scheduler: LRScheduler | None = None, *,
                 scheduler_every: int = 1, scheduler_delay: int = 0):
        # LRScheduler.__init__ is not called: it would take a step and wrap optimizer.step;
        # the attributes frameworks read (optimizer, base_lrs, last_epoch) are set here.
        if not isinstance(warmup, BaseWarmup):
            raise TypeError(f"{warmup!r} is not a warmup (BaseWarmup).")
        if isinstance(scheduler, ReduceLROnPlateau):  # an LRScheduler, but step(metrics)
            raise TypeError(
                "ReduceLROnPlateau steps on a metric (step(metrics)), which "
                "WarmupScheduler.step() cannot pass: step ReduceLROnPlateau yourself, inside "
                "`with warmup.dampening():`, instead of wrapping it.")
        if isinstance(scheduler, WarmupScheduler):
            raise TypeError(
                "the scheduler is itself a WarmupScheduler: its warmup would apply on top of "
                "this one's (a double warmup). Wrap its inner scheduler instead "
                "(`WarmupScheduler(warmup, inner.scheduler)`), or use that one alone.")
        if scheduler is not None and not isinstance(scheduler, LRScheduler):
            raise TypeError(
                f"WarmupScheduler expects a torch.optim.lr_scheduler.LRScheduler (or None), "
                f"got an object of type {type(scheduler).__name__}.")
        if warmup._scheduler is not None:
            raise ValueError(
                "this warmup already has a WarmupScheduler: a second one would step it "
                "twice per iteration. Create one WarmupScheduler per warmup.")
        if scheduler is not None and scheduler.optimizer is not warmup.optimizer:
            raise ValueError("the scheduler and the warmup must drive the same optimizer.")
        for name, value, least in (("scheduler_every", scheduler_every, 1),
                                   ("scheduler_delay", scheduler_delay, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}.")
        self.warmup, self.scheduler = warmup, scheduler
        self.scheduler_every, self.scheduler_delay = scheduler_every, scheduler_delay
        self.optimizer = warmup.optimizer
        self.base_lrs = [_copy_lr(lr) for lr in warmup.lrs]
        self._check_dampened()
        self._left_step = warmup.last_step  # where step() left the warmup: others' steps show
        # a post hook sees the first optimizer.step() without changing what it computes
        self._optimizer_stepped = False
        self._hook = self.optimizer.register_step_post_hook(self._note_optimizer_step)
        warmup._scheduler = self  # last: a refused WarmupScheduler does not claim the warmup

    @property
    def last_epoch(self) -> int:
        """Iterations stepped so far (LRScheduler's name for its counter)."""
        return self.warmup.last_step

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:  # LRScheduler's own methods may assign it
        self.warmup.last_step = self._left_step = value

    def due(self, iteration: int) -> bool:
        """Whether the inner scheduler steps after 1-based iteration `iteration`."""
        return iteration % self.scheduler_every == 0 and iteration >= self.scheduler_delay

    def step(self, epoch: None = None) -> None:
        """After optimizer.step(): the scheduler (when due) on the undampened LRs, then the
        next iteration's warmup factor.  Refuses an optimizer that gained a param group and
        a warmup stepped by anyone else since the last call."""
        if epoch is not None:
            raise TypeError("WarmupScheduler.step() takes no epoch: it counts iterations.")
        self.warmup._check_groups()
        if self.warmup.last_step != self._left_step:
            raise RuntimeError(
                f"the warmup is at step index {self.warmup.last_step}, but this "
                f"WarmupScheduler left it at {self._left_step}: something else stepped it "
                f"(another WarmupScheduler, `with warmup.dampening():` or warmup.dampen()). "
                f"Step the warmup only through the WarmupScheduler.")
        early = self._hook is not None and self._first_step_is_early()
        iteration = self.warmup.last_step + 1  # step index s is iteration s + 1
        with self.warmup.dampening():
            if self.scheduler is not None and self.due(iteration):
                with _torch_order_warning_ignored() if early else nullcontext():
                    self.scheduler.step()
        self._left_step = self.warmup.last_step

    def _note_optimizer_step(self, optimizer, args, kwargs) -> None:
        self._optimizer_stepped = True

    def _first_step_is_early(self) -> bool:
        """At the first step: warns (once) when optimizer.step() has not run yet."""
        self._hook.remove()  # not from inside the hook: torch iterates over the hooks
        self._hook = None
        if self._optimizer_stepped:
            return False
        warnings.warn(
            "WarmupScheduler.step() was called before optimizer.step(): the first LR of the "
            "schedule (warmup included) is skipped. Call optimizer.step() first, then "
            "the scheduler's step().", UserWarning, stacklevel=3)
        return True

    def get_last_lr(self) -> list:
        """The LR of every param group as the optimizer will apply it: warmup included."""
        return self._applied_lrs()

    def get_lr(self) -> list:
        return self._applied_lrs()

    @property
    def _last_lr(self) -> list:  # LRScheduler's attribute, for code that reads it directly
        return self._applied_lrs()

    def state_dict(self) -> dict:
        return {"warmup": self.warmup.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "scheduler_every": self.scheduler_every,
                "scheduler_delay": self.scheduler_delay}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the scheduler, then the warmup (which re-dampens the optimizer's LRs
        to what they were when the state was saved; saved periods replace the constructed
        ones, with a warning).  The state is checked first (a WarmupScheduler's, over as
        many param groups), so a refused one changes nothing."""
        check_state_keys(state_dict, STATE_KEYS, "WarmupScheduler")
        self.warmup.check_state(state_dict["warmup"])
        if (state_dict["scheduler"] is None) != (self.scheduler is None):
            raise ValueError("the saved state and this WarmupScheduler differ in whether "
                             "they wrap an LR scheduler.")
        self.scheduler_every = state_dict["scheduler_every"]
        self.scheduler_delay = state_dict["scheduler_delay"]
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state_dict["scheduler"])
        self.warmup.load_state_dict(state_dict["warmup"])
        self._left_step = self.warmup.last_step  # a loaded step is no foreign one

    def _applied_lrs(self) -> list:
        return [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]

    def _check_dampened(self) -> None:
        """A scheduler created after the warmup either overwrote the dampened LR or took
        it as its base LR (scaling the whole schedule by omega_1): refuse both."""
        self.warmup._check_groups()
        # checked factors: a bad one is reported as such, not blamed on the creation order
        omegas = self.warmup.checked_factors(self.warmup.last_step)
        for group, lr, omega in zip(self.optimizer.param_groups, self.warmup.lrs, omegas):
            dampened = float(lr) * omega
            took_dampened_base = self.scheduler is not None and omega != 1.0 \
                and "initial_lr" in group and _near(float(group["initial_lr"]), dampened)
            if not _near(float(group["lr"]), dampened) or took_dampened_base:
                raise ValueError("the optimizer's LR is not the warmup's dampened one: create "
                                 "the LR scheduler before the warmup.")


@contextmanager
def _torch_order_warning_ignored():
    """torch's own step-order warning, which would only repeat the one just given."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCH_ORDER_WARNING, UserWarning)
        yield


def _near(value: float, target: float) -> bool:
    return abs(value - target) <= 1e-9 * abs(target)
