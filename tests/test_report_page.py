"""report --out's one-page report (report.html) and report.md's figure links: the page
holds the tables, every figure inline and the commands that make it again, loads nothing
from anywhere, and renders in a real headless browser (Debian's chromium) with every
image shown."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import invoke
from runfolders import write_finished_run

from warmup_bench.tasks import resolve_config

GRID = """
title = "page check"
task = "digits"
seeds = [1, 2]
[fixed]
epochs = 3
[grid]
warmup = ["none", "untuned-linear"]
lr = [0.01, 0.003]
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A report of 8 finished runs (written in the run-folder format), with --out."""
    root = tmp_path_factory.mktemp("page")
    grid = root / "grid.toml"
    grid.write_text(GRID)
    for k, (warmup, lr, seed) in enumerate(
            (w, lr, s) for w in ("none", "untuned-linear") for lr in (0.01, 0.003)
            for s in (1, 2)):
        cfg = resolve_config("digits", {"epochs": 3, "warmup": warmup, "lr": lr, "seed": seed})
        write_finished_run(root / "results", cfg, [0.5 + 0.01 * k, 0.8, 0.9 + 0.001 * k])
    done = invoke("report", root / "results", "--experiment", grid, "--out", root / "out")
    assert done.exit_code == 0, done.output
    assert "report.html (the whole report as one page)" in " ".join(done.output.split())
    return root / "out"


def test_the_page_holds_tables_figures_grid_and_commands_and_loads_nothing(page) -> None:
    text = (page / "report.html").read_text()
    figures = sorted((page / "plots").glob("*.png"))
    assert len(figures) >= 5 and text.count('src="data:image/png;base64,') == len(figures)
    assert "<table>" in text and "AdamW/Linear" in text and "page check" in text
    assert f"warmup-bench sweep {page.parent / 'grid.toml'} --out {page.parent / 'results'}" \
        in text and 'warmup = [&quot;none&quot;, &quot;untuned-linear&quot;]' in text
    # nothing from elsewhere: no address in any src or href, no script, no stylesheet link
    references = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert references and not [r for r in references if re.match(r"[a-z]+://", r)]
    assert "<script" not in text and "<link" not in text
    # the run folders, linked relative to the page's folder
    links = [r for r in references if not r.startswith("data:")]
    assert len(links) == 8 and all((page / link).is_dir() for link in links)
    # report.md links every figure, relative to its folder
    markdown = (page / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\((plots/[^)]+)\)", markdown)
    assert sorted(linked) == [f"plots/{p.name}" for p in figures]


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="no chromium here (Debian: apt-get install chromium)")
def test_the_page_renders_in_headless_chromium_every_image_shown(page, tmp_path) -> None:
    """A copy of the page, with a check appended, opened by chromium with every host
    name unresolvable: after load the check writes how many images decoded (natural width
    above 0) and how many resources were fetched from a network address."""
    probe = tmp_path / "probe.html"
    check = ("<script>addEventListener('load', () => { const i = [...document.images];"
             "const net = performance.getEntriesByType('resource')"
             ".filter(e => /^(https?|wss?|ftp):/.test(e.name)).length;"
             "document.body.insertAdjacentHTML('beforeend', '<p id=wbcheck>' + "
             "i.filter(x => x.complete && x.naturalWidth > 0).length + '/' + i.length + "
             "' images, ' + net + ' fetched</p>'); });</script>")
    probe.write_text((page / "report.html").read_text().replace("</body>", check + "</body>"))
    shown = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--virtual-time-budget=10000", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'profile'}", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<p id="wbcheck">(\d+)/(\d+) images, (\d+) fetched</p>', shown.stdout)
    assert found, (shown.returncode, shown.stderr[-2000:])
    decoded, images, fetched = map(int, found.groups())
    assert images == len(list((page / "plots").glob("*.png"))) and decoded == images
    assert fetched == 0
    assert "<h2>page check</h2>" in shown.stdout
