"""TensorBoard event files mirroring a run's CSV rows, for those who would rather watch
a run in TensorBoard. The CSVs stay the record (and what the report reads); the events
are written from the same rows, at the same moments, by the tensorboard package's writer.

Every scalar is placed at its training iteration: per-step rows at their step, an epoch's
row at the epoch's last iteration. A resumed run redoes the iterations after its last
checkpoint; the writer's purge step makes TensorBoard drop what the interrupted attempt
logged for them, as the CSVs drop those rows.
"""

from __future__ import annotations

import math
from pathlib import Path

from .config import ConfigError

SKIPPED = {"step", "epoch"}  # the x axis, not a series


def check_available() -> None:
    """ConfigError when the optional tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install "
                          "'warmup-bench[tensorboard]'.") from None


class TensorBoardMirror:
    def __init__(self, folder: Path, first_step: int, iters_per_epoch: int):
        # RunOptions.check has checked the package is there, before the run started
        from torch.utils.tensorboard import SummaryWriter

        self.iters_per_epoch = iters_per_epoch
        self.writer = SummaryWriter(str(folder), purge_step=first_step if first_step > 1
                                    else None, flush_secs=30)

    def scalars(self, group: str, row: dict, step: int) -> None:
        for key, value in row.items():
            if key in SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):  # a diagnostic that does not apply is left out
                self.writer.add_scalar(f"{group}/{key}", value, step)

    def steps(self, row: dict) -> None:
        self.scalars("train", row, row["step"])

    def epochs(self, row: dict) -> None:
        self.scalars("epoch", row, row["epoch"] * self.iters_per_epoch)

    def diagnostics(self, row: dict) -> None:
        self.scalars("diagnostics", row, row["step"])

    def close(self) -> None:
        self.writer.close()
