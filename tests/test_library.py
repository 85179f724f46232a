"""The library under the CLI: a grid's sweep (plan_grid, run_grid) and a report
(make_report) called as a notebook would, and the metric registry every reader of a
metric shares."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from clirun import invoke

from warmup_bench import plots
from warmup_bench.config import ConfigError
from warmup_bench.execution import RunOptions
from warmup_bench.metrics import FORMS, METRICS, parse_metric
from warmup_bench.optim import OPTIMIZERS
from warmup_bench.report import make_report
from warmup_bench.report.figures import analyse, phase_grid
from warmup_bench.run_grid import Backend, plan_grid, run_grid
from warmup_bench.runs import RunDir, Status
from warmup_bench.tasks import resolve_config

GRID = """title = "two digits runs"
task = "digits"
seeds = [1, 2]
pack = "2"
[fixed]
epochs = 2
train_samples = 256
beta2 = 0.99
warmup = "untuned-linear"
lr = 0.01
[table]
rows = ["opt", "warmup"]
columns = "lr"
metric = "final"
[published]
"AdamW/Linear" = { "0.01" = [10.0, 1.0] }
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, Path]:
    """GRID swept through the library, one run per process (--pack off)."""
    folder = tmp_path_factory.mktemp("grid")
    grid = folder / "grid.toml"
    grid.write_text(GRID)
    options = RunOptions(on_note=None, threads=1)
    plan = plan_grid(grid, folder / "out", options, pack="off")
    assert (len(plan.configs), len(plan.done), len(plan.todo)) == (2, 0, 2)
    ended = []
    outcome = run_grid(plan, on_result=ended.append, on_note=lambda _: None)
    assert sorted(r.run for r in ended) == sorted(RunDir.of(folder / "out", c).name
                                                  for c in plan.configs)
    assert outcome.final == {Status.COMPLETE: 2} and outcome.failed == 0
    return grid, folder / "out"


def test_a_planned_grid_knows_what_is_done_and_its_parsed_settings(swept) -> None:
    grid, out = swept
    again = plan_grid(grid, out, RunOptions(on_note=None))
    assert (len(again.done), len(again.todo)) == (2, 0)
    # the grid's pack, metric and [slurm] were parsed once, into typed fields
    assert again.pack == 2 and again.grid.pack == 2
    assert again.grid.metric.name == "final"
    assert again.grid.slurm.time_limit_min == 60
    assert again.describe_packs().startswith("--pack 2: 0 runs to train")


@pytest.mark.parametrize(("change", "needle"), [
    ({"backend": Backend("slurm")}, "the grid's pack 2 needs --backend local or ray"),
    ({"backend": Backend("local", jobs=0)}, "--jobs 0 must be at least 1"),
    ({"backend": Backend("cloud")}, "--backend 'cloud' is not valid"),
    ({"devices": " , "}, "--devices names no device"),
    ({"epochs": 0}, "--epochs 0 must be at least 1"),
    ({"pack": "two"}, "--pack 'two' is not"),
])
def test_a_bad_plan_is_one_config_error(swept, change, needle) -> None:
    grid, out = swept
    with pytest.raises(ConfigError, match=needle):
        plan_grid(grid, out, RunOptions(on_note=None), **change)


def test_make_report_lays_out_the_grid_with_its_metric(swept) -> None:
    from warmup_bench.experiments import load_experiment

    grid, out = swept
    report = make_report(out, load_experiment(grid), compare=True, warn=pytest.fail)
    assert report.metric.name == "final" and report.compare
    [(table, runs)] = report.tables
    assert len(runs) == 2
    [cell] = list(table.cells.values())
    assert cell.published == (10.0, 1.0)
    errors = [100 * (1 - r.summary.final_test_acc) for r in runs]
    assert cell.mean == pytest.approx(sum(errors) / 2)
    notes = []
    timed = make_report(out, load_experiment(grid), "epochs-to:50", compare=True,
                        warn=pytest.fail, note=notes.append)
    assert not timed.compare and "no published numbers of epochs-to:50" in notes[0]
    with pytest.raises(ConfigError, match="--compare needs --experiment"):
        make_report(out, None, compare=True)


def test_every_registered_metric_parses_and_is_in_the_help() -> None:
    shown = " ".join(invoke("report", "--help").output.split())
    for form, entry in zip(FORMS, METRICS.values()):
        assert form in shown
        metric = parse_metric(form.replace(":T", ":50"))
        assert metric.name.split(":")[0] == entry.name
        assert metric.time_to_target == entry.takes_target
        if entry.takes_target:
            assert "50% accuracy" in metric.title and metric.target == 50
            loss = dataclasses.replace(metric, judged_by="loss")
            assert "loss 50" in loss.title


def test_a_metric_where_higher_is_better_flips_the_phase_diagrams_colours(swept) -> None:
    from warmup_bench.report import collect_runs

    _, out = swept
    runs = collect_runs(out, pytest.fail)
    found = analyse(runs, parse_metric("best"))
    grid = phase_grid(found)
    assert not math.isnan(grid["mean"][0, 0])
    lower = plots.phase_diagram_figure(grid, "t", "error")
    higher = plots.phase_diagram_figure(grid, "t", "accuracy", higher_is_better=True)
    assert lower.axes[0].images[0].get_cmap().name == "viridis_r"
    assert higher.axes[0].images[0].get_cmap().name == "viridis"


def small_params() -> list:
    import torch

    return [torch.zeros(3, requires_grad=True)]


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_each_optimizer_gets_exactly_the_settings_that_feed_its_keywords(opt) -> None:
    """Every setting that feeds a keyword (config's `feeds`) reaches the optimizers that
    read it, at its value, and no other."""
    from warmup_bench.config import FEEDS

    entry = OPTIMIZERS[opt]
    values = {"lr": 0.0123, "weight_decay": 0.0456, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6,
              "momentum": 0.7}
    wanted = {k: v for k, v in values.items() if k in entry.reads or k in ("lr", "weight_decay")}
    constant = {"schedule": "constant"} if entry.schedule_free else {}
    cfg = resolve_config("digits", {"opt": opt, "warmup": "none", **constant, **wanted})
    defaults = entry.build(small_params(), cfg).defaults
    for name, (keyword, position) in FEEDS.items():
        got = defaults.get(keyword)
        if name in wanted:
            assert (got if position is None else got[position]) == values[name], name
        elif keyword in defaults and name in values:  # the optimizer's own default, not ours
            assert (got if position is None else got[position]) != values[name], name


def test_a_new_optimizer_hyperparameter_is_one_declaration(monkeypatch) -> None:
    """A setting feeding `amsgrad` (as a new `setting(..., feeds="amsgrad",
    conditional=True)` declares it) is read by the optimizers whose factory takes that
    keyword, unless an entry fixes it, and reaches them: optim.py is not touched."""
    from types import SimpleNamespace

    from warmup_bench import optim

    monkeypatch.setattr(optim, "FEEDS", {**optim.FEEDS, "amsgrad": ("amsgrad", None)})
    monkeypatch.setattr(optim, "CONDITIONAL", (*optim.CONDITIONAL, "amsgrad"))
    readers = {name for name, entry in optim.OPTIMIZERS.items() if "amsgrad" in entry.reads}
    assert readers == {"adam", "adamw", "gi-adamw"}  # amsgradw fixes it; SGD has none
    cfg = SimpleNamespace(**resolve_config("digits", {"opt": "adamw"}).to_dict(), amsgrad=True)
    assert optim.OPTIMIZERS["adamw"].build(small_params(), cfg).defaults["amsgrad"] is True
    cfg.amsgrad = False
    assert optim.OPTIMIZERS["adamw"].build(small_params(), cfg).defaults["amsgrad"] is False
    assert optim.OPTIMIZERS["amsgradw"].build(small_params(), cfg).defaults["amsgrad"] is True
    assert "amsgrad" not in optim.OPTIMIZERS["sgd"].build(small_params(), cfg).defaults
