"""The training loop: one epoch of every member's steps. Per iteration it applies the
warmup protocol of pytorch_warmup: `optimizer.step()`, then the WarmupScheduler's step
(the schedule, when due, under the warmup). The host waits for the device only at log
steps and at the epoch's end; every such sync is commented."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from ..config import TrainConfig
from ..diagnostics import Monitor
from .build import Loaders, Net

if TYPE_CHECKING:
    from .session import RunSession



class Diverged(Exception):
    """The training loss stopped being finite."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.at = {"epoch": epoch, "step": step}


class StepFailed(Exception):
    """An error raised during a training step (its cause), and where: "step 37 (epoch 1)"."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


@dataclass(frozen=True)
class Progress:
    """Where a run is, as its log steps tell the caller (the CLI draws a bar from it)."""

    step: int
    total: int  # iterations in the whole run
    epoch: int  # 1-based
    epochs: int
    loss: float
    lr: float
    images: int  # trained since the previous log step


@dataclass
class Member:
    """A run in training: its config, its built objects, its open run (a RunSession), and
    whether its loss stopped being finite. A run alone is a pack of one member."""

    cfg: TrainConfig
    net: Net
    loaders: Loaders
    session: RunSession | None = None  # once opened
    diverged: Diverged | None = None  # once its loss stopped being finite

    @property
    def monitor(self) -> Monitor | None:
        return self.session.monitor


class Forward(Protocol):
    """How the members' forward and backward run: `DirectModel` (one member, its model
    called on its batch) or train.pack's PackedModel (several, one vmapped model)."""

    def train(self) -> None: ...

    def bind(self, models: list[torch.nn.Module]) -> None: ...

    def losses(self, batches: list[tuple[torch.Tensor, torch.Tensor]], nets: list[Net]
               ) -> tuple[torch.Tensor, torch.Tensor]: ...


class DirectModel:
    """A run alone: its model (channels_last, compiled, with its CPU dropout masks, as
    built) called on its batch, its own optimizer clearing the gradients."""

    def train(self) -> None:
        pass  # the member's own module is put in train mode by the loop

    def bind(self, models: list[torch.nn.Module]) -> None:
        pass  # one member: nothing to restack when it leaves

    def losses(self, batches: list[tuple[torch.Tensor, torch.Tensor]], nets: list[Net]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The member's loss and correct predictions (each of shape (1,)), its gradients
        computed."""
        [(x, y)], [net] = batches, nets
        with net.autocast():
            logits = net.forward(x)
            loss = net.criterion(logits.float(), y)
        net.training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss.detach().reshape(1), (logits.argmax(-1) == y).sum().reshape(1)


def train_epoch(members: list[Member], model: Forward, epoch: int,
                on_divergence: Callable[[Member], None],
                on_progress: Callable[[Progress], None] | None = None) -> dict[int, dict]:
    """One epoch of every member's training steps; returns each surviving member's train
    metrics (the start of its epochs.csv row) by its index in `members`. A member whose
    loss stops being finite gets `.diverged` (the step its run alone would report), is
    handed to `on_divergence`, and leaves: the others continue. Any other error is
    StepFailed, naming the step."""
    live = list(range(len(members)))
    cfg, loader = members[0].cfg, members[0].loaders.train
    iters, batch = len(loader), loader.batch_size
    for member in members:
        member.net.model.train()
    model.train()
    started = time.perf_counter()
    loss_sums = torch.zeros(len(live), device=loader.device)
    correct = torch.zeros(len(live), dtype=torch.long, device=loader.device)
    streams = [m.loaders.train.batches(epoch) for m in members]  # each member's own batches
    step = epoch * iters

    def leave(position: int, error: Diverged) -> None:
        nonlocal loss_sums, correct
        index = live.pop(position)
        members[index].diverged = error
        on_divergence(members[index])
        keep = [p for p in range(len(live) + 1) if p != position]
        loss_sums, correct = loss_sums[keep], correct[keep]
        if live:
            model.bind([members[i].net.model for i in live])

    try:
        for i in range(iters):
            step = epoch * iters + i + 1  # 1-based global iteration
            log_step = (step - 1) % cfg.log_interval == 0
            # diagnostics also at every one of the first iterations, where warmup matters
            probe = log_step or step <= cfg.log_interval
            nets = [members[k].net for k in live]
            # what this step applies (warmup included)
            lrs = [net.training.optimizer.param_groups[0]["lr"] for net in nets]
            losses, hits = model.losses([next(streams[k]) for k in live], nets)
            for p, k in enumerate(live):  # from here on each member's own run's code
                update(members[k].cfg, nets[p], members[k].monitor if probe else None, step,
                       lrs[p])
            loss_sums += losses
            correct += hits
            if log_step:
                values = losses.tolist()  # host sync: only at log steps, every member at once
                for p in reversed(range(len(live))):
                    if not math.isfinite(values[p]):
                        leave(p, diverged_at_step(values[p], step, epoch))
                        continue
                    members[live[p]].session.logs.steps.append(
                        step_row(nets[p], step, epoch, lrs[p], values[p]))
                if not live:
                    return {}
                if on_progress is not None:
                    on_progress(Progress(step, cfg.epochs * iters, epoch + 1, cfg.epochs,
                                         values[0], float(lrs[0]),
                                         min(cfg.log_interval, step) * batch))
    except (Exception, SystemExit) as error:  # every member's failure says where
        raise StepFailed(f"step {step} (epoch {epoch + 1})") from error
    train_losses = loss_sums.tolist()  # host sync: epoch end
    hits_sums = correct.tolist()
    seconds = time.perf_counter() - started
    rows = {}
    for p in reversed(range(len(live))):
        train_loss = train_losses[p] / iters
        if not math.isfinite(train_loss):
            leave(p, diverged_in_epoch(train_loss, epoch, iters))
            continue
        # each member's own images over the pack's time: a pack's speed is their sum
        rows[live[p]] = epoch_row(epoch, train_loss, hits_sums[p], iters, batch, seconds,
                                  loader.targets_per_sample)
    return rows


# ---- one training step's parts

def update(cfg: TrainConfig, net: Net, monitor: Monitor | None, step: int,
           lr_used: float) -> None:
    """Gradients complete: the probe's first look (when `monitor`), clipping, the
    optimizer's step, the probe's second look, then the schedule (when due) under the
    warmup."""
    if monitor is not None:
        monitor.before_step()  # gradients complete, parameters not yet updated
    if cfg.grad_clip is not None:
        # foreach: the same floats as the per-parameter loop, in fewer dispatches
        torch.nn.utils.clip_grad_norm_(net.model.parameters(), cfg.grad_clip, foreach=True)
    net.training.optimizer.step()
    if monitor is not None:
        monitor.after_step(step, lr_used)  # host sync: one transfer, probe steps only
    net.training.lr_schedule.step()


def step_row(net: Net, step: int, epoch: int, lr_used: float, loss: float) -> dict:
    """A steps.csv row (`epoch` 0-based, as the loop counts)."""
    return {"step": step, "epoch": epoch + 1, "lr": float(lr_used),
            "warmup_factor": net.training.warmup.factor_at(step - 1), "loss": loss}


def epoch_row(epoch: int, train_loss: float, hits: int, iters: int, batch: int,
              seconds: float, targets_per_sample: int = 1) -> dict:
    """The train metrics that start an epochs.csv row (accuracy over every label: a text
    window has one per position; speed in samples, images or windows, per second)."""
    return {"epoch": epoch + 1, "train_loss": train_loss,
            "train_acc": hits / (iters * batch * targets_per_sample),
            "images_per_second": iters * batch / seconds}


def diverged_at_step(loss: float, step: int, epoch: int) -> Diverged:
    return Diverged(f"loss became {loss} at step {step} (epoch {epoch + 1})", epoch + 1, step)


def diverged_in_epoch(train_loss: float, epoch: int, iters: int) -> Diverged:
    return Diverged(f"loss became {train_loss} in epoch {epoch + 1}", epoch + 1,
                    (epoch + 1) * iters)
