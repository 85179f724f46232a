"""The training loop: one epoch of steps, and evaluation. Per iteration it applies the
warmup protocol of pytorch_warmup: `optimizer.step()`, then the WarmupScheduler's step
(the schedule, when due, under the warmup). The host waits for the device only at log
steps and at the epoch's end; every such sync is commented."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import BatchLoader
from ..diagnostics import Monitor
from ..runs import CsvLog
from .build import Net

EVAL_CHUNK_CPU = 128
BN_BATCHES = 50  # training batches that recompute BatchNorm statistics at averaged weights


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


def train_epoch(cfg: TrainConfig, net: Net, loader: BatchLoader, epoch: int, steps_log: CsvLog,
                monitor: Monitor | None = None,
                on_progress: Callable[[Progress], None] | None = None) -> dict:
    """One epoch of training steps; returns its train metrics (the start of the epoch's
    row in the epochs log) or raises Diverged (StepFailed for any other error)."""
    net.model.train()
    optimizer, iters = net.training.optimizer, len(loader)
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    step = epoch * iters
    try:
        for i, (x, y) in enumerate(loader.batches(epoch)):
            step = epoch * iters + i + 1  # 1-based global iteration
            log_step = (step - 1) % cfg.log_interval == 0
            # diagnostics also at every one of the first iterations, where warmup matters
            probe = monitor is not None and (log_step or step <= cfg.log_interval)
            lr_used = optimizer.param_groups[0]["lr"]  # what this step applies (warmup included)
            with net.autocast():
                logits = net.forward(x)
                loss = net.criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            update(cfg, net, monitor if probe else None, step, lr_used)
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == y).sum()
            if log_step:
                value = loss.item()  # host sync: only at log steps
                if not math.isfinite(value):
                    raise diverged_at_step(value, step, epoch)
                steps_log.append(step_row(net, step, epoch, lr_used, value))
                if on_progress is not None:
                    on_progress(Progress(step, cfg.epochs * iters, epoch + 1, cfg.epochs, value,
                                         float(lr_used),
                                         min(cfg.log_interval, step) * loader.batch_size))
    except Diverged:
        raise
    except (Exception, SystemExit) as error:  # the run's failure says where it happened
        raise StepFailed(f"step {step} (epoch {epoch + 1})") from error
    train_loss = loss_sum.item() / iters  # host sync: epoch end
    if not math.isfinite(train_loss):
        raise diverged_in_epoch(train_loss, epoch, iters)
    return epoch_row(epoch, train_loss, correct.item(), iters, loader.batch_size,
                     time.perf_counter() - started)


# ---- one training step's parts after backward, shared with packed training (pack.py)

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
              seconds: float) -> dict:
    """The train metrics that start an epochs.csv row."""
    return {"epoch": epoch + 1, "train_loss": train_loss,
            "train_acc": hits / (iters * batch), "images_per_second": iters * batch / seconds}


def diverged_at_step(loss: float, step: int, epoch: int) -> Diverged:
    return Diverged(f"loss became {loss} at step {step} (epoch {epoch + 1})", epoch + 1, step)


def diverged_in_epoch(train_loss: float, epoch: int, iters: int) -> Diverged:
    return Diverged(f"loss became {train_loss} in epoch {epoch + 1}", epoch + 1,
                    (epoch + 1) * iters)


def evaluate(net: Net, loader: BatchLoader) -> tuple[float, float, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy over every sample: one host sync at
    the end."""
    net.model.eval()
    sums = torch.zeros(3, device=loader.device)  # loss, top-1 hits, top-5 hits
    # on a CPU, forward passes over cache-sized chunks: ResNet-20 evaluates 2,560 images
    # 2.7x faster in chunks of 128 than in batches of 1000 (per-image logits do not depend
    # on what else is in the batch)
    chunk = EVAL_CHUNK_CPU if loader.device.type == "cpu" else loader.batch_size
    with torch.inference_mode(), net.autocast():  # no autograd bookkeeping at all
        for batch, labels in loader:
            for x, y in zip(batch.split(chunk), labels.split(chunk)):
                logits = net.forward(x).float()
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                hits = top == y[:, None]
                sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"),
                                     hits[:, 0].sum(), hits.any(1).sum()])
    loss, top1, top5 = (sums / loader.num_samples).tolist()  # host sync: end of evaluation
    return loss, top1, top5


@contextmanager
def evaluation_weights(net: Net, loader: BatchLoader) -> Iterator[None]:
    """What follows (evaluation, the saved model, the checkpoint) sees the weights a run
    is judged by: a schedule-free optimizer's averaged x (optimizer.eval()), with the
    BatchNorm statistics recomputed at them first; training's y again afterwards. Other
    optimizers: nothing changes."""
    if not net.training.schedule_free:
        yield
        return
    net.training.optimizer.eval()
    try:
        recompute_batchnorm(net, loader)
        yield
    finally:
        net.training.optimizer.train()


def recompute_batchnorm(net: Net, loader: BatchLoader, batches: int = BN_BATCHES) -> None:
    """BatchNorm running statistics at the current weights (schedulefree's documented
    caveat): forward passes of fixed training batches with only BatchNorm in train mode
    (dropout stays off: no random number is drawn), no gradient."""
    norms = [m for m in net.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    net.model.eval()
    for norm in norms:
        norm.train()
    with torch.no_grad(), net.autocast():
        for x in loader.fixed_batches(batches):
            net.forward(x)
    net.model.eval()
