"""Warmup-stable-decay (MiniCPM; Hägele et al. 2024): the LR schedule that holds the base
LR and cools down at the end, as a torch LRScheduler (optim.SCHEDULES names it "wsd")."""

from __future__ import annotations

import math

from torch.optim import lr_scheduler

COOLDOWN_SHAPES = {  # s: progress through the cooldown, 0..1 -> the share of the LR left
    "linear": lambda s: 1.0 - s,
    "cosine": lambda s: (1.0 + math.cos(math.pi * s)) / 2.0,
    "1-sqrt": lambda s: 1.0 - math.sqrt(s),
}


class WarmupStableDecay(lr_scheduler.LRScheduler):
    """Warmup-stable-decay (MiniCPM; Hägele et al. 2024), the warmup being ours: the base
    LR for the first T - C of the schedule's T iterations, then a cooldown over the last
    C = round(fraction T) down to eta_min, at iteration t of the cooldown (1..C)

        lr = eta_min + (lr0 - eta_min) shape(t / C),

    so the last iteration trains at exactly eta_min."""

    def __init__(self, optimizer, total: int, fraction: float, shape: str, eta_min: float):
        # the shape's name, not its function: the state dict goes into checkpoints
        self.total, self.shape, self.eta_min = total, shape, eta_min
        self.cooldown = self.cooldown_length(total, fraction)
        self.start = total - self.cooldown  # iterations of the stable phase
        super().__init__(optimizer)

    @staticmethod
    def cooldown_length(total: int, fraction: float) -> int:
        return max(1, round(fraction * total))

    def factor(self, step: int) -> float | None:
        """The cooldown's shape at scheduler step `step` (0-based: it sets the LR of
        iteration step + 1), or None in the stable phase."""
        done = step + 1 - self.start
        return None if done <= 0 else COOLDOWN_SHAPES[self.shape](min(1.0, done / self.cooldown))

    def get_lr(self) -> list[float]:
        share = self.factor(self.last_epoch)
        return [base if share is None else self.eta_min + (base - self.eta_min) * share
                for base in self.base_lrs]
