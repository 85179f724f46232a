"""Evaluation: loss, top-1 and top-5 over a split, at the weights a run is judged by."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..data import BatchLoader
from .build import Net

EVAL_CHUNK_CPU = 128
BN_BATCHES = 50  # training batches that recompute BatchNorm statistics at averaged weights


def evaluate(net: Net, loader: BatchLoader) -> tuple[float, float, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy over every label (an image's class, a
    text window's next characters): one host sync at the end."""
    net.model.eval()
    sums = torch.zeros(3, device=loader.device)  # loss, top-1 hits, top-5 hits
    # on a CPU, forward passes over cache-sized chunks, several times faster than whole
    # evaluation batches (docs/cpu-speed.md); per-image logits do not depend on what else
    # is in the batch
    chunk = EVAL_CHUNK_CPU if loader.device.type == "cpu" else loader.batch_size
    with torch.inference_mode(), net.autocast():  # no autograd bookkeeping at all
        for batch, labels in loader:
            for x, y in zip(batch.split(chunk), labels.split(chunk)):
                # (N, classes) for images, (N, T, vocabulary) for text windows
                logits = net.forward(x).float()
                top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
                hits = top == y[..., None]
                sums += torch.stack([
                    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                    reduction="sum"),
                    hits[..., 0].sum(), hits.any(-1).sum()])
    # per label: an image's, or each predicted character of a text window
    loss, top1, top5 = (sums / loader.num_targets).tolist()  # host sync: end of evaluation
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


def batchnorms(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def recompute_batchnorm(net: Net, loader: BatchLoader, batches: int = BN_BATCHES) -> None:
    """BatchNorm running statistics at the current weights: their exact average over
    `batches` fixed, unaugmented training batches (BatchNorm's cumulative average:
    momentum None from reset statistics), by forward passes with only BatchNorm in train
    mode (dropout stays off: no random number is drawn), no gradient. What the
    schedule-free path evaluates with (schedulefree's documented caveat), and
    --precise-bn (`recomputed_batchnorm`, which puts training's statistics back)."""
    norms = batchnorms(net.model)
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    net.model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: every batch weighs the same
        norm.train()
    try:
        with torch.no_grad(), net.autocast():
            for x in loader.fixed_batches(batches):
                net.forward(x)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        net.model.eval()


@contextmanager
def recomputed_batchnorm(net: Net, loader: BatchLoader, batches: int) -> Iterator[None]:
    """What follows (an evaluation) sees BatchNorm statistics recomputed at the current
    weights (`recompute_batchnorm`); then training's own running statistics come back,
    bit for bit, so the training goes on as it would have without."""
    buffers = [b for norm in batchnorms(net.model) for b in norm.buffers()]
    kept = [b.clone() for b in buffers]
    recompute_batchnorm(net, loader, batches)
    try:
        yield
    finally:
        with torch.no_grad():  # in place: a pack member's buffers are views of the pack's
            for buffer, value in zip(buffers, kept):
                buffer.copy_(value)
