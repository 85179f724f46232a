"""The methods warmup research compares against now, as registry entries: GI-Adam,
schedule-free AdamW / SGD, and the warmup-stable-decay schedule; each through train,
checked against its definition, resumed exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from clirun import invoke

from warmup_bench.execution import RunOptions
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train
from warmup_bench.wsd import COOLDOWN_SHAPES, WarmupStableDecay

QUIET = RunOptions(on_note=None)


def only_run(out: Path) -> Path:
    (folder,) = (out / "digits").iterdir()
    return folder


# ---- registry entries, their rules --------------------------------------------------------


def test_the_new_entries_are_listed_with_their_labels() -> None:
    optimizers, schedules = invoke("list", "optimizers").output, invoke("list", "schedules").output
    for name, label in (("gi-adamw", "GI-AdamW"), ("adamw-schedule-free", "SF-AdamW"),
                        ("sgd-schedule-free", "SF-SGD")):
        assert name in optimizers and label in optimizers
    assert "wsd" in schedules and "WSD" in schedules


@pytest.mark.parametrize(("flags", "needle"), [
    (["--opt", "adamw-schedule-free", "--schedule", "multistep", "--milestones", "2"],
     "--opt adamw-schedule-free is schedule-free: it replaces the LR schedule, so it takes "
     "--schedule constant, not multistep"),
    (["--opt", "sgd-schedule-free", "--schedule", "constant", "--warmup", "untuned-linear"],
     "derives its period from "
     "beta2, which --opt sgd-schedule-free does not have"),
    (["--schedule", "wsd", "--cooldown-fraction", "0"], "--cooldown-fraction 0.0 must be in "
     "(0, 1]"),
    (["--schedule", "wsd", "--cooldown-shape", "square"], "--cooldown-shape 'square' is not "
     "valid; choose from: linear, cosine, 1-sqrt"),
])
def test_their_rules_are_one_line_exit_2(tmp_path, flags, needle) -> None:
    result = invoke("train", "--task", "digits", *flags, "--out", tmp_path / "o")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert needle in result.output and not (tmp_path / "o").exists()


def test_schedule_free_without_its_package_names_the_extra(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "schedulefree", None)  # its import fails
    result = invoke("train", "--task", "digits", "--opt", "adamw-schedule-free", "--schedule",
                    "constant", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "pip install 'warmup-bench[schedulefree]'" in \
        result.output and not (tmp_path / "o").exists()


def test_new_settings_leave_older_run_names_as_they_were() -> None:
    from warmup_bench.runs import run_name

    assert run_name(resolve_config("digits", {"beta2": 0.999})) == \
        "adamw-untuned-linear-cosine-lr0.01-b0.999-s1-a62e27e7"


# ---- GI-Adam ----------------------------------------------------------------------------


def digits_run(tmp_path: Path, name: str, *flags, epochs: int = 1) -> Path:
    result = invoke("train", "--task", "digits", "--epochs", epochs, "--no-progress",
                    "--log-interval", "1", "--threads", "1", *flags, "--out", tmp_path / name)
    assert result.exit_code == 0, result.output
    return only_run(tmp_path / name)


def test_gi_adam_step_ratio_at_step_one_is_sqrt_one_minus_beta2_of_adams(tmp_path) -> None:
    """At t = 1 Adam's per-coordinate step is sign(g) (|r| = 1 where g != 0); GI-Adam's,
    with v_0 = g_1^2, is sqrt(1 - beta2) sign(g) (up to eps)."""
    flags = ("--warmup", "none", "--beta2", "0.99", "--train-samples", "64")
    adam = pd.read_csv(digits_run(tmp_path, "adam", *flags) / "diagnostics.csv")
    gi = pd.read_csv(digits_run(tmp_path, "gi", "--opt", "gi-adamw", *flags) /
                     "diagnostics.csv")
    first_adam, first_gi = adam.iloc[0], gi.iloc[0]
    assert first_adam["r_abs_max"] == pytest.approx(1.0, rel=1e-3)
    assert first_gi["r_abs_max"] == pytest.approx(math.sqrt(0.01), rel=1e-3)
    assert first_gi["r_abs_mean"] == pytest.approx(math.sqrt(0.01) * first_adam["r_abs_mean"],
                                                   rel=1e-3)
    # and the first update is that much smaller (the weight decay aside)
    assert first_gi["update_norm"] < 0.2 * first_adam["update_norm"]


def interrupted_then_resumed(tmp_path: Path, cfg, stop_at: int, monkeypatch) -> Path:
    """`cfg` trained until the start of epoch `stop_at` (Ctrl-C there), then resumed."""
    import warmup_bench.train.run as running

    real = running.train_epoch

    def stopping(members, model, epoch, *args, **kwargs):
        if epoch == stop_at:
            raise KeyboardInterrupt
        return real(members, model, epoch, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(running, "train_epoch", stopping)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "resumed", QUIET)
    result = train(cfg, tmp_path / "resumed", RunOptions(on_note=None, resume=True))
    assert result.status == "complete"
    return result.run.path


def assert_same_logs(a: Path, b: Path) -> None:
    for name in ("steps.csv", "diagnostics.csv", "layers.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    untimed = [pd.read_csv(p / "epochs.csv").drop(columns=["seconds", "images_per_second"])
               for p in (a, b)]
    assert untimed[0].equals(untimed[1])


@pytest.mark.parametrize("opt", ["gi-adamw", "adamw-schedule-free"])
def test_resume_is_exact(tmp_path, opt, monkeypatch) -> None:
    schedule = "constant" if "schedule-free" in opt else "cosine"
    cfg = resolve_config("digits", {"opt": opt, "schedule": schedule, "epochs": 3,
                                    "beta2": 0.99, "train_samples": 320})
    straight = train(cfg, tmp_path / "straight", QUIET).run.path
    assert_same_logs(straight, interrupted_then_resumed(tmp_path, cfg, 2, monkeypatch))


# ---- schedule-free ------------------------------------------------------------------------


def evaluate_checkpoint(cfg, folder: Path, averaged: bool) -> float:
    """The test loss of the run's last checkpoint at its averaged weights x (as saved),
    or at the interpolation y = x + (1 - beta1)(z - x) it trains at."""
    from warmup_bench.data import load_dataset
    from warmup_bench.train.build import build_net, make_loaders
    from warmup_bench.train.device import choose_kernels
    from warmup_bench.train.evaluation import evaluate

    device = torch.device("cpu")
    data = load_dataset(cfg.dataset)
    kernels = choose_kernels(cfg, device)
    loaders = make_loaders(cfg, data, device, kernels.layout)
    net = build_net(cfg, data, device, len(loaders.train), kernels)
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    net.model.load_state_dict(state["model"])
    if not averaged:
        beta1 = state["optimizer"]["param_groups"][0]["betas"][0]
        params = list(net.model.parameters())
        with torch.no_grad():
            for i, p in enumerate(params):
                p.lerp_(state["optimizer"]["state"][i]["z"], 1 - beta1)
    return evaluate(net, loaders.test)[0]


@pytest.mark.parametrize("model", ["digits-net", "resnet20"])
def test_schedule_free_learns_and_is_judged_at_its_averaged_weights(tmp_path, model) -> None:
    """A missing optimizer.eval() would record the loss at y; the recorded one is x's.
    (ResNet-20: BatchNorm statistics recomputed at x before evaluating.)"""
    torch.set_num_threads(1)
    cfg = resolve_config("digits", {"opt": "adamw-schedule-free", "schedule": "constant",
                                    "model": model, "epochs": 3, "lr": 0.005,
                                    "warmup": "linear", "warmup_period": 50})
    result = train(cfg, tmp_path, RunOptions(on_note=None, threads=1, diagnostics=False))
    epochs = pd.read_csv(result.run.path / "epochs.csv")
    assert result.status == "complete" and epochs["test_acc"].iloc[-1] > 0.8  # it learns
    recorded = float(epochs["test_loss"].iloc[-1])
    assert evaluate_checkpoint(cfg, result.run.path, averaged=True) == recorded
    assert evaluate_checkpoint(cfg, result.run.path, averaged=False) != recorded


def test_batchnorm_statistics_are_recomputed_at_the_averaged_weights(tmp_path,
                                                                       monkeypatch) -> None:
    import warmup_bench.train.evaluation as evaluation

    cfg = resolve_config("digits", {"opt": "adamw-schedule-free", "schedule": "constant",
                                    "model": "resnet20", "epochs": 1, "train_samples": 320,
                                    "warmup": "none"})
    with_recompute = train(cfg, tmp_path / "a", QUIET).run.path
    monkeypatch.setattr(evaluation, "recompute_batchnorm", lambda net, loader: None)
    without = train(cfg, tmp_path / "b", QUIET).run.path
    ours, theirs = (torch.load(p / "checkpoint.pt", weights_only=True)["model"]
                    for p in (with_recompute, without))
    key = "bn.running_mean"
    assert not torch.equal(ours[key], theirs[key])  # the recompute ran
    assert torch.equal(ours["conv.weight"], theirs["conv.weight"])  # nothing else changed


def test_our_linear_warmup_is_the_packages_own_warmup_steps() -> None:
    """Our warmup dampens the LR schedule-free reads: exactly its warmup_steps."""
    import schedulefree

    from warmup_bench.warmup import LinearWarmup

    def parameters_after(ours: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=0.01,
                                                   warmup_steps=0 if ours else 20)
        optimizer.train()
        warmup = LinearWarmup(optimizer, 20) if ours else None
        for step in range(30):
            model.zero_grad()
            model(torch.ones(3, 4) * (step + 1)).square().sum().backward()
            optimizer.step()
            if warmup is not None:
                with warmup.dampening():
                    pass
        optimizer.eval()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(parameters_after(True), parameters_after(False))


@pytest.mark.slow
def test_schedule_free_sigkill_then_resume_is_exact(tmp_path) -> None:
    import subprocess
    import sys

    from killing import sigkill_after_epochs

    args = [sys.executable, "-m", "warmup_bench", "train", "--task", "digits", "--opt",
            "adamw-schedule-free", "--schedule", "constant", "--beta2", "0.99", "--epochs",
            "8", "--threads", "1", "--no-progress"]
    reference = subprocess.run([*args, "--out", str(tmp_path / "ref")], capture_output=True)
    assert reference.returncode == 0, reference.stderr
    killed = subprocess.Popen([*args, "--out", str(tmp_path / "killed")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_after_epochs(killed, tmp_path / "killed", 3)
    resumed = subprocess.run([*args, "--resume", "--out", str(tmp_path / "killed")],
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_logs(only_run(tmp_path / "ref"), only_run(tmp_path / "killed"))


# ---- warmup-stable-decay ------------------------------------------------------------------


def closed_form(iteration: int, total: int, fraction: float, shape: str, lr: float,
                eta_min: float) -> float:
    cooldown = max(1, round(fraction * total))
    done = iteration - (total - cooldown)
    if done <= 0:
        return lr
    return eta_min + (lr - eta_min) * COOLDOWN_SHAPES[shape](min(1.0, done / cooldown))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_lr_is_its_closed_form_at_every_iteration_and_the_boundaries(shape) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = WarmupStableDecay(optimizer, 100, 0.2, shape, 0.001)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == [closed_form(t, 100, 0.2, shape, 0.1, 0.001) for t in range(1, 101)]
    assert lrs[79] == 0.1  # iteration 80: the stable phase's last
    assert lrs[80] == 0.001 + (0.1 - 0.001) * COOLDOWN_SHAPES[shape](1 / 20)  # the first
    assert lrs[99] == 0.001  # the last iteration: exactly eta_min


def test_wsd_through_train_with_a_warmup_is_the_warmup_times_the_closed_form(tmp_path) -> None:
    folder = digits_run(tmp_path, "wsd", "--schedule", "wsd", "--cooldown-shape", "1-sqrt",
                        "--cooldown-fraction", "0.25", "--eta-min", "0.0005", "--warmup",
                        "linear", "--warmup-period", "30", "--no-diagnostics", epochs=3)
    steps = pd.read_csv(folder / "steps.csv")
    total = 3 * (1438 // 32)
    expected = [closed_form(t, total, 0.25, "1-sqrt", 0.01, 0.0005) * min(1.0, t / 30)
                for t in steps["step"]]
    assert steps["lr"].tolist() == expected
    assert steps["lr"].iloc[-1] == 0.0005


def test_the_lr_figure_marks_wsds_phases(tmp_path) -> None:
    from warmup_bench.report import build_table, collect_runs
    from warmup_bench.report.figures import figure_jobs

    digits_run(tmp_path, "r", "--schedule", "wsd", "--warmup", "linear", "--warmup-period",
               "30", "--no-diagnostics", epochs=2)
    runs = collect_runs(tmp_path / "r", print)
    jobs = figure_jobs(build_table("t", runs, ("opt", "warmup"), "lr"), runs, tmp_path / "p")
    (lr_job,) = [job for job in jobs if job[0] == "lr_curves_figure"]
    assert lr_job[-1] == ((30.0, "Linear-30 warmup ends"), (2 * 44 - 18 + 1.0,
                                                            "cooldown starts"))
    from warmup_bench import plots

    figure = plots.lr_curves_figure(*lr_job[2:])
    marks = [line for line in figure.axes[0].lines if line.get_linestyle() == ":"]
    assert sorted(line.get_xdata()[0] for line in marks) == [30.0, 71.0]
