"""The reference workloads as they ran: initialisation, the ViT preset, each reference's
metric, Adam's eps."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
from clirun import invoke
from runfolders import write_finished_run

from warmup_bench.models import build_model
from warmup_bench.optim import OPTIMIZERS
from warmup_bench.runs import RunDir, run_name
from warmup_bench.tasks import resolve_config


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
    result = invoke("list", "tasks")
    assert "--augment rotate-translate for the described one" in result.output


def test_eps_reaches_the_optimizer_and_default_runs_keep_their_names() -> None:
    cfg = resolve_config("digits", {"eps": 1e-9, "beta2": 0.98})
    optimizer = OPTIMIZERS["adamw"].build([torch.nn.Parameter(torch.zeros(1))], cfg)
    assert optimizer.param_groups[0]["eps"] == 1e-9
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.98)
    default = resolve_config("digits")
    added_since_0_1 = ("eps", "plugins", "momentum", "cooldown_fraction", "cooldown_shape",
                       "context", "norm", "qk_norm", "dropout", "epoch_steps", "bias",
                       "weight_decay_on", "precise_bn")
    legacy = {k: v for k, v in default.to_dict().items()
              if k not in added_since_0_1}  # 0.1.0's hash input
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
    out = invoke("report", str(tmp_path), "--metric", "at-best-val", "--format", "csv")
    assert out.exit_code == 0, out.output
    error = round(100 * (1 - summary.test_acc_at_best_val), 10)
    assert f",{error}," in out.output


# ---- the ViT write-up's workflow: predictions, one image, ONNX, speed -------------------


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> RunDir:
    out = tmp_path_factory.mktemp("digits")
    result = invoke("train", "--task", "digits", "--epochs", "4", "--save-model", "--no-progress",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    (folder,) = (out / "digits").iterdir()
    return RunDir(folder)


def test_predictions_grid_has_one_panel_per_image(digits_model) -> None:
    from warmup_bench import plots
    from warmup_bench.inference import load_trained, predict_test_images

    trained = load_trained(digits_model.path)
    images, labels, predicted = predict_test_images(trained, 16)
    figure = plots.predictions_figure(images.numpy(), labels.tolist(), predicted.tolist(),
                                      trained.class_names, "t")
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 16 and len(figure.axes) == 16
    for ax, label, guess in zip(panels, labels.tolist(), predicted.tolist()):
        colour = "green" if label == guess else "red"
        assert ax.title.get_color() == colour
        assert ax.title.get_text().startswith(str(guess))
        assert ("true" in ax.title.get_text()) == (label != guess)
    nine = plots.predictions_figure(images[:9].numpy(), labels[:9].tolist(),
                                    predicted[:9].tolist(), trained.class_names, "t")
    assert len(nine.axes) == 9  # a 3 x 3 grid
    result = invoke("predict", str(digits_model.path), "--images", "16")
    assert result.exit_code == 0, result.output
    assert digits_model.predictions_path.read_bytes()[:4] == b"\x89PNG"
    right = int((labels == predicted).sum())
    assert f"{right} of 16 right" in result.output


def test_classify_one_image_file(digits_model, tmp_path) -> None:
    from PIL import Image

    from warmup_bench.inference import load_trained

    trained = load_trained(digits_model.path)
    digit = trained.data.test.images[0, 0].numpy()  # 8 x 8, saved larger: resized back
    Image.fromarray(digit).resize((32, 32), Image.Resampling.NEAREST).save(tmp_path / "d.png")
    result = invoke("predict", str(digits_model.path), "--image", str(tmp_path / "d.png"))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("1.")
    probabilities = [float(line.rsplit(None, 1)[1].rstrip("%")) for line in lines]
    # each printed rounded to 0.01: their sum is at most 100 + 5 x 0.005
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 100 + 5 * 0.005
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = invoke("predict", str(digits_model.path), "--image", str(tmp_path / "bad.png"))
    assert bad.exit_code == 2 and "not a readable image" in bad.stderr


def test_predict_without_a_saved_model_is_one_line(tmp_path) -> None:
    result = invoke("train", "--task", "digits", "--epochs", "1", "--no-progress", "--out",
                    str(tmp_path))
    (folder,) = (tmp_path / "digits").iterdir()
    for command in ("predict", "export"):
        result = invoke(command, str(folder))
        assert result.exit_code == 2 and "has no saved model: train it with --save-model" \
            in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_onnx_round_trip_of_the_digits_model(digits_model, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    result = invoke("export", str(digits_model.path), "--out", str(tmp_path / "digits.onnx"))
    assert result.exit_code == 0, result.output
    difference = float(result.output.rsplit("logits", 1)[1])
    assert difference < 1e-4
    import onnxruntime

    # one self-contained file: copied alone elsewhere (twice exported), it still runs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.onnx"]
    again = invoke("export", str(digits_model.path), "--out", str(tmp_path / "digits.onnx"))
    assert again.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["digits.onnx"]
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / "model.onnx").write_bytes((tmp_path / "digits.onnx").read_bytes())
    session = onnxruntime.InferenceSession(str(elsewhere / "model.onnx"))
    assert session.get_inputs()[0].shape[0] not in (1, 4)  # a symbolic batch axis
    for batch in (1, 9):
        out = session.run(None, {session.get_inputs()[0].name:
                                 torch.zeros(batch, 1, 8, 8).numpy()})[0]
        assert out.shape == (batch, 10)


@pytest.mark.slow
def test_onnx_round_trip_of_the_vit(tmp_path) -> None:
    """The ViT trained one epoch on MNIST-format files, then exported and checked."""
    pytest.importorskip("onnxruntime")
    from datafiles import write_idx_dataset

    from warmup_bench.data.catalog import IDX_FILES
    from warmup_bench.inference import export_onnx, load_trained

    write_idx_dataset(tmp_path / "data" / "MNIST" / "raw", IDX_FILES, sizes=(256, 64))
    result = invoke("train", "--task", "mnist-vit", "--epochs", "1", "--no-progress",
                    "--save-model", "--data-dir", str(tmp_path / "data"), "--out",
                    str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "out" / "mnist-vit").iterdir()
    trained = load_trained(folder, tmp_path / "data")
    difference = export_onnx(trained, tmp_path / "vit.onnx")
    assert difference < 1e-4


def test_export_without_its_extra_names_the_extra(digits_model, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("hidden", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    result = invoke("export", str(digits_model.path))
    assert result.exit_code == 2
    assert "pip install 'warmup-bench[export]'" in result.stderr and \
        "onnxruntime is missing" in result.stderr


def test_speed_table_from_run_files(tmp_path) -> None:
    """Two devices, written as the runs write them: seconds per epoch, speed-up."""
    from warmup_bench.report import collect_runs, speed_frame

    for device, seconds in (("NVIDIA H100", 2.0), ("cpu (AMD EPYC)", 50.0)):
        cfg = resolve_config("digits", {"seed": 1 if seconds == 2.0 else 2, "epochs": 2})
        write_finished_run(tmp_path, cfg, [0.9, 0.8], seconds=seconds,
                           images_per_second=1000 / seconds, wall_seconds=2 * seconds + 1,
                           meta={"device": "x", "device_name": device})
    frame = speed_frame(collect_runs(tmp_path, lambda _: None)).set_index("device")
    assert frame.loc["NVIDIA H100", "speedup_over_slowest"] == pytest.approx(25.0)
    assert frame.loc["cpu (AMD EPYC)", "speedup_over_slowest"] == pytest.approx(1.0)
    assert frame.loc["NVIDIA H100", "total_seconds"] == pytest.approx(4.0)  # 2 epochs x 2 s
    assert frame.loc["NVIDIA H100", "best_test_acc"] == pytest.approx(90.0)
    result = invoke("report", str(tmp_path), "--speed", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "| digits | NVIDIA H100 | 1 | 2.00 | 500 | 4.0 | 90.00 | 80.00 | 25.00x |" in \
        result.output
