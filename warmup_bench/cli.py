"""The `warmup-bench` command line: parses, calls the library, prints with rich."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pandas as pd
import typer
from rich.console import Console

from . import __version__

app = typer.Typer(
    help="Reproduce and extend the published benchmarks on learning-rate warmup.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(message: str) -> NoReturn:
    """A user mistake: one line on stderr, exit code 2, no traceback."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def check_choice(option: str, value: str, choices) -> str:
    if value not in choices:
        fail(f"{option} {value!r} is not valid; choose from: {', '.join(choices)}.")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"warmup-bench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """warmup-bench: learning-rate warmup benchmarks for adaptive optimizers."""


@app.command("plot-periods")
def plot_periods(
    beta2_min: float = typer.Option(0.99, help="Smallest beta2 of the period figure."),
    beta2_max: float = typer.Option(0.9999, help="Largest beta2 of the period figure."),
    points: int = typer.Option(60, help="Number of beta2 values in the period figure."),
    beta2: float = typer.Option(0.999, help="beta2 of the warmup-factor figure."),
    steps: int = typer.Option(3000, help="Iterations shown in the warmup-factor figure."),
    out: Path = typer.Option(Path("results/plots"), help="Output folder."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png, pdf or svg."),
) -> None:
    """Draw the effective-warmup-period figures (and CSVs of the plotted numbers)."""
    from . import plots
    from .warmup import beta2_grid, factor_curves, period_curves

    for name, value in (("--beta2-min", beta2_min), ("--beta2-max", beta2_max),
                        ("--beta2", beta2)):
        if not 0.6 < value < 1.0:
            fail(f"{name} {value} is outside the valid range (0.6, 1).")
    if beta2_min >= beta2_max:
        fail(f"--beta2-min {beta2_min} must be smaller than --beta2-max {beta2_max}.")
    if steps < 1:
        fail(f"--steps {steps} must be at least 1.")
    if points < 2:
        fail(f"--points {points} must be at least 2.")
    check_choice("--format", fmt, plots.FIGURE_FORMATS)

    beta2s = beta2_grid(beta2_min, beta2_max, points)
    periods = period_curves(beta2s)
    factors = factor_curves(beta2, steps)
    written = [
        plots.plot_warmup_periods(beta2s, periods, out / f"warmup_periods.{fmt}", fmt),
        plots.plot_warmup_factors(factors, beta2, out / f"warmup_factors.{fmt}", fmt),
        _write_csv(pd.DataFrame({"beta2": beta2s, **periods}), out / "warmup_periods.csv"),
        _write_csv(pd.DataFrame({"t": range(1, steps + 1), **factors}),
                   out / "warmup_factors.csv"),
    ]
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    from .files import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.17g")
    return path
