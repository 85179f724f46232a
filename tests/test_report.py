"""`warmup-bench report` on hand-written run directories (in the real on-disk format)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from clirun import invoke
from runfolders import write_finished_run

from warmup_bench.experiments import load_experiment
from warmup_bench.optim import OPTIMIZERS
from warmup_bench.report import Cell, build_table, collect_runs, render
from warmup_bench.runs import RunDir
from warmup_bench.tasks import resolve_config

ROOT = Path(__file__).resolve().parents[1]
NO_WARMUP = ROOT / "experiments" / "cifar10-no-warmup.toml"
Z5 = [k / math.sqrt(2.5) for k in (-2, -1, 0, 1, 2)]  # sample mean 0, sample std 1


def write_run(root: Path, cfg, accuracy: float | None, status: str = "complete") -> Path:
    """A run whose best test accuracy was `accuracy` (at epoch 2) and whose last was a
    point less; None: a run that diverged in its first epoch."""
    accuracies = [] if accuracy is None else [0.5, accuracy, accuracy - 0.01]
    return write_finished_run(root, cfg, accuracies, status, top5=False)


def config(**overrides):
    return resolve_config("cifar10-resnet20", {"warmup": "none", **overrides})


@pytest.fixture
def fixture_runs(tmp_path) -> Path:
    root = tmp_path / "results"
    for seed, acc in zip((1, 2, 3), (0.90, 0.92, 0.91)):
        write_run(root, config(opt="adamw", lr=0.1, seed=seed), acc)
    write_run(root, config(opt="adamw", lr=0.1, seed=4), None, status="diverged")
    write_run(root, config(opt="sgd", lr=0.1, seed=1), 0.95)
    partial = write_run(root, config(opt="sgd", lr=0.01, seed=1), 0.5)
    (partial / "summary.json").unlink()  # a run killed before its first summary
    running = write_run(root, config(opt="sgd", lr=0.01, seed=2), 0.5, status="running")
    del running
    broken = root / "cifar10-resnet20" / "garbage"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    return root


def test_table_values_exact(fixture_runs) -> None:
    warnings = []
    runs = collect_runs(fixture_runs, warnings.append)
    assert len(runs) == 5 and len(warnings) == 3
    assert any("no readable summary.json" in w for w in warnings)
    assert any("status 'running'" in w for w in warnings)
    assert any("unreadable config.json" in w for w in warnings)
    table = build_table("t", runs, ("opt", "warmup"), "lr", "best")
    adamw = table.cells[("AdamW/None", "0.1")]
    assert adamw.values == pytest.approx([10.0, 8.0, 9.0]) and adamw.diverged == 1
    assert adamw.mean == pytest.approx(9.0) and adamw.std == pytest.approx(1.0)
    assert table.cells[("SGD/None", "0.1")].values == pytest.approx([5.0])
    final = build_table("t", runs, ("opt", "warmup"), "lr", "final")
    assert final.cells[("AdamW/None", "0.1")].mean == pytest.approx(10.0)
    assert render(table, "markdown", compare=False) == (  # the papers' order: SGD first
        "**t** — top-1 error (%) from best test accuracy\n\n"
        "| Optimizer / Warmup | α = 0.1 |\n|---|---:|\n"
        "| SGD/None | 5.00 (1) |\n| AdamW/None | 9.00 ± 1.00 (3) [1 diverged] |\n")
    latex = render(table, "latex", compare=False)
    assert r"9.00 $\pm$ 1.00 (3) [1 diverged]" in latex and latex.count(r"\\") == 3


@pytest.mark.slow
def test_cli_report_formats_and_plots(fixture_runs, tmp_path) -> None:
    result = invoke("report", str(fixture_runs), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "AdamW/None,0.1,9.0,1.0,3,1," in result.output
    assert result.output.count("warning: skipping") == 3
    out = tmp_path / "report"
    result = invoke("report", str(fixture_runs), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "9.00 ± 1.00 (3)" in (out / "report.md").read_text()
    pngs = sorted(p.relative_to(out / "plots").as_posix() for p in (out / "plots").rglob("*.png"))
    assert "errors_cifar10-resnet20.png" in pngs
    assert any(p.startswith("lr_") for p in pngs) and any(p.startswith("accuracy_") for p in pngs)
    # per-run figures by default only for the diverged run; all of them on request
    assert [p for p in pngs if p.startswith("runs/")] == [
        p for p in pngs if p.startswith("runs/") and "-s4-" in p] and \
        sum(p.startswith("runs/") for p in pngs) == 1
    assert all((out / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    every = invoke("report", str(fixture_runs), "--out", str(out), "--run-figures", "all")
    assert every.exit_code == 0, every.output
    assert len(list((out / "plots" / "runs").glob("*.png"))) == 5


def published_fixture(root: Path, shift_sigmas: float = 0.0) -> None:
    """Five runs per published cell whose mean and std are the published ones (shifted)."""
    grid = load_experiment(NO_WARMUP)
    for cfg in grid.configs():
        label = OPTIMIZERS[cfg.opt].label
        mean, std = grid.published[label][f"{cfg.lr:g}"]
        error = mean + std * Z5[cfg.seed - 1] + shift_sigmas * std
        write_run(root, cfg, 1.0 - error / 100.0)


def test_compare_reproduced_published_numbers_are_within_band(tmp_path) -> None:
    published_fixture(tmp_path)
    result = invoke("report", str(tmp_path), "--experiment", str(NO_WARMUP), "--compare",
                    "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in result.output.strip().splitlines()[1:]]
    assert len(rows) == 12 and all(r[-1] == "True" for r in rows)
    assert all(abs(float(r[8])) < 1e-9 for r in rows)  # difference 0


def test_compare_flags_shifted_numbers(tmp_path) -> None:
    published_fixture(tmp_path, shift_sigmas=3.0)  # 3 std off: outside 2 * sqrt(2) std
    result = invoke("report", str(tmp_path), "--experiment", str(NO_WARMUP), "--compare",
                    "--format", "markdown")
    assert result.exit_code == 0
    assert result.output.count("OUTSIDE 2σ") == 12 and "within 2σ" not in result.output
    table = invoke("report", str(tmp_path), "--experiment", str(NO_WARMUP), "--compare")
    assert table.exit_code == 0 and "published 8.23 ± 0.25" in table.output


def test_cells_without_published_value_are_marked(tmp_path) -> None:
    cell = Cell(values=[9.0, 10.0])
    assert cell.parts(compare=True) == ["9.50 ± 0.71 (2)", "no published value"]
    assert Cell(values=[8.0], published=(8.0, 0.1)).within_band is True
    assert statistics.fmean(Z5) == pytest.approx(0) and statistics.stdev(Z5) == pytest.approx(1)


@pytest.mark.parametrize(("args", "needle"), [
    (["--metric", "median"], "best, final"),
    (["--format", "html"], "table, markdown, csv, latex"),
    (["--compare"], "--compare needs --experiment"),
])
def test_report_bad_options(fixture_runs, args, needle) -> None:
    result = invoke("report", str(fixture_runs), *args)
    assert result.exit_code == 2 and needle in result.output


def test_report_on_empty_or_missing_folder(tmp_path) -> None:
    assert invoke("report", str(tmp_path / "nope")).exit_code == 2
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 2 and "no finished runs" in result.output


def test_groups_differing_in_another_setting_get_their_own_figures(tmp_path) -> None:
    """The SGD depth table: same opt and lr, different models -> one LR figure each."""
    root = tmp_path / "results"
    for model in ("resnet20", "resnet32"):
        for warmup in ("none", "linear"):
            period = {"warmup_period": 1000} if warmup == "linear" else {}
            write_run(root, config(opt="sgd", lr=0.1, model=model, warmup=warmup, **period),
                      0.92)
    out = tmp_path / "report"
    result = invoke("report", str(root), "--out", str(out))
    assert result.exit_code == 0, result.output
    lr_figures = sorted(p.name for p in (out / "plots").glob("lr_*.png"))
    assert lr_figures == ["lr_cifar10-resnet20_SGD_lr_0.1_model_resnet20.png",
                          "lr_cifar10-resnet20_SGD_lr_0.1_model_resnet32.png"]
    assert len(list((out / "plots").glob("accuracy_*.png"))) == 2


def test_run_folder_written_before_meta_json_is_still_reported(tmp_path) -> None:
    """Version 0.1.0 kept bookkeeping in config.json (no meta.json): the report must
    still read such a folder, group it by its settings alone, and find its bookkeeping."""
    cfg = config(opt="adamw", lr=0.01, seed=1, epochs=2)
    legacy = {**cfg.to_dict(), "run_name": RunDir.of(tmp_path, cfg).name,
              "versions": {"warmup_bench": "0.1.0", "torch": "2.13.0+cpu", "python": "3.11.7"},
              "device": "cpu", "device_name": "cpu", "started": "2026-11-01T10:00:00+0000",
              "resumed_at_epoch": None, "delay_schedule_iterations": 0,
              "iterations_per_epoch": 390}
    directory = RunDir.of(tmp_path, cfg).path
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(legacy, indent=2, sort_keys=True) + "\n")
    (directory / "summary.json").write_text(json.dumps({
        "status": "complete", "best_test_acc": 0.9106, "best_epoch": 2,
        "final_test_acc": 0.9106, "epochs_done": 2, "wall_seconds": 12.5, "error": None},
        indent=2, sort_keys=True))
    (directory / "epochs.csv").write_text(
        "epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n"
        "1,1.2,0.6,1.0,0.85,6.0,8000.0\n2,0.6,0.8,0.5,0.9106,6.0,8000.0\n")
    (directory / "steps.csv").write_text("step,epoch,lr,warmup_factor,loss\n" + "".join(
        f"{s},{1 + (s > 390)},5e-06,0.0005,2.3\n" for s in range(1, 781, 10)))
    # a run of the same cell written by this version groups with it
    write_finished_run(tmp_path, config(opt="adamw", lr=0.01, seed=2, epochs=2), [0.9094])
    assert RunDir(directory).read_meta()["iterations_per_epoch"] == 390
    result = invoke("report", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "AdamW/None,0.01,9.0,0.08485281374" in result.output  # errors 8.94 and 9.06
    assert ",2,0," in result.output and "warning" not in result.output


def test_report_out_refuses_a_folder_holding_another_experiments_report(fixture_runs,
                                                                         tmp_path) -> None:
    out = tmp_path / "report"
    first = invoke("report", str(fixture_runs), "--out", str(out))
    assert first.exit_code == 0, first.output
    again = invoke("report", str(fixture_runs), "--out", str(out))
    assert again.exit_code == 0, again.output  # the same report, redrawn
    before = sorted(p.name for p in out.rglob("*"))
    other = invoke("report", str(fixture_runs), "--experiment", str(NO_WARMUP), "--out", str(out))
    assert other.exit_code == 2 and "holds the report of another experiment" in other.output
    assert sorted(p.name for p in out.rglob("*")) == before
