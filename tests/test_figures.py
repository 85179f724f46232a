"""Every figure's content, read off the figure object: its lines, their styles and data,
labels, legend entries and titles (a PNG existing proves nothing about what it shows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from warmup_bench import plots
from warmup_bench.report.figures import Band, across_seeds
from warmup_bench.report.tables import Cell, Table
from warmup_bench.warmup import beta2_grid, factor_curves, period_curves


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def band(x, mean, spread=0.1) -> Band:
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    return Band(x, mean, np.zeros_like(mean), mean - spread, mean + spread)


def test_warmup_period_curves_are_told_apart_by_style_and_titled() -> None:
    beta2s = beta2_grid(0.99, 0.9999, 10)
    fig = plots.warmup_periods_figure(beta2s, period_curves(beta2s))
    ax, ratio = fig.axes
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--", ":"]
    assert legend_texts(ax) == ["RAdam", "untuned exponential", "untuned linear"]
    assert "effective warmup period" in ax.get_title()
    # below, T (1 - beta2): RAdam's 1.029 apart from the untuned ones' 0.99 to 1.0
    radam, expo, linear = (line.get_ydata() for line in ratio.lines)
    assert 1.028 < radam.min() and expo.max() <= 1.0 and linear.max() <= 1.0
    fig = plots.warmup_factors_figure(factor_curves(0.999, 100), 0.999)
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--", ":"]
    assert "0.999" in fig.axes[0].get_title()


def table(published: bool) -> Table:
    cells = {("AdamW/None", "0.1"): Cell([10.0, 12.0], published=(13.15, 0.75) if published
                                         else None),
             ("AdamW/Linear", "0.1"): Cell([9.0]), ("AdamW/None", "0.01"): Cell([9.0, 9.5]),
             ("AdamW/Linear", "0.01"): Cell([8.5])}
    return Table("t", ["AdamW/None", "AdamW/Linear"], ["0.1", "0.01"], cells, "lr",
                 "Optimizer / Warmup")


def test_error_bars_name_n_once_per_row_and_published_only_where_there_is_one() -> None:
    fig = plots.error_bars_figure(table(published=False))
    (ax,) = fig.axes
    assert legend_texts(ax) == ["α = 0.1", "α = 0.01"]  # no empty "published" entry
    assert [t.get_text() for t in ax.get_xticklabels()] == ["None\n(n=2)", "Linear\n(n=1)"]
    assert "— AdamW" in ax.get_title() and "± 1 std" in ax.get_title()
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([11.0, 9.0, 9.25, 8.5])
    published = plots.error_bars_figure(table(published=True)).axes[0]
    assert sorted(legend_texts(published)) == ["published", "α = 0.01", "α = 0.1"]
    from matplotlib.collections import PathCollection

    (ticks,) = [c for c in published.collections if isinstance(c, PathCollection)]
    assert np.nanmax(ticks.get_offsets()[:, 1]) == pytest.approx(13.15)


def test_accuracy_bands_say_what_they_are() -> None:
    # two seeds learn, one collapses to chance: the band reaches down to it
    seeds = [pd.DataFrame({"epoch": [1, 2, 3], "test_acc": acc})
             for acc in ([.8, .85, .9], [.8, .87, .88], [.1, .1, .1])]
    fig = plots.accuracy_curves_figure({"None": across_seeds(seeds, "epoch", "test_acc")},
                                       "g")
    ax = fig.axes[0]
    assert "min to max over seeds" in ax.get_title()
    assert ax.lines[0].get_ydata() == pytest.approx([170 / 3, 182 / 3, 188 / 3])
    (band,) = ax.collections
    low_high = band.get_paths()[0].vertices[:, 1]
    assert low_high.min() == pytest.approx(10) and low_high.max() == pytest.approx(90)
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_run_history_has_a_log_loss_axis_and_an_lr_axis_from_zero() -> None:
    steps = pd.DataFrame({"step": [1, 11, 21], "lr": [0.01] * 3, "loss": [2.3, 0.5, 0.01]})
    epochs = pd.DataFrame({"epoch": [1, 2], "train_acc": [.5, .7], "test_acc": [.6, .8]})
    fig = plots.run_history_figure(steps, epochs, "digits / run (complete)")
    ax_lr, ax_loss, ax_acc = fig.axes
    assert ax_loss.get_yscale() == "log" and ax_lr.get_ylim()[0] == 0
    assert fig._suptitle.get_text() == "digits / run (complete)"
    assert legend_texts(ax_acc) == ["train", "test", "max 80.00%"]


def test_report_titles_a_run_figure_with_its_status_word(tmp_path) -> None:
    from test_report import config, write_run

    from warmup_bench.report import collect_runs
    from warmup_bench.report.figures import figure_jobs
    from warmup_bench.report.tables import build_table

    write_run(tmp_path, config(opt="adamw", lr=0.1, seed=1), 0.9)
    runs = collect_runs(tmp_path, print)
    jobs = figure_jobs(build_table("t", runs, ("opt", "warmup"), "lr"), runs, tmp_path / "p",
                       run_figures="all")
    (title,) = [job[4] for job in jobs if job[0] == "run_history_figure"]
    assert title.endswith("(complete)") and "Status." not in title


def diagnostics_series(sharpness: bool) -> dict:
    x = [1, 2, 3, 11, 21]
    bands = {"relative_update": band(x, [0.4, 0.1, 0.05, 0.01, 0.01], 0.0),
             "r_abs_mean": band(x, [0.8, 0.6, 0.4, 0.2, 0.1], 0.0),
             "r_frac_above_half": band(x, [0.8, 0.7, 0.2, 0.0, 0.0], 0.0),
             "angular_update_mean": band(x, [0.2, 0.1, 0.05, 0.02, 0.01], 0.0),
             "sharpness_ratio": band(x, [1e3, -2.0, 0.5, 0.2, 0.1], 0.0) if sharpness
             else None, "update_norm": band(x, [1.0, 0.5, 0.2, 0.1, 0.1], 0.0)}
    return {"None": bands, "Linear": {**bands}}


def test_diagnostics_draw_only_what_was_logged_and_sharpness_against_its_threshold() -> None:
    fig = plots.diagnostics_figure(diagnostics_series(sharpness=False), "g")
    assert len(fig.axes) == 4  # no empty "not logged" panel for the sharpness
    assert not any("not logged" in t.get_text() for ax in fig.axes for t in ax.texts)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "mean $|r|$" in labels[1] and "share of coordinates" in labels[2]  # two panels
    fig = plots.diagnostics_figure(diagnostics_series(sharpness=True), "g")
    sharp = fig.axes[4]
    assert sharp.get_yscale() == "symlog" and "threshold" in sharp.get_ylabel()
    assert "threshold" in legend_texts(sharp)
    (threshold,) = [line for line in sharp.lines if line.get_label() == "threshold"]
    assert list(threshold.get_ydata()) == [1.0, 1.0]
    assert min(sharp.lines[0].get_ydata()) == -2.0  # a negative estimate is drawn
    assert "min to max over seeds" in fig._suptitle.get_text()


def test_every_figure_gives_a_warmup_one_colour_and_one_place() -> None:
    """Whatever order the runs came in, each figure lists the warmups as the tables do
    (None, RAdam, Expo, Linear, then the tuned ones) and draws each in its own colour."""
    labels = ["Linear", "Linear-100", "RAdam", "None", "Expo"]
    x = [1e-3, 1e-2]
    sensitivity = plots.lr_sensitivity_figure(
        {w: (np.array(x), np.ones(2), np.ones(2), np.ones(2), []) for w in labels}, "g", "y")
    accuracy = plots.accuracy_curves_figure({w: band([1, 2], [0.5, 0.6]) for w in labels}, "g")
    lrs = plots.lr_curves_figure({w: (np.array([1, 2]), np.array([0.1, 0.2]))
                                  for w in labels}, "g")
    colours = None
    for fig in (sensitivity, accuracy, lrs):
        ax = fig.axes[0]
        lines = [line for line in ax.lines if line.get_label() in labels]
        assert [line.get_label() for line in lines] == \
            ["None", "RAdam", "Expo", "Linear", "Linear-100"]
        these = [line.get_color() for line in lines]
        assert colours in (None, these) and len(set(these)) == 5
        colours = these


def test_accuracy_curves_zoom_on_the_second_half_at_the_reports_range() -> None:
    """A 40-100% axis hides the points a table tells apart: the second panel shows the
    second half of training on the report's own range (the same for every LR's figure)."""
    epochs = list(range(1, 11))
    curves = {"None": band(epochs, [0.4 + 0.05 * e for e in epochs], 0.0),
              "Linear": band(epochs, [0.45 + 0.05 * e for e in epochs], 0.0)}
    fig = plots.accuracy_curves_figure(curves, "g", zoom=(0.9, 0.95))
    full, late = fig.axes
    assert full.get_ylim()[0] < 50 and late.get_xlim()[0] == 5.0
    low, high = late.get_ylim()
    assert 89 < low < 90 and 95 < high < 96 and "zoomed" in late.get_title()
    assert len(plots.accuracy_curves_figure(curves, "g").axes) == 1  # no range: one panel


def test_update_size_title_states_the_iterations_shown() -> None:
    series = {"None": band([1, 11, 21, 31], [1.0, 0.5, 0.2, 0.1])}
    short = plots.update_size_figure(series, 199, "g").axes[0].get_title()
    assert "iterations 1-31 (of 2/(1-β2) = 199: the runs ended sooner)" in short
    full = plots.update_size_figure(series, 21, "g").axes[0]
    assert "the first 2/(1-β2) = 21 iterations" in full.get_title()
    assert list(full.lines[0].get_xdata()) == [1, 11, 21]
    # logged every 10 steps past the horizon: 191 is the last step shown, yet the runs
    # went on (the digits preset's 1,320 iterations, whose title once said they had not)
    steps = list(range(1, 1321, 10))
    longer = {"None": band(steps, [1.0 / s for s in steps])}
    title = plots.update_size_figure(longer, 199, "g").axes[0].get_title()
    assert "the first 2/(1-β2) = 199 iterations" in title and "sooner" not in title
