"""Rich progress bars for the CLI: one over a run's iterations (fed by the training loop's
Progress events at log steps), one over a sweep's runs."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RunBar:
    """A transient bar over one run's iterations: loss, LR and images/s at log steps."""

    def __init__(self, description: str, enabled: bool):
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  "
                              "{task.fields[speed]} img/s"), TimeRemainingColumn())
        self.progress = Progress(*columns, disable=not enabled, transient=True)
        self.bar = self.progress.add_task(description, total=None, loss="-", lr="-",
                                          speed="-")
        self.last = time.perf_counter()

    def __enter__(self) -> RunBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, event) -> None:
        """A train.loop.Progress event."""
        now = time.perf_counter()
        self.progress.update(self.bar, completed=event.step, total=event.total,
                             loss=f"{event.loss:.4f}", lr=f"{event.lr:.3g}",
                             description=f"epoch {event.epoch}/{event.epochs}",
                             speed=f"{event.images / max(now - self.last, 1e-9):,.0f}")
        self.last = now


class SweepBar:
    """A bar over a sweep's runs, its description counting the outcomes so far."""

    def __init__(self, total: int, parallel: int, enabled: bool):
        self.total, self.parallel, self.counts, self.ended = total, parallel, {}, 0
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.progress = Progress(*columns, disable=not enabled)
        self.bar = self.progress.add_task("sweep", total=total)

    def __enter__(self) -> SweepBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def ended_one(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.ended += 1
        running = min(self.total - self.ended, self.parallel)
        self.progress.update(self.bar, advance=1, description=", ".join(
            f"{k} {v}" for k, v in self.counts.items()) + f", running {running}")
