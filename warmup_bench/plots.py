"""Every matplotlib figure of warmup-bench; each function draws one figure into a file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers, CI or Ray workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from .files import atomic_path  # noqa: E402

SCHEDULE_LABELS = {
    "radam": "RAdam",
    "untuned-exponential": "untuned exponential",
    "untuned-linear": "untuned linear",
}
FIGURE_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: plt.Figure, path: Path, fmt: str) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_warmup_periods(beta2s: np.ndarray, periods: dict[str, np.ndarray], path: Path,
                        fmt: str = "png") -> Path:
    """T(omega) against beta2, both on log-type axes (the paper's 'warmup period' figure)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in periods.items():
        ax.plot(beta2s, values, label=SCHEDULE_LABELS.get(name, name))
    ax.set_xscale("logit")  # spreads 0.99 .. 0.9999 evenly, like log(1 - beta2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_xlabel(r"$\beta_2$")
    ax.set_ylabel(r"effective warmup period $\mathcal{T}(\omega)$")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(fig, path, fmt)


def plot_warmup_factors(factors: dict[str, np.ndarray], beta2: float, path: Path,
                        fmt: str = "png") -> Path:
    """omega_t against t for each schedule at one beta2."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in factors.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=SCHEDULE_LABELS.get(name, name))
    ax.set_xlabel("iteration $t$")
    ax.set_ylabel(r"warmup factor $\omega_t$")
    ax.set_title(rf"$\beta_2 = {beta2:g}$")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path, fmt)
