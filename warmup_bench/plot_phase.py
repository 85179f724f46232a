"""The phase diagram: a metric over target LR x warmup (by effective period), as a heatmap
with diverged cells hatched. Drawn through plots.draw, as every report figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402


def _text_colour(image, value: float) -> str:
    """Black on light cells (and on the grey of diverged ones), white on dark ones."""
    if not np.isfinite(value):
        return "black"
    red, green, blue, _ = image.cmap(image.norm(value))
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def phase_diagram_figure(grid: dict, title: str, metric_title: str,
                         annotate_up_to: int = 144, higher_is_better: bool = False,
                         decimals: int = 2) -> plt.Figure:
    """The metric over target LR (columns, log-spaced) x warmup (rows, by effective
    period T(omega), 0 = no warmup at the bottom; one row per warmup kind and period,
    even where two kinds' T nearly agree): colour = the mean over seeds (log scale when
    it spans more than a decade), diverged cells hatched in grey (a legend entry when
    there are any), cells not run left blank; the numbers in the cells, with the table's
    `decimals`, when there are at most `annotate_up_to`."""
    mean, diverged, runs = grid["mean"], grid["diverged"], grid["runs"]
    shape = mean.shape
    fig, ax = plt.subplots(figsize=(max(5.5, 0.75 * shape[1] + 2.5),
                                    max(3.5, 0.5 * shape[0] + 1.8)))
    finite = mean[np.isfinite(mean)]
    log = len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10
    limits = (finite.min(), finite.max()) if len(finite) else (0, 1)
    norm = LogNorm(*limits) if log else Normalize(*limits)
    image = ax.imshow(np.ma.masked_invalid(mean), origin="lower", aspect="auto",
                      # the better end of the scale bright, whichever way the metric goes
                      cmap="viridis" if higher_is_better else "viridis_r", norm=norm)
    bar = fig.colorbar(image, ax=ax, label=metric_title)
    if log:  # plain numbers ("60", not "6 x 10^1") on the log-scaled bar

        plain = FuncFormatter(lambda value, _: f"{value:g}")
        bar.ax.yaxis.set_major_formatter(plain)
        bar.ax.yaxis.set_minor_formatter(plain)
    all_diverged = (diverged > 0) & ~np.isfinite(mean)
    for i, j in zip(*np.nonzero(diverged)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="lightgrey" if
                                   all_diverged[i, j] else "none", hatch="xx",
                                   edgecolor="dimgrey", lw=0))
    if mean.size <= annotate_up_to:
        for i in range(shape[0]):
            for j in range(shape[1]):
                if not runs[i, j]:
                    continue
                text = f"{mean[i, j]:.{decimals}f}" if np.isfinite(mean[i, j]) else "div."
                if diverged[i, j] and np.isfinite(mean[i, j]):
                    text += f"\n{diverged[i, j]}/{runs[i, j]} div."
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color=_text_colour(image, mean[i, j]))
    ax.set_xticks(range(shape[1]), [f"{lr:g}" for lr in grid["lrs"]], rotation=45,
                  fontsize=8)
    nominal = grid.get("nominal", [False] * shape[0])
    ax.set_yticks(range(shape[0]), [
        f"{w}  {n:,.0f} (nominal length)" if guessed else
        f"{w}  T = {n:,.1f}" if n < 1000 else f"{w}  T = {n:,.0f}"
        for n, w, guessed in zip(grid["lengths"], grid["warmups"], nominal)], fontsize=8)
    ax.set_xlabel("target learning rate α (log-spaced)")
    ax.set_ylabel(r"warmup: effective period $\mathcal{T}(\omega) = \sum_t (1 - \omega_t)$",
                  fontsize=8)
    if diverged.any():
        ax.legend(handles=[Patch(facecolor="lightgrey", hatch="xx", edgecolor="dimgrey",
                                 label="diverged")], loc="upper left",
                  bbox_to_anchor=(0, -0.22), fontsize=8, frameon=False)
    ax.set_title(f"{title}\n{metric_title}: mean over seeds", fontsize=9)
    return fig
