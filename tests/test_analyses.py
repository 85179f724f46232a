"""The report's research analyses on hand-written run folders (the real on-disk format):
time to a target accuracy, the phase diagram over LR x warmup length, LR sensitivity,
and the cells as data (JSON, a pandas frame)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clirun import invoke
from runfolders import write_finished_run

from warmup_bench import plots
from warmup_bench.report import build_table, collect, collect_runs, parse_metric, render
from warmup_bench.report.figures import analyse, figure_jobs, phase_grid, sensitivity_curves
from warmup_bench.tasks import resolve_config

ITERATIONS = 44  # per epoch, as meta.json records it


def write_run(root: Path, accuracies: list[float], status: str = "complete",
              val: list[float] | None = None, iterations: int = ITERATIONS,
              **settings) -> Path:
    """A run of 5 digits epochs whose test accuracies were `accuracies` (`val`: and val
    accuracies), 1.5 training seconds an epoch."""
    cfg = resolve_config("digits", {"epochs": 5, **settings})
    return write_finished_run(root, cfg, accuracies, status, val, iterations=iterations,
                              images_per_second=iterations * 32 / 1.5, top5=False)


@pytest.fixture
def timed(tmp_path) -> Path:
    """Three seeds of one cell: reached 90% at epoch 3, at epoch 2, never; one diverged."""
    root = tmp_path / "results"
    write_run(root, [0.5, 0.8, 0.91, 0.92, 0.93], seed=1)
    write_run(root, [0.6, 0.9, 0.95, 0.96, 0.97], seed=2)
    write_run(root, [0.5, 0.6, 0.7, 0.8, 0.85], seed=3)
    write_run(root, [0.5, 0.85], status="diverged", seed=4)
    return root


def test_steps_epochs_and_seconds_to_a_target(timed) -> None:
    runs = collect_runs(timed, print)
    steps = build_table("t", runs, ("opt", "warmup"), "lr", parse_metric("steps-to:90"))
    (cell,) = steps.cells.values()
    assert sorted(cell.values) == [2 * ITERATIONS, 3 * ITERATIONS]  # epoch 3 of seed 1: 3k
    assert (cell.n, cell.missing, cell.diverged, cell.total) == (2, 1, 1, 4)
    assert cell.parts(False) == ["110 ± 31 (2/4 reached)"]
    epochs = build_table("t", runs, ("opt", "warmup"), "lr", parse_metric("epochs-to:90"))
    assert sorted(next(iter(epochs.cells.values())).values) == [2.0, 3.0]
    seconds = build_table("t", runs, ("opt", "warmup"), "lr", parse_metric("seconds-to:90"))
    assert sorted(next(iter(seconds.cells.values())).values) == pytest.approx([3.0, 4.5])
    assert steps.metric_title == "optimizer steps to 90% test accuracy"
    never = build_table("t", runs, ("opt", "warmup"), "lr", parse_metric("steps-to:99.5"))
    assert next(iter(never.cells.values())).parts(False) == ["not reached (0/4)"]


def test_time_to_target_reads_the_val_split_where_there_is_one(tmp_path) -> None:
    root = tmp_path / "r"
    # 1,438 - 288 held out for validation = 1,150 training images: 35 batches of 32
    write_run(root, [0.99] * 5, val=[0.5, 0.6, 0.95, 0.96, 0.97], iterations=35,
              val_fraction=0.2)
    runs = collect_runs(root, print)
    table = build_table("t", runs, ("opt", "warmup"), "lr", parse_metric("steps-to:90"))
    assert next(iter(table.cells.values())).values == [3 * 35]
    assert table.metric_title == "optimizer steps to 90% val accuracy"


@pytest.mark.parametrize(("fmt", "expected"), [
    ("markdown", "| AdamW/Linear | 110 ± 31 (2/4 reached) |"),
    ("csv", "AdamW/Linear,0.01,110.0,31.11269837220809,2,1,,,,,2,4"),
    ("latex", r"AdamW/Linear & 110 $\pm$ 31 (2/4 reached) \\"),
    ("table", "110 ± 31 (2/4 reached)"),
])
def test_every_renderer_shows_reached_counts(timed, fmt, expected) -> None:
    result = invoke("report", str(timed), "--metric", "steps-to:90", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert expected in result.output
    if fmt != "csv":
        assert "optimizer steps to 90% test accuracy" in result.output


def test_compare_has_no_published_times_and_says_so(timed, tmp_path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('task = "digits"\nseeds = [1, 2, 3, 4]\n[fixed]\nepochs = 5\n'
                    '[published]\n"AdamW/Linear" = { "0.01" = [1.0, 0.1] }\n')
    result = invoke("report", str(timed), "--experiment", str(grid), "--compare", "--metric",
                    "steps-to:90", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "note: no published numbers of steps-to:90 exist: nothing to compare." in \
        result.stderr and "published" not in result.stdout.split("\n")[1]


@pytest.mark.parametrize("bad", ["steps-to:0", "steps-to:120", "steps-to:abc", "fastest"])
def test_a_bad_metric_is_one_line(timed, bad) -> None:
    result = invoke("report", str(timed), "--metric", bad)
    assert result.exit_code == 2 and result.output.count("\n") == 1 and bad in result.output


# ---- phase diagram and LR sensitivity ---------------------------------------------------

LRS = (0.001, 0.01, 0.1)
WARMUPS = ({"warmup": "none"}, {"warmup": "linear", "warmup_period": 20},
           {"warmup": "linear", "warmup_period": 100})


@pytest.fixture
def grid_runs(tmp_path) -> Path:
    """LR x warmup x 2 seeds: error rising with the LR; without warmup the largest LR
    diverges (both seeds), with the shortest warmup one seed of it does."""
    root = tmp_path / "phase"
    for i, lr in enumerate(LRS):
        for j, warmup in enumerate(WARMUPS):
            for seed in (1, 2):
                accuracy = 0.9 - 0.1 * i + 0.02 * j + 0.01 * seed
                diverges = lr == 0.1 and (j == 0 or (j == 1 and seed == 2))
                write_run(root, [accuracy] * 2, "diverged" if diverges else "complete",
                          lr=lr, seed=seed, **warmup)
    return root


def test_phase_diagram_cells_and_diverged_marks(grid_runs) -> None:
    runs = collect_runs(grid_runs, print)
    grid = phase_grid(analyse(runs, parse_metric("best")))
    # rows by effective period T(omega): (period - 1) / 2 for a linear warmup
    assert grid["lrs"] == list(LRS) and grid["lengths"] == [0, 9.5, 49.5]
    assert grid["warmups"] == ["None", "Linear-20", "Linear-100"]
    # row None, lr 0.001: errors 100 - (90 + 1) and 100 - (90 + 2) -> 8.5
    assert grid["mean"][0, 0] == pytest.approx(8.5)
    assert np.isnan(grid["mean"][0, 2]) and grid["diverged"][0, 2] == 2
    assert grid["diverged"][1, 2] == 1 and grid["mean"][1, 2] == pytest.approx(100 - 73)
    figure = plots.phase_diagram_figure(grid, "digits AdamW", "top-1 error (%)")
    ax = figure.axes[0]
    shown = ax.images[0].get_array()
    assert shown.mask[0, 2] and float(shown[0, 0]) == pytest.approx(8.5)  # diverged: no colour
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in hatched) == \
        [(2, 0), (2, 1)]
    texts = {t.get_text() for t in ax.texts}
    # the numbers as the table prints them (two decimals)
    assert "div." in texts and "8.50" in texts and "27.00\n1/2 div." in texts
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == \
        ["None  T = 0.0", "Linear-20  T = 9.5", "Linear-100  T = 49.5"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["diverged"]
    assert figure.axes[1].get_ylabel() == "top-1 error (%)"  # the colour bar's


def test_lr_sensitivity_lines_bands_and_diverged_marks(grid_runs) -> None:
    runs = collect_runs(grid_runs, print)
    curves = sensitivity_curves(analyse(runs, parse_metric("best")))
    assert list(curves) == ["None", "Linear-20", "Linear-100"]
    lrs, mean, low, high, diverged = curves["None"]
    assert list(lrs) == list(LRS) and mean[0] == pytest.approx(8.5)
    assert (low[0], high[0]) == pytest.approx((8.0, 9.0)) and np.isnan(mean[2])
    assert diverged == [0.1] and curves["Linear-100"][4] == []
    ax = plots.lr_sensitivity_figure(curves, "g", "top-1 error (%)").axes[0]
    assert ax.get_xscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["None", "Linear-20", "Linear-100"]
    assert "diverged" in [t.get_text() for t in ax.get_legend().get_texts()]
    marks = [c for c in ax.collections if len(c.get_offsets()) and
             c.get_offsets()[0][1] == pytest.approx(ax.get_ylim()[1])]
    assert sorted(len(c.get_offsets()) for c in marks) == [1, 1]  # None and Linear-20 at 0.1


def test_report_out_draws_the_phase_and_sensitivity_figures(grid_runs, tmp_path) -> None:
    runs = collect_runs(grid_runs, print)
    table = build_table("t", runs, ("opt", "warmup"), "lr")
    names = sorted(job[1].name for job in figure_jobs(table, runs, tmp_path))
    assert "phase_digits_AdamW.png" in names and "sensitivity_digits_AdamW.png" in names
    result = invoke("report", str(grid_runs), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    for name in ("phase_digits_AdamW.png", "sensitivity_digits_AdamW.png"):
        assert (tmp_path / "out" / "plots" / name).read_bytes()[:4] == b"\x89PNG"


# ---- the cells as data ------------------------------------------------------------------


def test_report_json_has_a_record_per_cell(grid_runs) -> None:
    result = invoke("report", str(grid_runs), "--format", "json")
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.stdout)
    assert table["metric"] == "top-1 error (%) from best test accuracy"
    assert len(table["cells"]) == 9
    cell = next(c for c in table["cells"] if c["settings"]["lr"] == 0.1 and
                c["settings"]["warmup"] == "none")
    assert (cell["n"], cell["runs"], cell["diverged"], cell["mean"]) == (0, 2, 2, None)
    assert all(Path(f).is_dir() for f in cell["folders"]) and len(cell["folders"]) == 2


def test_collect_gives_a_frame_of_runs(grid_runs, timed) -> None:
    frame = collect(grid_runs)
    assert len(frame) == 18 and {"lr", "warmup", "status", "best", "folder"} <= set(frame)
    assert (frame["status"] == "diverged").sum() == 3
    times = collect(timed, metric="steps-to:90")
    assert sorted(times["steps-to:90"].dropna()) == [2 * ITERATIONS, 3 * ITERATIONS]


def test_existing_metrics_render_as_before(timed) -> None:
    """best: errors 7, 3 and 15 of the three finished seeds, the diverged one counted, and
    the footnote on a warmup that outlasts most of these short runs."""
    runs = collect_runs(timed, print)
    text = render(build_table("t", runs, ("opt", "warmup"), "lr", "best"), "markdown", False)
    assert text == ("**t** — top-1 error (%) from best test accuracy\n\n"
                    "| Optimizer / Warmup | α = 0.01 |\n|---|---:|\n"
                    "| AdamW/Linear | 8.33 ± 6.11 (3) [1 diverged] |\n\n"
                    "Note: untuned linear warmup lasts 199 of 220 iterations (4 runs): "
                    "longer than 25% of training, so its LR stays below the target for much "
                    "of the run.\n")
