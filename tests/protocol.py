"""pytorch_warmup's protocol written out: the reference LR sequence the wrappers and the
framework integrations are held to."""

from __future__ import annotations


def protocol_lrs(optimizer, scheduler, warmup, steps: int) -> list[float]:
    """The LR each of `steps` iterations trains at: step the optimizer, then step the
    scheduler inside the warmup's dampening."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        with warmup.dampening():
            scheduler.step()
    return lrs
