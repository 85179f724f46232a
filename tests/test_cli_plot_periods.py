"""`warmup-bench plot-periods` and the CLI's top level, through Typer's runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from clirun import invoke

from warmup_bench import __version__
from warmup_bench.warmup import factor_curves, period_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "plot-periods" in result.output
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"warmup-bench {__version__}"


def test_help_lists_commands_in_the_readmes_order() -> None:
    shown = invoke("--help").output
    order = ["train", "sweep", "report", "predict", "export", "plot-periods", "list", "data"]
    at = [shown.index(f" {name} ") for name in order]
    assert at == sorted(at), shown


def test_train_help_fits_80_columns_in_panels_with_every_option_whole() -> None:
    """At 80 columns: every line fits, every option's name appears whole (no "…"), options
    sit in their panels, flags carry no type placeholder, and the help says that the
    hyperparameters' defaults are the task preset's."""
    from warmup_bench.cli_support import HELP_PANELS

    shown = invoke("train", "--help", env={"COLUMNS": "80"}).output
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in shown
    assert len(lines) < 120 and "<bool>" not in shown
    assert "take the --task preset's values" in " ".join(shown.split())
    for title, names in HELP_PANELS.items():
        panel = shown[shown.index(f"─ {title} "):]
        panel = panel[:panel.index("╰")]
        for name in names:
            flag = f"--{name.replace('_', '-')}"
            assert flag in panel or f"--[no-]{flag[2:]}" in panel, (title, flag)
    assert "--[no-]delay-schedule" in shown and "--cooldown-fraction X" in shown


def test_plot_periods_writes_figures_and_csvs_matching_the_library(tmp_path) -> None:
    out = tmp_path / "plots"
    result = invoke("plot-periods", "--points", "6", "--steps", "250", "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in ("warmup_periods.png", "warmup_factors.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert str(out / name) in result.output
    periods = pd.read_csv(out / "warmup_periods.csv")
    assert list(periods.columns) == ["beta2", "radam", "untuned-exponential", "untuned-linear"]
    assert periods["beta2"].iloc[0] == pytest.approx(0.99)
    assert periods["beta2"].iloc[-1] == pytest.approx(0.9999)
    expected = period_curves(periods["beta2"].to_numpy())
    for name, values in expected.items():
        np.testing.assert_allclose(periods[name], values, rtol=1e-15)
    factors = pd.read_csv(out / "warmup_factors.csv")
    assert factors["t"].tolist() == list(range(1, 251))
    for name, values in factor_curves(0.999, 250).items():
        np.testing.assert_allclose(factors[name], values, rtol=1e-15)


def test_plot_periods_svg(tmp_path) -> None:
    result = invoke("plot-periods", "--points", "3", "--steps", "10", "--format", "svg", "--out",
                    str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "warmup_periods.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--beta2-min", "0.5"], "0.5"),
        (["--beta2-max", "1.0"], "1.0"),
        (["--beta2-min", "0.999", "--beta2-max", "0.99"], "smaller"),
        (["--steps", "0"], "--steps 0"),
        (["--beta2", "0.6"], "(0.6, 1)"),
        (["--format", "jpg"], "png, pdf, svg"),
    ],
)
def test_invalid_ranges_exit_2_with_one_line_and_write_nothing(tmp_path, args, needle) -> None:
    out = tmp_path / "never"
    result = invoke("plot-periods", *args, "--out", str(out))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0]
    assert not out.exists()
