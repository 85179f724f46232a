"""A warmup-bench plugin: a cosine-shaped warmup, tuned and untuned.

    omega_t = (1 - cos(pi * min(t, tau) / tau)) / 2

rises from 0 like a half cosine and reaches 1 at t = tau. `cosine` takes tau from
--warmup-period; `untuned-cosine` uses untuned linear warmup's rule of thumb,
tau = 2 / (1 - beta2) per param group, so it can be set against the untuned warmups of
Ma & Yarats without tuning. Load it with `--plugin experiments/plugins/cosine_warmup.py`
(the grid next to it lists it under `plugins`).
"""

from __future__ import annotations

import math

import warmup_bench as wb
from warmup_bench.warmup import BaseWarmup
from warmup_bench.warmup.base import group_beta2s, warmup_periods


class CosineWarmup(BaseWarmup):
    """omega_t = (1 - cos(pi * min(t, tau) / tau)) / 2, tau one int or one per group."""

    def __init__(self, optimizer, warmup_period, last_step: int = -1):
        periods = warmup_periods(warmup_period, len(optimizer.param_groups))
        super().__init__(optimizer, [{"warmup_period": p} for p in periods], last_step)

    def warmup_factor(self, step: int, warmup_period: int) -> float:
        t = min(step + 1, warmup_period)
        return (1.0 - math.cos(math.pi * t / warmup_period)) / 2.0


def untuned_cosine(optimizer, *, period):
    return CosineWarmup(optimizer, [round(2.0 / (1.0 - b)) for b in
                                    group_beta2s(optimizer, "untuned-cosine")])


wb.register_warmup(
    "cosine", lambda optimizer, *, period: CosineWarmup(optimizer, period),
    description="(1 - cos(pi t / period)) / 2, then 1", label="Cosine", title="cosine",
    needs_period=True)
wb.register_warmup(
    "untuned-cosine", untuned_cosine, description="cosine, period 2 / (1 - beta2)",
    label="Cosine", title="untuned cosine", needs_betas=True,
    length=lambda cfg: round(2.0 / (1.0 - cfg.beta2)))
