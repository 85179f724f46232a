"""Every Python snippet in the README runs as written: each one alone, in a fresh
interpreter, from a folder holding what the README's main job leaves there (results/)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_its_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder after `warmup-bench train --task digits ...` (shortened to 2 epochs)."""
    folder = tmp_path_factory.mktemp("readme")
    done = subprocess.run([sys.executable, "-m", "warmup_bench", "train", "--task", "digits",
                           "--epochs", "2", "--no-progress"], cwd=folder, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("index", range(len(SNIPPETS)),
                         ids=[s.strip().split("\n")[-1][:40] for s in SNIPPETS])
def test_a_readme_snippet_runs_as_written(workdir, index) -> None:
    done = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
