"""The README and the pages in docs/ hold up: every Python snippet in them runs as written
(each one alone, in a fresh interpreter, from a folder holding what the README's main job
leaves there: results/), and every relative link in them leads to a file or folder of the
repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [(page.relative_to(ROOT).as_posix(), snippet) for page in PAGES
            for snippet in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
# the examples that left the README for docs/ stay there, each run below
EXPECTED = {"docs/warmup-library.md": 3, "docs/reports.md": 1, "docs/extending.md": 1}
# [text](target): inline links; a target with a scheme (https:, mailto:) or only an
# anchor is not a file of the repository
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_and_docs_have_their_snippets() -> None:
    counts = {name: sum(1 for page, _ in SNIPPETS if page == name) for name in EXPECTED}
    assert {name: n for name, n in counts.items() if n < EXPECTED[name]} == {}
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
                         ids=[f"{page}:{s.strip().split(chr(10))[-1][:40]}"
                              for page, s in SNIPPETS])
@pytest.mark.slow
def test_a_snippet_runs_as_written(workdir, index) -> None:
    done = subprocess.run([sys.executable, "-c", SNIPPETS[index][1]], cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not prose
    return [target.split("#")[0] for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


def test_the_pages_link_to_each_other() -> None:
    """The README points to each page of docs/, and the link checker below finds links."""
    readme_links = set(relative_links(ROOT / "README.md"))
    assert {f"docs/{page.name}" for page in PAGES[1:]} <= readme_links


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_relative_link_resolves(page) -> None:
    missing = [target for target in relative_links(page)
               if not (page.parent / target).resolve().exists()]
    assert missing == []
