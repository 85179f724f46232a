"""Integrity, round three: a grid cannot choose what a cluster's tasks run; nothing is
written (or read) through a symbolic link in a run folder; a run folder whose files
disagree with each other is not believed; and the hangs and tracebacks of hostile input
are one line each. Each case is a real run folder (or grid file) damaged as the hostile
pass damaged it."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from clirun import invoke
from test_bad_inputs import assert_one_line_error, snapshot

from warmup_bench.report import collect

TRAIN = ["train", "--task", "digits", "--train-samples", "320", "--no-progress",
         "--warmup", "none", "--epochs", "2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A complete 2-epoch digits run with its saved model (10 iterations an epoch)."""
    out = tmp_path_factory.mktemp("finished")
    result = invoke(*TRAIN, "--save-model", "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    (folder,) = (out / "digits").iterdir()
    return folder


def copy_of(folder: Path, tmp_path: Path, status: str | None = None) -> Path:
    """The run copied under tmp_path/out (its summary's status changed to `status`)."""
    copy = tmp_path / "out" / "digits" / folder.name
    shutil.copytree(folder, copy)
    if status is not None:
        edit_json(copy / "summary.json", status=status)
    return copy


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ---- 1. a grid's [slurm] table cannot choose what the tasks run ------------------------

SLURM_GRID = 'task = "digits"\n[fixed]\nepochs = 1\n[slurm]\nextra = {extra}\n'


@pytest.mark.parametrize("extra", ['{export = "ALL,PYTHONPATH=."}', '{chdir = "/tmp"}',
                                   '{container = "evil.sqsh"}', '{expo = "ALL"}',
                                   '{task_prolog = "x.sh"}'])
@pytest.mark.parametrize("command", ["sweep", "report"])
def test_a_grids_slurm_options_that_choose_the_code_need_consent(tmp_path, extra,
                                                                  command) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(SLURM_GRID.format(extra=extra))
    (tmp_path / "out").mkdir()
    args = ["sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out")] \
        if command == "sweep" else ["report", str(tmp_path / "out"), "--experiment", str(grid)]
    before = snapshot(tmp_path)
    result = invoke(*args, clean=True)
    assert_one_line_error(result, 2, "which can choose what the Slurm tasks run")
    assert "--allow-plugins" in result.stderr and "--slurm-extra" in result.stderr
    assert snapshot(tmp_path) == before
    if command == "sweep":  # the user's consent lets the grid set it
        allowed = invoke(*args, "--allow-plugins", clean=True)
        assert allowed.exit_code == 0, allowed.output


def test_a_grid_may_set_where_its_tasks_run(tmp_path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(SLURM_GRID.format(extra='{constraint = "a100", gres = "gpu:1", '
                                            'exclusive = true}'))
    result = invoke("sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out"), clean=True)
    assert result.exit_code == 0, result.output


# ---- 2. nothing written through a link in a run folder --------------------------------

def test_a_lock_that_links_to_a_foreign_file_is_refused_untouched(tmp_path, finished) -> None:
    folder = copy_of(finished, tmp_path, status="interrupted")
    foreign = tmp_path / "precious.txt"
    foreign.write_text("the user's own file\n")
    (folder / "lock").unlink(missing_ok=True)
    (folder / "lock").symlink_to(foreign)
    before = snapshot(tmp_path)
    result = invoke(*TRAIN, "--resume", "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "lock is not a lock file (a symbolic or hard link")
    assert foreign.read_text() == "the user's own file\n" and snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["steps.csv", "epochs.csv", "summary.json", "checkpoint.pt",
                                  "tensorboard"])
def test_a_run_file_that_links_elsewhere_is_refused_untouched(tmp_path, finished,
                                                               name) -> None:
    folder = copy_of(finished, tmp_path, status="interrupted")
    target = tmp_path / f"foreign-{name}"
    if name == "tensorboard":
        target.mkdir()
    else:
        shutil.copy(folder / name, target)
        (folder / name).unlink()
    (folder / name).symlink_to(target)
    before = snapshot(tmp_path, skip=("lock",))  # the lock's pid changes
    result = invoke(*TRAIN, "--resume", "--out", str(tmp_path / "out"), clean=True)
    if name == "summary.json":  # unreadable as a summary: the run is not believed finished
        assert result.exit_code == 2 and "symbolic link" in result.stderr
    else:
        assert_one_line_error(result, 2, f"{name} is a symbolic link")
    assert snapshot(tmp_path, skip=("lock",)) == before  # the target's files included
    if target.is_dir():
        assert not any(target.iterdir())  # no event file written through the link


def test_a_run_folder_that_is_a_link_is_skipped_said_and_refused(tmp_path, finished) -> None:
    elsewhere = copy_of(finished, tmp_path / "elsewhere")
    results = tmp_path / "results"
    (results / "digits").mkdir(parents=True)
    (results / "digits" / finished.name).symlink_to(elsewhere)
    copy_of(finished, tmp_path / "other")  # a real run beside it, to report
    shutil.copytree(tmp_path / "other" / "out" / "digits", results / "digits2")
    report = invoke("report", str(results), clean=True)
    assert report.exit_code == 0, report.output
    assert report.stderr.count("warning: skipping") == 1
    assert f"skipping {results / 'digits' / finished.name}: a symbolic link" in report.stderr
    resume = invoke(*TRAIN, "--resume", "--out", str(results), clean=True)
    assert_one_line_error(resume, 2, "is a symbolic link")
    predict = invoke("predict", str(results / "digits" / finished.name),
                       "--out", str(tmp_path / "p.png"), clean=True)
    assert_one_line_error(predict, 2, "is a symbolic link")
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("name", ["lock", "steps.csv"])
def test_a_hard_link_that_would_be_written_through_is_refused(tmp_path, finished,
                                                              name) -> None:
    folder = copy_of(finished, tmp_path, status="interrupted")
    foreign = tmp_path / "precious.txt"
    foreign.write_text("the user's own file\n")
    (folder / name).unlink(missing_ok=True)
    os.link(foreign, folder / name)
    result = invoke(*TRAIN, "--resume", "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "hard link")
    assert foreign.read_text() == "the user's own file\n"


def test_report_out_refuses_a_plots_folder_that_is_a_link(tmp_path, finished) -> None:
    copy_of(finished, tmp_path)
    report, elsewhere = tmp_path / "report", tmp_path / "elsewhere"
    assert invoke("report", str(tmp_path / "out"), "--out", str(report), clean=True).exit_code == 0
    shutil.rmtree(report / "plots")
    elsewhere.mkdir()
    (report / "plots").symlink_to(elsewhere)
    result = invoke("report", str(tmp_path / "out"), "--out", str(report), clean=True)
    assert_one_line_error(result, 2, "its plots/ is a symbolic link")
    assert not any(elsewhere.iterdir())


def test_a_lock_that_is_a_folder_is_one_line_exit_2(tmp_path, finished) -> None:
    folder = copy_of(finished, tmp_path, status="interrupted")
    (folder / "lock").unlink(missing_ok=True)
    (folder / "lock").mkdir()
    result = invoke(*TRAIN, "--resume", "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "lock is not a lock file")


# ---- 3. report --out never overwrites the user's files --------------------------------

def test_report_out_refuses_a_folder_of_the_users_own_files(tmp_path, finished) -> None:
    copy_of(finished, tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes\n")
    result = invoke("report", str(tmp_path / "out"), "--out", str(mine), clean=True)
    assert_one_line_error(result, 2, "holds files no warmup-bench report wrote (report.md)")
    assert (mine / "report.md").read_text() == "my own notes\n" and len(list(mine.iterdir())) == 1
    again = tmp_path / "fresh"
    assert invoke("report", str(tmp_path / "out"), "--out", str(again), clean=True).exit_code == 0
    assert invoke("report", str(tmp_path / "out"), "--out", str(again), clean=True).exit_code == 0


# ---- 5, 6. grid files that would hang or overflow the reader --------------------------

def test_a_grid_that_is_no_regular_file_is_refused_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "grid.toml"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "warmup_bench", "sweep", str(fifo),
                           "--dry-run", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)  # a hang fails here
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "not a regular file" in done.stderr
    result = invoke("sweep", "/dev/zero", "--dry-run", "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "/dev/zero: not a regular file")


# ---- 7. each entry states the ranges it accepts; Adam's own range works ---------------

@pytest.mark.parametrize("settings", [{"opt": "gi-adamw", "beta2": 0.0},
                                      {"warmup": "untuned-linear", "beta2": 0.0},
                                      {"warmup": "untuned-exponential", "beta2": 0.0}])
def test_beta2_zero_builds_as_adam_and_pytorch_warmup_take_it(settings) -> None:
    from warmup_bench.optim import build_training
    from warmup_bench.tasks import resolve_config

    cfg = resolve_config("digits", settings)
    training = build_training(torch.nn.Linear(2, 2), cfg, iters_per_epoch=10)
    assert training.optimizer.param_groups[0]["betas"] == (0.9, 0.0)
    period = {"none": 1, "untuned-linear": 2, "untuned-exponential": 1}[cfg.warmup]
    assert training.warmup.warmup_params[0].get("warmup_period", 1) == period


# ---- 8. plugin factories returning nothing; figures of infinite diagnostics -----------

PLUGIN = """import warmup_bench as wb
wb.register_model("hollow", lambda **kw: None, description="returns None")
wb.register_optimizer("hollow", lambda params, **kw: None, description="returns None")
wb.register_warmup("hollow", lambda optimizer, *, period: None, description="returns None")
wb.register_schedule("hollow", lambda optimizer, **kw: None, description="returns None")
"""


@pytest.mark.parametrize(("flag", "what"), [
    ("--model", "the factory of model 'hollow' returned NoneType, not a torch.nn.Module"),
    ("--opt", "the factory of optimizer 'hollow' returned NoneType, not a "
              "torch.optim.Optimizer"),
    ("--warmup", "the builder of warmup 'hollow' returned NoneType"),
    ("--schedule", "the builder of schedule 'hollow' returned NoneType")])
def test_a_plugin_factory_returning_none_is_one_line_naming_it(tmp_path, flag, what) -> None:
    plugin = tmp_path / "hollow.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "out"
    result = invoke(*TRAIN, "--plugin", str(plugin), flag, "hollow", "--out", str(out), clean=True)
    assert_one_line_error(result, 2, f"plugin hollow.py failed while building the run: "
                                     f"TypeError: {what}")
    assert not out.exists()


def test_report_draws_diagnostics_that_went_infinite(tmp_path, finished) -> None:
    folder = copy_of(finished, tmp_path)
    diagnostics = pd.read_csv(folder / "diagnostics.csv")
    diagnostics.loc[3:, "relative_update"] = math.inf
    diagnostics.loc[3:, "angular_update_mean"] = math.inf
    diagnostics.to_csv(folder / "diagnostics.csv", index=False)
    report = tmp_path / "report"
    result = invoke("report", str(tmp_path / "out"), "--out", str(report), clean=True)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert list((report / "plots").glob("diagnostics_*.png"))


# ---- 9-11. run folders whose files disagree: the CSVs are the record ------------------

def test_the_untouched_run_is_reported_with_its_true_step_count(tmp_path, finished) -> None:
    copy_of(finished, tmp_path)
    frame = collect(tmp_path / "out", metric="steps-to:1")
    assert list(frame["steps-to:1"]) == [10.0]  # reached at epoch 1: 320 / 32 iterations


def summary_replayed(folder: Path, rows: int) -> dict:
    from warmup_bench.runs import Summary

    summary = Summary()
    for row in pd.read_csv(folder / "epochs.csv").head(rows).to_dict("records"):
        summary.record(row)
    return summary.to_dict()


LIES = {  # what is edited -> what the warning says
    "config-lr": ("config.json", {"lr": 0.05}, "its config.json is not the config its "
                  "folder was named for"),
    "summary-epochs": ("summary.json", {"epochs_done": 3},
                       "summary.json records 3 epoch(s) done; epochs.csv has 2 row(s)"),
    "summary-epochs-huge": ("summary.json", {"epochs_done": 10**6},
                            "summary.json records 1000000 epoch(s) done"),
    "summary-final": ("summary.json", {"final_test_acc": 0.999},
                      "summary.json's final_test_acc 0.999 is not epochs.csv's"),
    "summary-best-epoch": ("summary.json", {"best_epoch": 7},
                           "summary.json's best_epoch 7 is not epochs.csv's"),
    "summary-diverged": ("summary.json", {"status": "diverged"},
                         "summary.json says diverged at None"),
    "summary-wall-seconds": ("summary.json", {"wall_seconds": 0.001},
                             "summary.json's wall_seconds 0.001 is less than its epochs' "
                             "seconds"),
    "meta-iterations-few": ("meta.json", {"iterations_per_epoch": 4},
                            "iterations_per_epoch 4 does not fit steps.csv (step 11 logged "
                            "in epoch 2)"),
    "meta-iterations-many": ("meta.json", {"iterations_per_epoch": 2**53},
                             "iterations_per_epoch 9007199254740992 is more than digits's "
                             "training images allow at batch size 32 (10)"),
    "meta-iterations-11": ("meta.json", {"iterations_per_epoch": 11}, "is more than"),
    "meta-iterations-12": ("meta.json", {"iterations_per_epoch": 12},
                           "iterations_per_epoch 12 is more than"),
}


@pytest.mark.parametrize("case", list(LIES))
def test_a_run_folder_that_lies_is_skipped_with_one_warning(tmp_path, finished,
                                                             case) -> None:
    folder = copy_of(finished, tmp_path)
    file, changes, needle = LIES[case]
    edit_json(folder / file, **changes)
    result = invoke("report", str(tmp_path / "out"), "--metric", "steps-to:1", clean=True)
    assert result.exit_code == 2, result.output  # the only run, skipped: nothing to report
    assert f"warning: skipping {folder}: " in result.stderr and needle in result.stderr, \
        result.stderr


def test_a_complete_run_without_logged_steps_is_skipped(tmp_path, finished) -> None:
    folder = copy_of(finished, tmp_path)
    (folder / "steps.csv").write_text("step,epoch,lr,warmup_factor,loss\n")
    result = invoke("report", str(tmp_path / "out"), "--metric", "steps-to:1", clean=True)
    assert result.exit_code == 2
    assert "steps.csv has no rows, yet 2 epoch(s) were trained" in result.stderr


def test_steps_to_leaves_out_a_run_without_its_iterations_and_says_so(tmp_path) -> None:
    from runfolders import write_finished_run

    from warmup_bench.tasks import resolve_config

    cfgs = [resolve_config("digits", {"epochs": 2, "seed": seed}) for seed in (1, 2)]
    write_finished_run(tmp_path, cfgs[0], [0.6, 0.9])
    unknown = write_finished_run(tmp_path, cfgs[1], [0.6, 0.9])
    (unknown / "meta.json").write_text("{}")
    result = invoke("report", str(tmp_path), "--metric", "steps-to:80", "--format", "csv",
                    clean=True)
    assert result.exit_code == 0, result.output
    assert f"skipping {unknown} for steps-to:80: its meta.json records no iterations per " \
        "epoch" in result.stderr
    assert ",88.0,0.0,1,0,,,,,1,1" in result.stdout  # reached at epoch 2 of 44 steps: 1 of 1


DIVERGED_LIES = {  # diverged_at -> what the warning says
    "step-text": ({"epoch": 3, "step": "x"}, "says diverged at step 'x' of epoch 3"),
    "step-1": ({"epoch": 3, "step": 1}, "says diverged at step 1 of epoch 3, which steps.csv"),
    "step-far": ({"epoch": 3, "step": 130}, "says diverged at step 130 of epoch 3"),
    "epoch-float": ({"epoch": 3.0, "step": 89}, "which is not in the epoch after"),
    "epoch-later": ({"epoch": 4, "step": 133}, "which is not in the epoch after"),
}


@pytest.mark.parametrize("case", [None, *DIVERGED_LIES])
def test_a_divergence_steps_csv_cannot_have_logged_is_not_believed(tmp_path, case) -> None:
    """A run that diverged at step 89 (epoch 3 of 44 iterations, after 2 epochs); its
    summary's claim of where is checked against steps.csv and the iterations per epoch."""
    from runfolders import write_finished_run

    from warmup_bench.tasks import resolve_config

    folder = write_finished_run(tmp_path, resolve_config("digits", {"epochs": 5}),
                                [0.6, 0.9], status="diverged")
    assert json.loads((folder / "summary.json").read_text())["diverged_at"] == \
        {"epoch": 3, "step": 89}
    if case is not None:
        edit_json(folder / "summary.json", diverged_at=DIVERGED_LIES[case][0])
    result = invoke("report", str(tmp_path), "--format", "csv", clean=True)
    if case is None:
        assert result.exit_code == 0 and "[1 diverged]" not in result.stdout, result.output
        assert "AdamW/Linear,0.01,,,0,1," in result.stdout and not result.stderr  # 1 diverged
    else:
        assert result.exit_code == 2 and DIVERGED_LIES[case][1] in result.stderr, \
            result.stderr


def test_an_interrupted_run_marked_complete_is_skipped(tmp_path, finished) -> None:
    folder = copy_of(finished, tmp_path)
    epochs = (folder / "epochs.csv").read_text().splitlines(keepends=True)
    (folder / "epochs.csv").write_text("".join(epochs[:2]))  # the header and epoch 1
    (folder / "summary.json").write_text(json.dumps({**summary_replayed(folder, 1),
                                                     "status": "complete"}))
    result = invoke("report", str(tmp_path / "out"), clean=True)
    assert result.exit_code == 2
    assert "summary.json says complete, yet epochs.csv has 1 of the 2 epochs" in result.stderr


# ---- 12. a model of NaN weights is neither predicted with nor exported ----------------

@pytest.mark.parametrize(("weights", "needle"), [
    (lambda v: torch.full_like(v, 3e38), "gives logits that are not finite"),
    (lambda v: v.to(torch.complex64), "is torch.complex64, not the model's torch.float32")])
def test_predict_refuses_overflowing_or_complex_weights(tmp_path, finished, weights,
                                                        needle) -> None:
    folder = copy_of(finished, tmp_path)
    state = torch.load(folder / "model.pt", weights_only=True)
    torch.save({k: weights(v) if v.is_floating_point() else v for k, v in state.items()},
               folder / "model.pt")
    result = invoke("predict", str(folder), "--out", str(tmp_path / "p.png"), clean=True)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("command", ["predict", "export"])
def test_nan_weights_are_refused_by_predict_and_export(tmp_path, finished, command) -> None:
    folder = copy_of(finished, tmp_path)
    weights = torch.load(folder / "model.pt", weights_only=True)
    torch.save({k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                for k, v in weights.items()}, folder / "model.pt")
    written = tmp_path / ("p.png" if command == "predict" else "m.onnx")
    result = invoke(command, str(folder), "--out", str(written), clean=True)
    assert_one_line_error(result, 2, "holds weights that are not finite (NaN or inf)")
    assert not written.exists()


# ---- 14. settings that do nothing: refused, for plugins too; old runs with them skipped --

def test_a_plugin_schedule_is_held_to_the_settings_it_declares(tmp_path) -> None:
    import warmup_bench as wb
    from warmup_bench.config import ConfigError
    from warmup_bench.optim import SCHEDULES
    from warmup_bench.tasks import resolve_config

    wb.register_schedule("declared", SCHEDULES["cosine"].build, description="cosine",
                         reads=("eta_min", "lr"))  # lr: read always, nothing to declare
    wb.register_schedule("undeclared", SCHEDULES["cosine"].build, description="cosine")
    assert resolve_config("digits", {"schedule": "declared", "eta_min": 1e-4, "lr": 0.02})
    with pytest.raises(ConfigError, match="--cooldown-fraction 0.3 does nothing with .*"
                                          "--schedule declared: only --schedule wsd read it"):
        resolve_config("digits", {"schedule": "declared", "cooldown_fraction": 0.3})
    assert resolve_config("digits", {"schedule": "undeclared", "cooldown_fraction": 0.3})


def test_a_run_made_with_a_setting_that_does_nothing_is_skipped_by_report(tmp_path) -> None:
    import dataclasses

    from runfolders import write_finished_run

    from warmup_bench.tasks import resolve_config

    cfg = resolve_config("digits", {"epochs": 2})
    write_finished_run(tmp_path, cfg, [0.9])
    made_before = write_finished_run(tmp_path, dataclasses.replace(cfg, momentum=0.5), [0.8])
    result = invoke("report", str(tmp_path), "--format", "csv", clean=True)
    assert result.exit_code == 0 and "AdamW/Linear,0.01,10.0" in result.stdout
    assert f"skipping {made_before}: config.json is not a valid configuration (--momentum " \
        "0.5 does nothing with --opt adamw" in result.stderr


def test_a_fixed_setting_applies_to_the_runs_that_read_it(tmp_path) -> None:
    """[fixed] momentum with [grid] opt = [sgd, adamw]: the SGD runs take it, the AdamW
    runs leave it out (said in a note); a grid axis over it is still refused."""
    from warmup_bench.experiments import load_experiment

    grid = tmp_path / "grid.toml"
    grid.write_text('task = "digits"\nseeds = [1, 2]\n[fixed]\nmomentum = 0.5\nwarmup = "none"'
                    '\n[grid]\nopt = ["sgd", "adamw"]\n')
    experiment = load_experiment(grid)
    assert [(c.opt, c.momentum) for c in experiment.configs()] == [
        ("sgd", 0.5), ("sgd", 0.5), ("adamw", 0.9), ("adamw", 0.9)]
    result = invoke("sweep", str(grid), "--dry-run", "--out", str(tmp_path / "out"), clean=True)
    assert result.exit_code == 0 and "note: [fixed] momentum = 0.5 (left out of 2 runs): " \
        "their optimizer, warmup and schedule do not read it." in result.stderr


# ---- 15. report options that named nothing ---------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--out", ""], "--out '' names no folder"),
    (["--metric", "steps-to:\u0665\u0660"], "in ASCII digits"),
    (["--run-figures", "all"], "--run-figures all draws figures into --out"),
    (["--epochs", "3"], "--epochs 3 names the --epochs a grid's sweep ran with"),
])
def test_report_options_that_would_be_ignored_are_one_line(tmp_path, finished, args,
                                                           needle) -> None:
    copy_of(finished, tmp_path)
    before = snapshot(tmp_path)
    result = invoke("report", str(tmp_path / "out"), *args, clean=True)
    assert_one_line_error(result, 2, needle)
    assert snapshot(tmp_path) == before


# ---- 17. a legacy pickle checkpoint: one line, no warning from torch first ------------

def test_a_legacy_pickle_checkpoint_is_refused_without_a_torch_warning(tmp_path,
                                                                       finished) -> None:
    import pickle
    import warnings

    folder = copy_of(finished, tmp_path, status="interrupted")
    with open(folder / "checkpoint.pt", "wb") as file:  # torch warns about its protocol
        pickle.dump({"format": 1, "code": print}, file, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke(*TRAIN, "--resume", "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "checkpoint.pt is unreadable or corrupt")
    assert [str(w.message) for w in caught if "torch" in w.filename] == []


# ---- 19. collect() of no runs has every column; of no folder, one clear error ---------

def test_collect_of_no_runs_has_the_columns_of_the_reports_doc_snippet(tmp_path) -> None:
    from warmup_bench.config import ConfigError

    frame = collect(tmp_path)
    assert len(frame) == 0 and {"opt", "warmup", "lr", "best", "status", "folder"} <= \
        set(frame.columns)
    assert frame.groupby(["opt", "warmup", "lr"])["best"].describe().empty
    with pytest.raises(ConfigError, match="results folder .*nope does not exist"):
        collect(tmp_path / "nope")
