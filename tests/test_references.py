"""The reference workloads as they ran: initialisation, the ViT preset, each reference's
metric, Adam's eps."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from warmup_bench.cli import app
from warmup_bench.models import build_model
from warmup_bench.optim import OPTIMIZERS
from warmup_bench.runs import RunDir, run_name
from warmup_bench.tasks import resolve_config

runner = CliRunner()


def test_vit_qkv_is_xavier_uniform_like_multihead_attention() -> None:
    """[V]'s nn.MultiheadAttention leaves in_proj_weight (288 x 96) at xavier_uniform:
    U(-b, b), b = sqrt(6 / (96 + 288)) = 0.125, std b / sqrt(3) = 0.072; its output
    projection (an nn.Linear) and the MLP get the truncated normal of std 0.02."""
    torch.manual_seed(0)
    vit = build_model("vit", 10, 1)
    bound = math.sqrt(6 / (96 + 288))
    for block in vit.blocks:
        w = block.attn.qkv.weight
        assert w.shape == (288, 96) and w.abs().max() <= bound
        assert w.abs().max() > 0.99 * bound  # fills the whole interval
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert (block.attn.qkv.bias == 0).all()
        assert block.attn.proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert sum(p.numel() for p in vit.parameters()) == 1_797_130


def test_resnet_and_emnist_cnn_initialisation_match_their_references() -> None:
    """[W]'s CIFAR ResNet: Kaiming-normal (fan_in) conv and linear weights; its EMNIST CNN:
    PyTorch's defaults (kaiming_uniform with a = sqrt(5): bound 1 / sqrt(fan_in))."""
    torch.manual_seed(0)
    resnet = build_model("resnet20", 10, 3)
    for module in resnet.modules():
        if isinstance(module, torch.nn.Conv2d) and module.weight.numel() > 2000:
            fan_in = module.weight[0].numel()
            assert module.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    cnn = build_model("emnist-cnn", 47, 1)
    for module in (cnn.conv1, cnn.conv2, cnn.fc1, cnn.fc2):
        fan_in = module.weight[0].numel()
        assert module.weight.abs().max() <= 1 / math.sqrt(fan_in)
        assert module.weight.abs().max() > 0.95 / math.sqrt(fan_in)


def test_vit_preset_trains_without_augmentation_as_the_reference_ran() -> None:
    assert resolve_config("mnist-vit").augment == "none"
    assert resolve_config("mnist-vit", {"augment": "rotate-translate"}).augment == \
        "rotate-translate"
    result = runner.invoke(app, ["list", "tasks"], env={"COLUMNS": "400"})
    assert "--augment rotate-translate for the described one" in result.output


def test_eps_reaches_the_optimizer_and_default_runs_keep_their_names() -> None:
    cfg = resolve_config("digits", {"eps": 1e-9, "beta2": 0.98})
    optimizer = OPTIMIZERS["adamw"].build([torch.nn.Parameter(torch.zeros(1))], cfg)
    assert optimizer.param_groups[0]["eps"] == 1e-9
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.98)
    default = resolve_config("digits")
    legacy = {k: v for k, v in default.to_dict().items() if k != "eps"}  # 0.1.0's hash input
    digest = hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()
    assert run_name(default).endswith(digest[:8])
    assert run_name(cfg) != run_name(resolve_config("digits", {"beta2": 0.98}))


@pytest.fixture
def val_run(tmp_path):
    from warmup_bench.train import RunOptions, train

    cfg = resolve_config("digits", {"epochs": 5, "val_fraction": 0.25})
    return train(cfg, tmp_path, RunOptions(on_note=lambda _: None)).run


def test_summary_records_each_references_metric(val_run: RunDir, tmp_path) -> None:
    epochs = val_run.read_epochs()
    assert {"val_acc", "val_top5", "test_top5"} <= set(epochs.columns)
    assert (epochs["test_top5"] >= epochs["test_acc"]).all()
    summary = val_run.read_summary()
    best_val = epochs.loc[epochs["val_acc"].idxmax()]
    assert summary.best_val_epoch == int(best_val["epoch"])
    assert summary.best_val_acc == best_val["val_acc"]
    assert summary.test_acc_at_best_val == best_val["test_acc"]
    assert summary.test_top5_at_best_val == best_val["test_top5"]
    assert summary.best_test_acc == epochs["test_acc"].max()
    out = runner.invoke(app, ["report", str(tmp_path), "--metric", "at-best-val", "--format",
                              "csv"])
    assert out.exit_code == 0, out.output
    error = round(100 * (1 - summary.test_acc_at_best_val), 10)
    assert f",{error}," in out.output
