"""Every matplotlib figure of warmup-bench. Each `*_figure` function builds one figure
from numbers and returns it (tests read its lines, labels and legend); `save_figure`
writes it. Callers never draw on a figure they did not build."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, CI or Ray workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from .files import atomic_path  # noqa: E402
from .optim import WARMUPS
from .plot_phase import phase_diagram_figure  # noqa: F401  (a figure plots.draw builds)

FIGURE_FORMATS = ("png", "pdf", "svg")
STYLES = ("-", "--", ":", "-.")  # one per line where lines may coincide
BAND = "band: min to max over seeds"
STD_BAND = "band: ± 1 std over seeds"


def warmup_title(name: str) -> str:
    """A warmup's legend name, from its registry entry."""
    return WARMUPS[name].title if name in WARMUPS else name


def warmup_colour(name: str) -> str | None:
    """A warmup's colour in every figure, by its registry name (None: not a warmup's)."""
    return WARMUPS[name].colour if name in WARMUPS else None


def save_figure(fig: plt.Figure, path: Path, fmt: str) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _finish(ax: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Labels, a light grid and a legend: what every line plot here ends with."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)  # log axes' minor lines: there, but faint
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def warmup_periods_figure(beta2s: np.ndarray, periods: dict[str, np.ndarray]) -> plt.Figure:
    """T(omega) against beta2, both on log-type axes (the paper's 'warmup period' figure),
    and below it T(omega) (1 - beta2), where the nearly coinciding periods come apart:
    all of them are about 1 / (1 - beta2), RAdam's 3% longer."""
    fig, (ax, ratio) = plt.subplots(2, 1, figsize=(5.5, 5.5), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 2]})
    for (name, values), style in zip(periods.items(), STYLES):
        ax.plot(beta2s, values, style, label=warmup_title(name), lw=1.6,
                color=warmup_colour(name))
        ratio.plot(beta2s, values * (1 - beta2s), style, lw=1.6, color=warmup_colour(name))
    ax.set_xscale("logit")  # spreads 0.99 .. 0.9999 evenly, like log(1 - beta2)
    ratio.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ratio.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    _finish(ax, "", r"$\mathcal{T}(\omega)$ (iterations)",
            r"effective warmup period $\mathcal{T}(\omega) = \sum_t (1 - \omega_t)$")
    _finish(ratio, r"$\beta_2$", r"$\mathcal{T}(\omega) \cdot (1 - \beta_2)$", "")
    fig.tight_layout()
    return fig


def warmup_factors_figure(factors: dict[str, np.ndarray], beta2: float) -> plt.Figure:
    """omega_t against t for each schedule at one beta2."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (name, values), style in zip(factors.items(), STYLES):
        ax.plot(np.arange(1, len(values) + 1), values, style, label=warmup_title(name),
                color=warmup_colour(name))
    ax.set_ylim(0, 1.02)
    _finish(ax, "iteration $t$", r"warmup factor $\omega_t$",
            rf"warmup factor $\omega_t$ at $\beta_2 = {beta2:g}$")
    return fig


def _common_prefix(labels: list[str]) -> str:
    """The "AdamW/" every row label starts with (shown once, in the title)."""
    heads = {label.split("/", 1)[0] for label in labels}
    return f"{heads.pop()}/" if len(heads) == 1 and all("/" in x for x in labels) else ""


def error_bars_figure(table) -> plt.Figure:
    """The table's cells as bars grouped by column, error bars of one std over seeds, n
    under each row; a published value, where there is one, as a black tick."""
    prefix = _common_prefix(table.rows)
    rows = [r[len(prefix):] for r in table.rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) * len(table.columns)), 4))
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(rows))
    published_drawn = False
    for j, column in enumerate(table.columns):
        cells = [table.cells.get((r, column)) for r in table.rows]
        means = [c.mean if c and c.n else np.nan for c in cells]
        stds = [c.std if c and c.n > 1 else 0.0 for c in cells]
        offset = x + (j - (len(table.columns) - 1) / 2) * width
        ax.bar(offset, means, width, yerr=stds, capsize=3, label=table.column_label(column))
        published = [c.published[0] if c and c.published else np.nan for c in cells]
        if not np.isnan(published).all():
            ax.scatter(offset, published, marker="_", s=200, color="black", zorder=3,
                       label=None if published_drawn else "published")
            published_drawn = True
    counts = [sorted({table.cells[(r, c)].n for c in table.columns if (r, c) in table.cells})
              for r in table.rows]
    ticks = [f"{row}\n(n={'/'.join(map(str, n))})" for row, n in zip(rows, counts)]
    ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
    warmups = any("warmup" in settings for settings in table.row_settings.values())
    ax.set_xlabel((table.row_header or "row") + (" (Linear, Expo: the untuned warmups; "
                  "Linear-N, Expo-N: tuned over N iterations)" if warmups else ""),
                  fontsize=8)
    ax.set_ylabel(table.metric_title)
    ax.set_title(f"{table.title}" + (f" — {prefix[:-1]}" if prefix else "")
                 + "\nmean over n seeds, error bars ± 1 std", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def warmup_lines(curves: dict) -> list[tuple[str, object, str, str | None]]:
    """The items of `curves` (keyed by warmup label: "None", "Linear", "Linear-10k") in
    the tool's one warmup order (optim.WARMUPS': no warmup, RAdam, the untuned ones, the
    tuned ones by period), each with its line style and its warmup's own colour: every
    figure and table gives a warmup the same place and every figure the same colour."""
    from .optim import warmup_of_label

    found = {label: warmup_of_label(label) for label in curves}
    ordered = sorted(curves, key=lambda label: (*found[label][:2], label))
    return [(label, curves[label], STYLES[k % len(STYLES)],
             getattr(found[label][2], "colour", None)) for k, label in enumerate(ordered)]


def lr_curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                     log_x: bool = False, marks: tuple[tuple[float, str], ...] = ()
                     ) -> plt.Figure:
    """The LR the optimizer used against the iteration, one line per warmup; `marks`
    (iteration, what starts there) as dotted vertical lines, e.g. WSD's phases."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, (steps, lrs), style, colour in warmup_lines(curves):
        ax.plot(steps, lrs, style, label=label, color=colour)
    for x, text in marks:
        ax.axvline(x, color="grey", ls=":", lw=1)
        ax.annotate(text, (x, 0.02), xycoords=("data", "axes fraction"), rotation=90,
                    fontsize=7, color="grey", ha="right", va="bottom")
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(bottom=0)  # a constant LR reads as constant, not as noise around it
    _finish(ax, "iteration", "learning rate (warmup included)", title)
    return fig


def accuracy_curves_figure(curves: dict, title: str, by_loss: bool = False,
                           zoom: tuple[float, float] | None = None) -> plt.Figure:
    """Test accuracy (`by_loss`: the held-out loss) against the epoch, one line per
    warmup: the mean over seeds with a min-max band (a seed that collapsed shows as the
    band's edge, not as a symmetric spread around the mean). `curves` maps a warmup's
    label to its band over seeds. With `zoom` (the range of the report's values over the
    second half of training) a second panel shows that half on that range, the same in
    every figure of the report: the one or two points a table tells apart."""
    epochs = max((len(band.x) for band in curves.values()), default=0)
    panels = 2 if zoom is not None and epochs >= 4 else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    scale = 1.0 if by_loss else 100.0
    ylabel = "held-out loss (nats/char)" if by_loss else "test accuracy (%)"
    for ax in axes.flat:
        for label, band, style, colour in warmup_lines(curves):
            _band(ax, band._replace(mean=scale * band.mean, low=scale * band.low,
                                    high=scale * band.high), label, colour, style)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # measured once per epoch
    _finish(axes[0, 0], "epoch", ylabel, f"{title}\nmean over seeds, {BAND}")
    if panels == 2:
        low, high = scale * zoom[0], scale * zoom[1]
        pad = max(0.05 * (high - low), 1e-3 * scale)
        late = axes[0, 1]
        last = max(float(band.x.max()) for band in curves.values() if len(band.x))
        late.set_xlim(last / 2, last + 0.5)
        late.set_ylim(low - pad, high + pad)
        _finish(late, "epoch", ylabel, "the second half of training, zoomed\n(the same y "
                "range in every figure of this report)")
    fig.tight_layout()
    return fig


def run_history_figure(steps, epochs, title: str, by_loss: bool = False) -> plt.Figure:
    """One run: LR and loss (log scale) per logged step, accuracy per epoch with its
    maximum marked (`by_loss`, a text task's run: the held-out loss, its minimum)."""
    fig, (ax_lr, ax_loss, ax_acc) = plt.subplots(1, 3, figsize=(13, 3.6))
    if len(steps):
        ax_lr.plot(steps["step"], steps["lr"])
        ax_lr.set_ylim(bottom=0)
        ax_loss.plot(steps["step"], steps["loss"], lw=0.8)
        if (steps["loss"] > 0).all():
            ax_loss.set_yscale("log")  # what happens below 0.1 stays visible
    ax_lr.set(xlabel="iteration", ylabel="learning rate", title="LR used")
    ax_loss.set(xlabel="iteration", ylabel="training loss", title="loss")
    if len(epochs) and by_loss:
        ax_acc.plot(epochs["epoch"], epochs["train_loss"], label="train")
        ax_acc.plot(epochs["epoch"], epochs["test_loss"], label="held out")
        best = epochs["test_loss"].idxmin()
        ax_acc.scatter([epochs["epoch"][best]], [epochs["test_loss"][best]], color="red",
                       zorder=3, label=f"min {epochs['test_loss'][best]:.3f}")
        ax_acc.legend(fontsize=8)
        ax_acc.set(xlabel="epoch (evaluation)", ylabel="loss (nats/char)", title="loss")
    elif len(epochs):
        ax_acc.plot(epochs["epoch"], 100 * epochs["train_acc"], label="train")
        ax_acc.plot(epochs["epoch"], 100 * epochs["test_acc"], label="test")
        best = epochs["test_acc"].idxmax()
        ax_acc.scatter([epochs["epoch"][best]], [100 * epochs["test_acc"][best]], color="red",
                       zorder=3, label=f"max {100 * epochs['test_acc'][best]:.2f}%")
        ax_acc.legend(fontsize=8)
    if not by_loss:
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_lr, ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return fig


def _band(ax: plt.Axes, band, label: str, color=None, style: str = "-",
          centre: str = "mean"):
    """A line (the mean over seeds, or the median) with a min-max band."""
    (line,) = ax.plot(band.x, getattr(band, centre), style, label=label, color=color, lw=1.2)
    if len(band.x) and (band.high > band.low).any():
        ax.fill_between(band.x, band.low, band.high, alpha=0.15, color=line.get_color(), lw=0)
    return line.get_color()


# the diagnostics panels: (what a run logged, its axis label, log-scale y)
DIAGNOSTIC_PANELS = (
    ("relative_update", r"relative update $\|\Delta\theta\| / \|\theta\|$", True),
    ("r_abs_mean", r"Adam step ratio: mean $|r|$, $r = \hat m / (\sqrt{\hat v} + \epsilon)$",
     False),
    ("r_frac_above_half", r"Adam step ratio: share of coordinates with $|r| > 0.5$", False),
    ("angular_update_mean", "mean angular update of weight matrices (rad)", True),
    ("sharpness_ratio", "sharpness / its stability threshold\n(Adam: of $P^{-1}H$, 38/lr; "
     "median over seeds)", "symlog"),
)


def diagnostics_figure(series: dict[str, dict], title: str) -> plt.Figure:
    """Why warmup matters, per warmup (mean over seeds, band from min to max), against a
    log-scale step axis, one panel per quantity the runs logged: the relative update,
    Adam's step ratio |r| (its mean, and the share above 1/2), the angular update, and
    the sharpness as a ratio to its stability threshold (median over seeds; a line at 1:
    above it, the step is unstable; negative estimates on a symmetric-log axis)."""
    panels = [p for p in DIAGNOSTIC_PANELS if any(b.get(p[0]) is not None
                                                   for b in series.values())]
    columns = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    for ax, (key, ylabel, scale) in zip(axes.flat, panels):
        for label, bands, style, colour in warmup_lines(series):
            if bands.get(key) is not None:
                # the seeds' sharpness estimates can differ by decades and in sign: a
                # mean would be one outlier's, the median is what most seeds saw
                centre = "median" if key == "sharpness_ratio" and \
                    bands[key].median is not None else "mean"
                _band(ax, bands[key], label, colour, style, centre=centre)
        if key == "sharpness_ratio":
            ax.axhline(1.0, color="black", lw=0.8, ls=":", label="threshold")
            ax.set_yscale("symlog", linthresh=1e-2)
        elif scale:
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_ylabel(ylabel, fontsize=8)
        _finish(ax, "iteration", ax.get_ylabel(), "")
    fig.suptitle(f"{title}\nmean over seeds, {BAND}", fontsize=9)
    fig.tight_layout()
    return fig


def update_size_figure(series: dict, horizon: int, title: str) -> plt.Figure:
    """The update size ||delta theta|| over the first `horizon` = 2 / (1 - beta2)
    iterations (or as far as the runs logged), one line per warmup (mean over seeds, band
    from min to max): Ma & Yarats' argument that early Adam updates are large without
    warmup. The title says the iterations actually shown."""
    fig, ax = plt.subplots(figsize=(6, 4))
    shown, longer = 0, False  # the last logged step shown; whether any run went on
    for label, band, style, colour in warmup_lines(series):
        keep = band.x <= horizon
        shown = max(shown, int(band.x[keep].max()) if keep.any() else 0)
        longer = longer or bool((band.x > horizon).any())
        _band(ax, band._replace(x=band.x[keep], mean=band.mean[keep], low=band.low[keep],
                                high=band.high[keep]), label, colour, style)
    ax.set_yscale("log")
    # logged steps need not land on the horizon: the runs ended sooner only if none went on
    extent = f"the first 2/(1-β2) = {horizon:,} iterations" if shown >= horizon or longer \
        else f"iterations 1-{shown:,} (of 2/(1-β2) = {horizon:,}: the runs ended sooner)"
    _finish(ax, "iteration", r"update size $\|\Delta\theta_t\|_2$",
            f"{title} — {extent}\nmean over seeds, {BAND}")
    return fig


def lr_sensitivity_figure(curves: dict[str, tuple], title: str, ylabel: str) -> plt.Figure:
    """The metric against the LR (log axis), a line per warmup: mean over seeds with a
    min-max band; an LR where a run diverged is marked with an x at the top of the axis
    (DeepOBS's sensitivity plot: how much warmup flattens the curve)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    markers = []
    for label, (lrs, mean, low, high, diverged), style, colour in warmup_lines(curves):
        (line,) = ax.plot(lrs, mean, style, marker="o", ms=3, label=label, color=colour)
        ax.fill_between(lrs, low, high, alpha=0.15, color=line.get_color(), lw=0)
        markers.append((diverged, line.get_color()))
    ax.set_xscale("log")
    top = ax.get_ylim()[1]
    labelled = False
    for diverged, color in markers:
        if diverged:
            ax.scatter(diverged, [top] * len(diverged), marker="x", color=color, zorder=4,
                       clip_on=False, label=None if labelled else "diverged")
            labelled = True
    ax.set_ylim(top=top)
    _finish(ax, "learning rate α", ylabel, f"{title}\nmean over seeds, {BAND}")
    return fig


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


def draw(builder: str, path: Path, fmt: str, *args) -> Path:
    """Builds the figure `builder` names (a function of this module) and saves it: the
    unit of work a report hands to its worker processes."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    return save_figure(globals()[builder](*args), path, fmt)
