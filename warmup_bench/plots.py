"""Every matplotlib figure of warmup-bench; each function draws one figure into a file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, CI or Ray workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from .files import atomic_path  # noqa: E402
from .optim import WARMUPS  # noqa: E402


def warmup_title(name: str) -> str:
    """A warmup's legend name, from its registry entry."""
    return WARMUPS[name].title if name in WARMUPS else name

FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: plt.Figure, path: Path, fmt: str) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def finish_line_plot(fig: plt.Figure, ax: plt.Axes, xlabel: str, ylabel: str, title: str,
                     path: Path, fmt: str) -> Path:
    """Labels, a light grid and a legend: what every line plot here ends with."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, fmt)


def plot_warmup_periods(beta2s: np.ndarray, periods: dict[str, np.ndarray], path: Path,
                        fmt: str = "png") -> Path:
    """T(omega) against beta2, both on log-type axes (the paper's 'warmup period' figure)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in periods.items():
        ax.plot(beta2s, values, label=warmup_title(name))
    ax.set_xscale("logit")  # spreads 0.99 .. 0.9999 evenly, like log(1 - beta2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    return finish_line_plot(fig, ax, r"$\beta_2$", r"effective warmup period $\mathcal{T}(\omega)$",
                            "", path, fmt)


def plot_warmup_factors(factors: dict[str, np.ndarray], beta2: float, path: Path,
                        fmt: str = "png") -> Path:
    """omega_t against t for each schedule at one beta2."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in factors.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=warmup_title(name))
    ax.set_ylim(0, 1.02)
    return finish_line_plot(fig, ax, "iteration $t$", r"warmup factor $\omega_t$",
                            rf"$\beta_2 = {beta2:g}$", path, fmt)


def plot_error_bars(table, path: Path, fmt: str = "png") -> Path:
    """Top-1 error per row, bars grouped by column, error bars of one std (the papers'
    bar charts); a published value, where there is one, is drawn as a black tick."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(table.rows) * len(table.columns)), 4))
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table.rows))
    for j, column in enumerate(table.columns):
        cells = [table.cells.get((r, column)) for r in table.rows]
        means = [c.mean if c and c.n else np.nan for c in cells]
        stds = [c.std if c and c.n else 0.0 for c in cells]
        offset = x + (j - (len(table.columns) - 1) / 2) * width
        ax.bar(offset, means, width, yerr=stds, capsize=3, label=f"{table.column_key} {column}")
        published = [c.published[0] if c and c.published else np.nan for c in cells]
        ax.scatter(offset, published, marker="_", s=200, color="black", zorder=3,
                   label="published" if j == 0 else None)
    ax.set_xticks(x, table.rows, rotation=30, ha="right")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(table.title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, fmt)


def plot_lr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path,
                   fmt: str = "png", log_x: bool = False) -> Path:
    """The LR the optimizer used against the iteration, one line per warmup."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (steps, lrs) in curves.items():
        ax.plot(steps, lrs, label=label)
    if log_x:
        ax.set_xscale("log")
    return finish_line_plot(fig, ax, "iteration", "learning rate", title, path, fmt)


def plot_accuracy_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                         title: str, path: Path, fmt: str = "png") -> Path:
    """Test accuracy against the epoch, one line per warmup: mean over seeds, +-1 std band."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (epochs, mean, std) in curves.items():
        (line,) = ax.plot(epochs, 100 * mean, label=label)
        ax.fill_between(epochs, 100 * (mean - std), 100 * (mean + std), alpha=0.2,
                        color=line.get_color())
    return finish_line_plot(fig, ax, "epoch", "test accuracy (%)", title, path, fmt)


def plot_run_history(steps, epochs, title: str, path: Path, fmt: str = "png") -> Path:
    """One run: LR and loss per logged step, accuracy per epoch with its maximum marked."""
    fig, (ax_lr, ax_loss, ax_acc) = plt.subplots(1, 3, figsize=(13, 3.6))
    if len(steps):
        ax_lr.plot(steps["step"], steps["lr"])
        ax_loss.plot(steps["step"], steps["loss"], lw=0.8)
    ax_lr.set(xlabel="iteration", ylabel="learning rate", title="LR used")
    ax_loss.set(xlabel="iteration", ylabel="training loss", title="loss")
    if len(epochs):
        ax_acc.plot(epochs["epoch"], 100 * epochs["train_acc"], label="train")
        ax_acc.plot(epochs["epoch"], 100 * epochs["test_acc"], label="test")
        best = epochs["test_acc"].idxmax()
        ax_acc.scatter([epochs["epoch"][best]], [100 * epochs["test_acc"][best]], color="red",
                       zorder=3, label=f"max {100 * epochs['test_acc'][best]:.2f}%")
        ax_acc.legend(fontsize=8)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_lr, ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, fmt)


def _band(ax: plt.Axes, band, label: str, color=None, style: str = "-", log: bool = True):
    """A mean line with a min-max band; on a log axis, values <= 0 (a negative eigenvalue
    estimate) are left out rather than drawn to minus infinity."""
    def shown(values):
        return np.where(values > 0, values, np.nan) if log else values

    (line,) = ax.plot(band.x, shown(band.mean), style, label=label, color=color, lw=1.2)
    if len(band.x) and (band.high > band.low).any():
        ax.fill_between(band.x, shown(band.low), shown(band.high), alpha=0.15,
                        color=line.get_color(), lw=0)
    return line.get_color()


def plot_diagnostics(series: dict[str, dict], title: str, path: Path, fmt: str = "png") -> Path:
    """Why warmup matters, per warmup (mean over seeds, band from min to max), against a
    log-scale step axis: the relative update size, Adam's per-coordinate step ratio |r|,
    the angular update of the weight matrices, and the sharpness against its stability
    threshold (dashed) where it was estimated."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (ax_rel, ax_r), (ax_ang, ax_sharp) = axes
    for label, bands in series.items():
        color = None
        if bands.get("relative_update") is not None:
            color = _band(ax_rel, bands["relative_update"], label)
        if bands.get("r_abs_mean") is not None:
            color = _band(ax_r, bands["r_abs_mean"], f"{label}: mean |r|", color, log=False)
            if bands.get("r_frac_above_half") is not None:
                _band(ax_r, bands["r_frac_above_half"], f"{label}: share |r| > 0.5", color, "--",
                      log=False)
        if bands.get("angular_update_mean") is not None:
            _band(ax_ang, bands["angular_update_mean"], label, color)
        sharp = bands.get("preconditioned_sharpness") or bands.get("sharpness")
        if sharp is not None:
            color = _band(ax_sharp, sharp, f"{label}: sharpness", color)
            if bands.get("sharpness_threshold") is not None:
                _band(ax_sharp, bands["sharpness_threshold"], f"{label}: threshold", color, "--")
    panels = ((ax_rel, r"relative update $\|\Delta\theta\| / \|\theta\|$", True),
              (ax_r, r"Adam step ratio $|r| = |\hat m| / (\sqrt{\hat v} + \epsilon)$", False),
              (ax_ang, "mean angular update of weight matrices (rad)", True),
              (ax_sharp, "top Hessian eigenvalue (Adam: of $P^{-1}H$) vs threshold", True))
    for ax, ylabel, log_y in panels:
        ax.set_xscale("log")
        if log_y and ax.lines:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, fmt)


def plot_update_size(series: dict, horizon: int, title: str, path: Path,
                     fmt: str = "png") -> Path:
    """The update size ||delta theta|| over the first `horizon` = 2 / (1 - beta2)
    iterations, one line per warmup (mean over seeds, band from min to max): Ma & Yarats'
    argument that early Adam updates are large without warmup."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, band in series.items():
        keep = band.x <= horizon
        _band(ax, band._replace(x=band.x[keep], mean=band.mean[keep], low=band.low[keep],
                                high=band.high[keep]), label)
    ax.set_yscale("log")
    return finish_line_plot(fig, ax, "iteration",
                            r"update size $\|\Delta\theta_t\|_2$ (mean, min-max over seeds)",
                            f"{title} — first 2/(1-β2) = {horizon} iterations", path, fmt)


def predictions_figure(images: np.ndarray, labels: list[int], predicted: list[int],
                       names: tuple[str, ...], title: str) -> plt.Figure:
    """A grid of test images titled with the prediction: green when right, red with the
    true label when wrong (the ViT write-up's figure). One panel per image."""
    count = len(images)
    side = int(np.ceil(np.sqrt(count)))
    fig, axes = plt.subplots(side, side, figsize=(1.9 * side, 2.1 * side), squeeze=False)
    for ax in axes.flat[count:]:
        fig.delaxes(ax)
    for ax, image, label, guess in zip(axes.flat, images, labels, predicted):
        pixels = image.transpose(1, 2, 0)
        ax.imshow(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, cmap="gray")
        right = label == guess
        # class names are data: drawn as plain text, never as mathtext ($...$)
        ax.set_title(names[guess] if right else f"{names[guess]} (true {names[label]})",
                     color="green" if right else "red", fontsize=8, parse_math=False)
        ax.axis("off")
    fig.suptitle(title, fontsize=9, parse_math=False)
    fig.tight_layout()
    return fig
