"""--precise-bn: evaluations at BatchNorm statistics recomputed at each epoch's weights,
beside the protocol's, with the training itself bit for bit as without; and the report
that reads either."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from clirun import invoke

from warmup_bench.execution import RunOptions
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train

QUIET = RunOptions(on_note=None, diagnostics=False)
# a ResNet (the models with BatchNorm) on the embedded digits: seconds on a CPU
RESNET = {"model": "resnet20", "epochs": 2, "train_samples": 512}


def only_run(out: Path) -> Path:
    (run,) = (out / "digits").iterdir()
    return run


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path]:
    """The same run trained without and with --precise-bn 4 (each in its own folder)."""
    root = tmp_path_factory.mktemp("pbn")
    for name, extra in (("plain", {}), ("precise", {"precise_bn": 4})):
        result = train(resolve_config("digits", RESNET | extra), root / name, QUIET)
        assert result.status == "complete"
    return only_run(root / "plain"), only_run(root / "precise")


def test_training_is_bit_identical_with_the_option(both) -> None:
    """Same steps.csv bytes, same final weights and BatchNorm buffers, same protocol
    numbers in epochs.csv: the recomputation drew no random number and put training's
    statistics back."""
    plain, precise = both
    assert (plain / "steps.csv").read_bytes() == (precise / "steps.csv").read_bytes()
    weights = [torch.load(p / "checkpoint.pt", weights_only=False)["model"]
               for p in (plain, precise)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    a, b = pd.read_csv(plain / "epochs.csv"), pd.read_csv(precise / "epochs.csv")
    protocol = [c for c in a.columns if c not in ("seconds", "images_per_second")]
    assert a[protocol].equals(b[protocol])
    extra = [c for c in b.columns if c not in a.columns]
    assert extra == ["test_loss_pbn", "test_acc_pbn", "test_top5_pbn"]
    # recomputed statistics give other numbers than the lagging running ones
    assert not b["test_loss_pbn"].equals(b["test_loss"])
    # recorded with the run (and in its name's hash: never the same folder as without)
    assert json.loads((precise / "config.json").read_text())["precise_bn"] == 4
    assert json.loads((plain / "config.json").read_text())["precise_bn"] is None
    assert plain.name != precise.name


def test_the_recomputed_statistics_are_the_average_over_the_fixed_batches() -> None:
    """The statistics evaluated with are BatchNorm's exact average over the N fixed
    training batches at the current weights (cumulative, not a running average
    weighted toward the last batches), and training's are back afterwards."""
    from warmup_bench.data import load_dataset
    from warmup_bench.train.build import build_net, make_loaders
    from warmup_bench.train.evaluation import recomputed_batchnorm

    cfg = resolve_config("digits", RESNET)
    data = load_dataset("digits")
    loaders = make_loaders(cfg, data, torch.device("cpu"))
    net = build_net(cfg, data, torch.device("cpu"), len(loaders.train))
    first = net.model.bn  # the stem's BatchNorm: its input is the first convolution's
    before = first.running_mean.clone()
    batches = list(loaders.train.fixed_batches(3))
    with torch.no_grad():
        means = [net.model.conv(x).mean((0, 2, 3)) for x in batches]
    with recomputed_batchnorm(net, loaders.train, 3):
        assert torch.allclose(first.running_mean, torch.stack(means).mean(0), atol=1e-6)
        assert first.momentum == 0.1  # restored once the recomputation is done
    assert torch.equal(first.running_mean, before)


@pytest.mark.slow
def test_in_a_pack_each_member_recomputes_its_own_and_trains_as_without(tmp_path) -> None:
    """A pack's members hold views into the stacked BatchNorm buffers: each recomputes
    and restores its own, and both members' steps are the bytes of a pack without."""
    from warmup_bench.train import train_pack

    for name, extra in (("plain", {}), ("precise", {"precise_bn": 4})):
        cfgs = [resolve_config("digits", RESNET | extra | {"seed": seed}) for seed in (1, 2)]
        outcomes = train_pack(cfgs, tmp_path / name, QUIET)
        assert [o.status.value for o in outcomes] == ["complete", "complete"]
    def by_seed(name: str) -> dict[int, Path]:
        return {json.loads((run / "config.json").read_text())["seed"]: run
                for run in (tmp_path / name / "digits").iterdir()}

    plains, precises = by_seed("plain"), by_seed("precise")
    assert sorted(plains) == sorted(precises) == [1, 2]
    for seed, plain in plains.items():
        precise = precises[seed]
        assert (plain / "steps.csv").read_bytes() == (precise / "steps.csv").read_bytes()
        recomputed = pd.read_csv(precise / "epochs.csv")["test_acc_pbn"]
        assert recomputed.between(0, 1).all()


def test_a_model_without_batchnorm_changes_nothing_and_says_so_once(tmp_path) -> None:
    result = invoke("train", "--task", "digits", "--epochs", "2", "--precise-bn", "4",
                    "--no-progress", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.count("--precise-bn 4 changes nothing for digits-net") == 1
    epochs = pd.read_csv(only_run(tmp_path) / "epochs.csv")
    for name in ("test_loss", "test_acc", "test_top5"):
        assert epochs[f"{name}_pbn"].equals(epochs[name])


def test_the_report_reads_either_number_and_says_which(both, tmp_path) -> None:
    """Default: the protocol's numbers (what the papers report, what --compare reads),
    runs with and without the option in separate rows; --precise-bn: the recomputed
    ones, runs without the option skipped, the title saying so, in JSON too."""
    plain, precise = both
    results = plain.parents[2]
    protocol = invoke("report", results, "--format", "json")
    assert protocol.exit_code == 0, protocol.output
    cells = json.loads(protocol.stdout)[0]["cells"]
    assert len(cells) == 2 and cells[0]["mean"] == cells[1]["mean"]  # apart, yet equal
    recomputed = invoke("report", results, "--precise-bn", "--format", "json")
    assert recomputed.exit_code == 0, recomputed.output
    (table,) = json.loads(recomputed.stdout)
    assert "BatchNorm statistics recomputed (--precise-bn)" in table["metric"]
    (cell,) = table["cells"]
    epochs = pd.read_csv(precise / "epochs.csv")
    assert cell["mean"] == pytest.approx(100 * (1 - epochs["test_acc_pbn"].max()))
    assert "trained without --precise-bn" in recomputed.stderr
    steps = invoke("report", results, "--precise-bn", "--metric", "final", "--format", "csv")
    assert steps.exit_code == 0 and f"{100 * (1 - epochs['test_acc_pbn'].iloc[-1]):.2f}" in \
        steps.stdout
    refused = invoke("report", results, "--precise-bn", "--compare", "--experiment",
                     "digits")
    assert refused.exit_code == 2 and "leave out --precise-bn to compare" in refused.output
    # the figures, phase diagram and LR sensitivity draw from the table's runs: with
    # --precise-bn those are the recomputed views, epochs.csv's *_pbn numbers throughout
    from warmup_bench.report import make_report

    made = make_report(results, metric="best", warn=lambda _: None, precise_bn=True)
    ((_, (view,)),) = made.tables
    assert view.epochs["test_acc"].tolist() == epochs["test_acc_pbn"].tolist()
    assert view.summary.best_test_acc == epochs["test_acc_pbn"].max()


@pytest.mark.slow
def test_it_works_under_amp_and_compile(tmp_path) -> None:
    """bf16 autocast (where the CPU has it) and torch.compile: the recomputation runs
    the compiled model with BatchNorm in train mode, and training's steps stay those of
    the same run without the option."""
    steps = {}
    for name, extra in (("plain", {}), ("precise", {"precise_bn": 3})):
        cfg = resolve_config("digits", RESNET | {"epochs": 1, "amp": True, "compile": True}
                             | extra)
        assert train(cfg, tmp_path / name, QUIET).status == "complete"
        steps[name] = (only_run(tmp_path / name) / "steps.csv").read_bytes()
    assert steps["plain"] == steps["precise"]
    epochs = pd.read_csv(only_run(tmp_path / "precise") / "epochs.csv")
    assert epochs["test_acc_pbn"].between(0, 1).all()
