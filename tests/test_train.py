"""`warmup-bench train`: run directories, LR trajectories, resume, divergence, bad flags."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from clirun import invoke
from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR

from warmup_bench.data import DEBIAN_FASHION_MNIST
from warmup_bench.optim import OPTIMIZERS, WARMUPS
from warmup_bench.tasks import resolve_config
from warmup_bench.train import RunOptions, train

try:  # the oracle: only the LR-trajectory comparisons need it
    import pytorch_warmup as oracle
except ImportError:  # pragma: no cover
    oracle = None
needs_oracle = pytest.mark.skipif(oracle is None, reason="pytorch_warmup (test oracle) missing")
QUIET = RunOptions(on_note=lambda _: None)
DIGITS_ITERS = 1438 // 32  # iterations per epoch of the digits task


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def only_run(out: Path) -> Path:
    (directory,) = [p for p in (out / "digits").iterdir()]
    return directory


@pytest.mark.slow
def test_digits_acceptance_run_directory(tmp_path) -> None:
    started = time.perf_counter()
    result = invoke("train", "--no-progress", "--task", "digits", "--opt", "adamw", "--warmup",
                    "untuned-linear", "--out", str(tmp_path))
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    directory = only_run(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == [
        "checkpoint.pt", "config.json", "diagnostics.csv", "epochs.csv", "layers.csv",
        "meta.json", "steps.csv", "summary.json"]
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs_done"] == 30
    assert summary["best_test_acc"] > 0.9 and elapsed < 60
    config = json.loads((directory / "config.json").read_text())
    assert config == resolve_config("digits", {"opt": "adamw", "warmup": "untuned-linear"}
                                    ).to_dict() | {"milestones": [], "plugins": []}  # exactly it
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["threads"] == torch.get_num_threads() and meta["iterations_per_epoch"] == 44
    epochs = read_csv(directory / "epochs.csv")
    assert list(epochs[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                               "test_top5", "seconds", "images_per_second"]
    assert all(float(r["test_top5"]) >= float(r["test_acc"]) for r in epochs)
    assert len(epochs) == 30 and float(epochs[-1]["test_acc"]) == summary["final_test_acc"]
    steps = read_csv(directory / "steps.csv")
    assert list(steps[0]) == ["step", "epoch", "lr", "warmup_factor", "loss"]
    assert [int(r["step"]) for r in steps] == list(range(1, 30 * DIGITS_ITERS + 1, 10))
    assert "best test acc" in result.output
    again = invoke("train", "--no-progress", "--task", "digits", "--opt", "adamw", "--warmup",
                   "untuned-linear", "--out", str(tmp_path))
    assert again.exit_code == 0 and "already complete, not retrained" in again.output


def expected_lrs(warmup_factory, scheduler_factory, steps: int, per_epoch=False,
                 delay=0) -> list[float]:
    """LR of every step from pytorch_warmup's oracle and torch's scheduler, by hand."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01,
                                  betas=(0.9, 0.999))
    scheduler = scheduler_factory(optimizer)
    warmup = warmup_factory(optimizer)
    lrs = []
    for step in range(1, steps + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        with warmup.dampening():
            if (not per_epoch or step % DIGITS_ITERS == 0) and step >= delay:
                scheduler.step()
    return lrs


EPOCHS = 3
TOTAL = EPOCHS * DIGITS_ITERS
TRAJECTORIES = {} if oracle is None else {
    "linear+cosine": (["--warmup", "linear", "--warmup-period", "50", "--schedule", "cosine"],
                      lambda o: oracle.LinearWarmup(o, 50),
                      lambda o: CosineAnnealingLR(o, T_max=TOTAL), False, 0),
    "untuned-expo+multistep": (
        ["--warmup", "untuned-exponential", "--schedule", "multistep", "--milestones", "1",
         "--milestones", "2"], oracle.UntunedExponentialWarmup,
        lambda o: MultiStepLR(o, [DIGITS_ITERS, 2 * DIGITS_ITERS]), False, 0),
    "radam+cosine-epoch": (["--warmup", "radam", "--schedule", "cosine-epoch"],
                           oracle.RAdamWarmup, lambda o: CosineAnnealingLR(o, T_max=EPOCHS),
                           True, 0),
    "linear+delayed-cosine": (
        ["--warmup", "linear", "--warmup-period", "60", "--schedule", "cosine",
         "--delay-schedule"], lambda o: oracle.LinearWarmup(o, 60),
        lambda o: CosineAnnealingLR(o, T_max=TOTAL - 60), False, 60),
}


@needs_oracle
@pytest.mark.parametrize("name", ["linear+cosine", "untuned-expo+multistep",
                                  "radam+cosine-epoch", "linear+delayed-cosine"])
def test_logged_lr_is_the_lr_the_optimizer_used(tmp_path, name) -> None:
    flags, warmup_factory, scheduler_factory, per_epoch, delay = TRAJECTORIES[name]
    # beta2 0.999: the oracle's optimizer has torch's default betas
    result = invoke("train", "--no-progress", "--task", "digits", "--epochs", str(EPOCHS),
                    "--log-interval", "1", "--weight-decay", "0", "--beta2", "0.999",
                    "--out", str(tmp_path), *flags)
    assert result.exit_code == 0, result.output
    steps = read_csv(only_run(tmp_path) / "steps.csv")
    expected = expected_lrs(warmup_factory, scheduler_factory, TOTAL, per_epoch, delay)
    assert [float(r["lr"]) for r in steps] == expected  # exact: floats written with repr
    assert float(steps[0]["lr"]) < 0.01  # the very first step is already dampened


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_every_optimizer_with_every_warmup_runs(tmp_path, opt) -> None:
    for warmup in WARMUPS:
        if WARMUPS[warmup].needs_betas and not OPTIMIZERS[opt].has_betas:
            continue
        # a schedule-free optimizer replaces the LR schedule, so it takes constant only
        schedule = "constant" if OPTIMIZERS[opt].schedule_free else "cosine"
        period = {"warmup_period": 5} if WARMUPS[warmup].needs_period else {}
        cfg = resolve_config("digits", dict(opt=opt, warmup=warmup, schedule=schedule,
                                            epochs=1, train_samples=96, **period))
        result = train(cfg, tmp_path, QUIET)
        assert result.status == "complete", (opt, warmup)
        assert math.isfinite(result.summary.final_test_acc)


@pytest.mark.parametrize("warmup", ["linear", "exponential", "untuned-linear",
                                    "untuned-exponential", "none"])
@pytest.mark.parametrize("beta2", [0.99, 0.999])
def test_delay_length_is_the_warmup_period(warmup, beta2) -> None:
    """--delay-schedule waits for the period the warmup object really uses."""
    period = {"warmup_period": 321} if WARMUPS[warmup].needs_period else {}
    cfg = resolve_config("digits", dict(warmup=warmup, beta2=beta2, **period))
    optimizer = OPTIMIZERS["adamw"].build([torch.nn.Parameter(torch.zeros(1))], cfg)
    built = WARMUPS[warmup].build(optimizer, period=cfg.warmup_period)
    expected = built.warmup_params[0].get("warmup_period", 0)
    assert WARMUPS[warmup].length(cfg) == expected


def run_digits_subprocess(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "warmup_bench", "train", "--task", "digits", "--no-progress",
         "--epochs", "12", "--out", str(out), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # Ctrl-C's default handling even under a runner that ignores SIGINT (a background
        # job of a script does, and children inherit it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow
def test_resume_after_sigkill_gives_identical_metrics(tmp_path) -> None:
    sharpness = ("--sharpness-every", "50")  # diagnostics are on by default
    reference = run_digits_subprocess(tmp_path / "reference", *sharpness)
    assert reference.wait(120) == 0
    killed = run_digits_subprocess(tmp_path / "killed", *sharpness)
    epochs_csv = None
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a few epochs, then kill mid-run
        runs = list((tmp_path / "killed" / "digits").glob("*/epochs.csv"))
        if runs and len(read_csv(runs[0])) >= 4:
            epochs_csv = runs[0]
            break
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert epochs_csv is not None
    assert json.loads((epochs_csv.parent / "summary.json").read_text())["status"] == "running"
    resumed = run_digits_subprocess(tmp_path / "killed", "--resume", *sharpness)
    assert resumed.wait(120) == 0, resumed.stderr.read()
    ref_dir = only_run(tmp_path / "reference")
    metrics = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    ref_epochs, got_epochs = read_csv(ref_dir / "epochs.csv"), read_csv(epochs_csv)
    assert [{k: r[k] for k in metrics} for r in got_epochs] == \
        [{k: r[k] for k in metrics} for r in ref_epochs]
    for log in ("steps.csv", "diagnostics.csv", "layers.csv"):  # every row, bit for bit
        assert (epochs_csv.parent / log).read_text() == (ref_dir / log).read_text(), log
    summary = json.loads((epochs_csv.parent / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["best_test_acc"] == \
        json.loads((ref_dir / "summary.json").read_text())["best_test_acc"]


def test_same_command_twice_gives_identical_csvs(tmp_path) -> None:
    for out in ("a", "b"):
        assert invoke("train", "--no-progress", "--task", "digits", "--epochs", "2", "--out",
                      str(tmp_path / out)).exit_code == 0
    a, b = only_run(tmp_path / "a"), only_run(tmp_path / "b")
    assert a.name == b.name
    assert (a / "steps.csv").read_text() == (b / "steps.csv").read_text()
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")}  # noqa: E731
                         for r in rows]
    assert drop(read_csv(a / "epochs.csv")) == drop(read_csv(b / "epochs.csv"))


def test_divergence_stops_cleanly(tmp_path) -> None:
    result = invoke("train", "--no-progress", "--task", "digits", "--opt", "sgd", "--warmup",
                    "none", "--lr", "1e12", "--out", str(tmp_path))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diverged:")
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["diverged_at"]["epoch"] == 1 and summary["diverged_at"]["step"] >= 1
    logged = read_csv(only_run(tmp_path) / "steps.csv")  # rows before the blow-up stay valid
    assert logged and all(math.isfinite(float(r["loss"])) for r in logged)
    assert int(logged[-1]["step"]) < summary["diverged_at"]["step"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--opt", "adamz"], "sgd, adam, adamw"),
    (["--warmup", "cosine"], "none, radam, untuned-exponential, untuned-linear"),
    (["--schedule", "step"], "constant, multistep"),
    (["--task", "imagenet"], "cifar10-resnet20, emnist-cnn"),
    (["--lr", "-0.1"], "--lr -0.1"),
    (["--beta2", "1.0"], "--beta2 1.0"),
    (["--warmup", "linear"], "--warmup-period"),
    (["--opt", "sgd", "--warmup", "untuned-linear"], "adam, adamw"),
    (["--device", "cuda:7"], "CUDA is not available"),
])
def test_bad_flags_exit_2_and_create_nothing(tmp_path, args, needle) -> None:
    out = tmp_path / "out"
    result = invoke("train", "--no-progress", "--task", "digits", "--out", str(out), *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], lines
    assert not out.exists()


def test_default_task_without_cifar_says_how_to_get_it(tmp_path) -> None:
    result = invoke("train", "--no-progress", "--opt", "adamw", "--warmup", "untuned-linear",
                    "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "nodata"))
    assert result.exit_code == 2
    assert "cifar-10-batches-py" in result.output and "data download cifar10" in result.output
    assert not (tmp_path / "o").exists()


def test_radam_warmup_on_radam_warns(tmp_path) -> None:
    result = invoke("train", "--no-progress", "--task", "digits", "--opt", "radam", "--warmup",
                    "radam", "--epochs", "1", "--out", str(tmp_path))
    assert result.exit_code == 0 and "redundant" in result.output


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
@pytest.mark.slow
def test_emnist_cnn_recipe_learns_fashion_mnist(tmp_path) -> None:
    cfg = resolve_config("emnist-cnn", dict(dataset="fashion-mnist", epochs=1,
                                            train_samples=64 * 300))
    result = train(cfg, tmp_path)
    assert result.status == "complete" and result.summary.final_test_acc > 0.75


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
@pytest.mark.slow
def test_vit_recipe_learns_fashion_mnist(tmp_path) -> None:
    """The ViT recipe, cut to CI's budget: 1 epoch over 8,192 samples (64 steps), a
    20-step linear warmup, no validation split (~27 s on 2 cores, 63.9% measured); chance
    is 10%."""
    cfg = resolve_config("fashion-mnist-vit", dict(epochs=1, train_samples=8_192,
                                                   val_fraction=0.0, warmup="linear",
                                                   warmup_period=20))
    result = train(cfg, tmp_path)
    assert result.status == "complete" and result.summary.final_test_acc > 0.5


@pytest.mark.slow
def test_ctrl_c_leaves_an_interrupted_resumable_run(tmp_path) -> None:
    process = run_digits_subprocess(tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:  # until two epochs are checkpointed
        summaries = list((tmp_path / "digits").glob("*/summary.json"))
        try:
            if summaries and json.loads(summaries[0].read_text())["epochs_done"] >= 2:
                break
        except ValueError:
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130
    assert "rerun with --resume" in process.stderr.read().decode()
    directory = only_run(tmp_path)
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_done"] >= 2
    checkpoint = torch.load(directory / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] >= 2  # resumable from a completed epoch
    resumed = run_digits_subprocess(tmp_path, "--resume")
    assert resumed.wait(120) == 0
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["epochs_done"] == 12


def test_save_model_keeps_best_epoch_weights(tmp_path) -> None:
    from warmup_bench.models import build_model

    result = invoke("train", "--no-progress", "--task", "digits", "--epochs", "3", "--save-model",
                    "--out", str(tmp_path))
    assert result.exit_code == 0
    state = torch.load(only_run(tmp_path) / "model.pt", weights_only=True)
    model = build_model("digits-net", 10, 1)
    model.load_state_dict(state)  # every tensor present with the right shape
    checkpoint = torch.load(only_run(tmp_path) / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 3 and set(checkpoint) >= {
        "model", "optimizer", "scheduler", "warmup", "rng", "rows"}


def test_default_command_trains_resnet20_on_cifar_files(tmp_path) -> None:
    """The default task end to end on CIFAR batches in the real pickle format (synthetic
    pixels): the reference recipe is what runs, and what config.json records."""
    from datafiles import write_cifar_python

    write_cifar_python(tmp_path / "data" / "cifar-10-batches-py", per_batch=52)  # 2 batches
    result = invoke("train", "--no-progress", "--opt", "adamw", "--warmup", "untuned-linear",
                    "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out",
                    str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    (directory,) = (tmp_path / "out" / "cifar10-resnet20").iterdir()
    config = json.loads((directory / "config.json").read_text())
    assert (config["model"], config["batch_size"], config["milestones"], config["augment"],
            config["lr"], config["weight_decay"], config["beta2"]) == \
        ("resnet20", 128, [81, 122], "crop-flip", 0.01, 1e-4, 0.999)
    assert json.loads((directory / "meta.json").read_text())["iterations_per_epoch"] == 2
    steps = read_csv(directory / "steps.csv")
    assert float(steps[0]["lr"]) == 0.01 * (1 / 1999)  # untuned linear: tau = int(2 / 0.001)


def test_preset_run_names_are_those_older_versions_gave() -> None:
    """Settings added since 0.1.0 (eps, plugins, momentum, the text tasks' context, norm,
    ...) stay out of the hash at their defaults: these are the names warmup-bench 0.1.0-0.2
    gave (4ce7d0a) to the presets it had."""
    from warmup_bench.runs import run_name
    from warmup_bench.tasks import TASKS

    # the digits preset had torch's beta2 of 0.999 until its own untuned warmup outlasted
    # it: that config keeps its name
    then = {"digits": {"beta2": 0.999}}
    older = {t: run_name(resolve_config(t, then.get(t))) for t in TASKS
             if "shakespeare" not in t}
    assert older == {
        "cifar10-resnet20": "adamw-untuned-linear-multistep-lr0.01-b0.999-s1-834c3764",
        "emnist-cnn": "adamw-untuned-linear-cosine-lr0.01-b0.999-s1-2766f9ec",
        "mnist-vit": "adamw-none-cosine-epoch-lr0.001-b0.999-s1-f1933675",
        "digits": "adamw-untuned-linear-cosine-lr0.01-b0.999-s1-a62e27e7",
        "fashion-mnist-vit": "adamw-none-cosine-epoch-lr0.001-b0.999-s1-b4a1b903"}
    sgd = {"opt": "sgd", "warmup": "linear", "warmup_period": 100, "lr": 0.1, "beta2": 0.999}
    assert run_name(resolve_config("digits", sgd)) == \
        "sgd-linear-p100-cosine-lr0.1-b0.999-s1-0e793db7"
    assert run_name(resolve_config("digits", {**sgd, "momentum": 0.5})) != \
        run_name(resolve_config("digits", sgd))


def test_momentum_is_one_setting_sgd_takes(tmp_path) -> None:
    from warmup_bench.optim import OPTIMIZERS

    cfg = resolve_config("digits", {"opt": "sgd", "warmup": "none", "momentum": 0.5})
    optimizer = OPTIMIZERS["sgd"].build([torch.nn.Parameter(torch.zeros(2))], cfg)
    assert optimizer.param_groups[0]["momentum"] == 0.5
    adamw = OPTIMIZERS["adamw"].build([torch.nn.Parameter(torch.zeros(2))], cfg)
    assert "momentum" not in adamw.param_groups[0]  # Adam takes betas, not momentum
    bad = invoke("train", "--task", "digits", "--momentum", "1", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "--momentum 1.0 must be in [0, 1)" in bad.output
    result = invoke("train", "--task", "digits", "--opt", "sgd", "--warmup", "none", "--lr", "0.05",
                    "--momentum", "0.5", "--epochs", "1", "--no-progress", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "digits").iterdir()
    assert json.loads((folder / "config.json").read_text())["momentum"] == 0.5


def test_a_complete_run_can_be_restarted_to_save_its_model(tmp_path) -> None:
    """`--save-model` on a finished run says how to get the model; --restart trains it
    again (the same numbers: a run is a function of its config) and saves it."""
    args = ["train", "--task", "digits", "--epochs", "2", "--warmup", "none", "--no-progress",
            "--out", str(tmp_path)]
    assert invoke(*args).exit_code == 0
    (folder,) = (tmp_path / "digits").iterdir()
    steps = (folder / "steps.csv").read_bytes()
    again = invoke(*args, "--save-model")
    assert again.exit_code == 0 and "add --restart to train it again with --save-model" in \
        again.output and not (folder / "model.pt").exists()
    predict = invoke("predict", str(folder))
    assert predict.exit_code == 2 and "--save-model --restart" in predict.output
    restarted = invoke(*args, "--save-model", "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert (folder / "model.pt").is_file() and (folder / "steps.csv").read_bytes() == steps
    assert invoke("predict", str(folder)).exit_code == 0


def test_speed_hints_name_the_numbers_and_stay_quiet_otherwise() -> None:
    from warmup_bench.train.device import busy_note, slowdown_note

    assert "load average 2.3 on 2 cores" in busy_note(2.3, 2, 2)
    assert busy_note(0.2, 2, 2) is None and busy_note(4.0, 2, 1) is None  # idle; 1 thread
    note = slowdown_note(3, 250.0, 1000.0, 2)
    assert "epoch 3 trained at 250 images/s, 4x slower than this run's fastest (1,000)" in note
    assert "--threads 1" in note and slowdown_note(3, 900.0, 1000.0, 2) is None
    # a starved epoch from the start (no faster epoch to compare with): its CPU share says
    starved = slowdown_note(1, 900.0, 900.0, 2, cpu_share=0.47)
    assert "epoch 1 got 47% of the CPU time its 2 threads could use" in starved
    assert slowdown_note(1, 900.0, 900.0, 2, cpu_share=0.8) is None
    assert slowdown_note(1, 900.0, 900.0, 1, cpu_share=0.3) is None  # 1 thread: nothing to cut


@pytest.mark.slow
def test_a_busy_machine_is_said_off_a_terminal_and_recorded_in_the_summary(tmp_path,
                                                                           monkeypatch) -> None:
    """Off a terminal (a pipe, a batch job) the note on a busy machine still reaches
    stderr once the run ends, and summary.json keeps it for whoever reads the numbers;
    one thread per run, or an idle machine, records none."""
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    args = ("train", "--task", "digits", "--epochs", "1", "--no-progress")
    busy = invoke(*args, "--threads", "2", "--out", tmp_path / "busy")
    assert busy.exit_code == 0, busy.output
    assert "note: the machine is busy (load average 6.0" in busy.stderr
    assert "(recorded in summary.json)" in busy.stderr
    notes = json.loads((only_run(tmp_path / "busy") / "summary.json").read_text())["notes"]
    # (an epoch starved by real load on this machine may add its own note)
    assert notes[0].startswith("the machine is busy (load average 6.0")
    alone = invoke(*args, "--threads", "1", "--out", tmp_path / "alone")
    assert alone.exit_code == 0 and "busy" not in alone.stderr
    assert "notes" not in json.loads((only_run(tmp_path / "alone") / "summary.json").read_text())
