"""Killing a training process at a known point, for the resume-is-exact tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def sigkill_after_epochs(process: subprocess.Popen, out: Path, epochs: int,
                         seconds: float = 300.0) -> None:
    """SIGKILL `process` once the run under `out` has checkpointed `epochs` epochs (its
    summary says so: the row, the checkpoint, then the summary are written in that order)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        summaries = list(Path(out).glob("*/*/summary.json"))
        try:
            if summaries and json.loads(summaries[0].read_text())["epochs_done"] >= epochs:
                break
        except (OSError, ValueError):
            pass  # replaced while read: the next look sees it whole
        time.sleep(0.05)
    else:
        raise TimeoutError(f"the run under {out} did not reach epoch {epochs}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
