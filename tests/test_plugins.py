"""Extending without forking: a plugin warmup trained, swept and reported; plugins
recorded with their hashes and required on resume; installed plugin packages; data sets
from an .npz or an image folder; TensorBoard event files."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clirun import invoke

from warmup_bench import plugins
from warmup_bench.data import DATASETS
from warmup_bench.data.readers import read_sklearn_digits
from warmup_bench.optim import OPTIMIZERS, WARMUPS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "experiments" / "plugins"


def only_run(root: Path, pattern: str = "*") -> Path:
    [run] = [p for p in root.glob(f"*/{pattern}") if p.is_dir()]
    return run


# ---- the example plugin, end to end ---------------------------------------------------


@pytest.mark.slow
def test_example_plugin_grid_is_swept_reported_and_listed(tmp_path) -> None:
    out = tmp_path / "results"
    grid = EXAMPLE / "digits-cosine.toml"
    result = invoke("sweep", grid, "--out", out, "--epochs", "3", "--jobs", "2",
                    "--tensorboard", "--allow-plugins")
    assert result.exit_code == 0, result.output
    assert "8 complete, 0 diverged, 0 failed" in result.output
    assert len(list(out.glob("digits/*/tensorboard/events.out.tfevents.*"))) == 8
    ref = plugins.Plugin("cosine_warmup.py",
                         plugins.sha256_of(EXAMPLE / "cosine_warmup.py")).ref
    configs = [json.loads(p.read_text()) for p in out.glob("digits/*/config.json")]
    assert sorted(c["plugins"] for c in configs) == [[]] * 6 + [[ref]] * 2
    assert {c["warmup"] for c in configs if c["plugins"]} == {"untuned-cosine"}

    report = invoke("report", out, "--experiment", grid, "--epochs", "3", "--format",
                    "markdown", "--allow-plugins")
    assert report.exit_code == 0, report.output
    rows = [line for line in report.output.splitlines() if line.startswith("| AdamW/")]
    assert sorted(r.split("|")[1].strip() for r in rows) == ["AdamW/Cosine", "AdamW/Expo",
                                                             "AdamW/Linear", "AdamW/None"]
    assert all("(2)" in r for r in rows)  # both seeds of every cell

    listed = invoke("list", "warmups", "--plugin", EXAMPLE / "cosine_warmup.py")
    assert "untuned-cosine" in listed.output and ref in listed.output
    assert "built in" in listed.output


def test_plugin_warmup_gives_its_exact_lr_and_is_required_on_resume(tmp_path) -> None:
    out, plugin = tmp_path / "results", EXAMPLE / "cosine_warmup.py"
    unset = invoke("train", "--task", "digits", "--warmup", "cosine", "--plugin", plugin)
    assert unset.exit_code == 2  # its entry's rules, checked like a built-in's
    assert "--warmup cosine needs --warmup-period" in unset.output
    sgd = invoke("train", "--task", "digits", "--warmup", "untuned-cosine", "--opt", "sgd",
                 "--plugin", plugin)
    assert sgd.exit_code == 2 and "derives its period from beta2" in sgd.output
    args = ("train", "--task", "digits", "--warmup", "cosine", "--warmup-period", "60",
            "--schedule", "constant", "--lr", "0.01", "--epochs", "2", "--log-interval", "1",
            "--out", out)
    result = invoke(*args, "--plugin", plugin)
    assert result.exit_code == 0, result.output
    steps = pd.read_csv(only_run(out) / "steps.csv")
    expected = [0.01 * (1 - math.cos(math.pi * min(t, 60) / 60)) / 2 for t in steps["step"]]
    assert steps["lr"].tolist() == expected  # bit for bit

    WARMUPS.pop("cosine")  # as in a new process without --plugin (its provider goes too)
    again = invoke(*args, "--resume")
    assert again.exit_code == 2
    assert again.output.count("\n") == 1 and "cosine_warmup.py#sha256:" in again.output
    assert "pass --plugin" in again.output

    report = invoke("report", out)  # the only run needs the plugin: skipped, and said why
    assert report.exit_code == 2 and "needs plugin cosine_warmup.py#sha256:" in report.output


@pytest.mark.slow
def test_changed_plugin_source_is_named_not_silently_used(tmp_path) -> None:
    out = tmp_path / "results"
    first = tmp_path / "v1" / "cosine_warmup.py"
    first.parent.mkdir()
    shutil.copy(EXAMPLE / "cosine_warmup.py", first)
    result = invoke("train", "--task", "digits", "--warmup", "untuned-cosine", "--beta2", "0.99",
                    "--epochs", "1", "--out", out, "--plugin", first)
    assert result.exit_code == 0, result.output
    changed = tmp_path / "v2" / "cosine_warmup.py"
    changed.parent.mkdir()
    changed.write_text(first.read_text() + "\n# edited\n")
    report = subprocess.run([sys.executable, "-m", "warmup_bench", "report", str(out),
                             "--plugin", str(changed)], capture_output=True, text=True)
    assert report.returncode == 2
    assert "its source changed" in report.stderr and "cosine_warmup.py#sha256:" in report.stderr


@pytest.mark.parametrize("source, needle", [
    ("def broken(:\n", "failed to load (line 1): SyntaxError"),
    ("import warmup_bench as wb\nwb.register_warmup('linear', None, description='x')\n",
     "warmup 'linear' is built in"),
    ("raise RuntimeError('no GPU here')\n", "failed to load (line 1): RuntimeError: no GPU here"),
    ("import warmup_bench as wb\nwb.register_model('my net', None)\n", "must be a non-empty"),
])
def test_a_bad_plugin_is_one_line_exit_2(tmp_path, source: str, needle: str) -> None:
    path = tmp_path / "bad_plugin.py"
    path.write_text(source)
    result = invoke("list", "warmups", "--plugin", path)
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert needle in result.output and "bad_plugin.py" in result.output


@pytest.mark.slow
def test_plugin_schedule_and_in_memory_data_set_train(tmp_path) -> None:
    path = tmp_path / "extras.py"
    path.write_text(
        "import numpy as np\nfrom torch.optim.lr_scheduler import StepLR\n"
        "import warmup_bench as wb\n\n"
        "def read():\n"
        "    rng = np.random.default_rng(0)\n"
        "    y = rng.integers(0, 3, 96)\n"
        "    x = y[:, None, None, None] * 80 + rng.integers(0, 40, (96, 1, 8, 8))\n"
        "    x = x.astype(np.uint8)\n"
        "    return (x[:64], y[:64]), (x[64:], y[64:])\n\n"
        "wb.register_dataset('stripes', read, num_classes=3, shape=(1, 8, 8))\n"
        "wb.register_schedule('halve-each-epoch', lambda optimizer, *, cfg, iters_per_epoch,"
        " total, delay: StepLR(optimizer, 1, 0.5), description='x0.5 per epoch',"
        " per_epoch=True)\n")
    listed = invoke("data", "list", "--plugin", path)
    assert "stripes" in listed.output and "plugin" in listed.output
    data = invoke("train", "--task", "digits", "--plugin", path, "--data", "stripes", "--schedule",
                  "halve-each-epoch", "--warmup", "none", "--batch-size", "16", "--epochs", "3",
                  "--log-interval", "1", "--lr", "0.004", "--out", tmp_path / "s")
    assert data.exit_code == 0, data.output
    steps = pd.read_csv(only_run(tmp_path / "s") / "steps.csv")
    assert [list(v) for v in steps.groupby("epoch")["lr"].unique()] == [[0.004], [0.002],
                                                                         [0.001]]
    config = json.loads((only_run(tmp_path / "s") / "config.json").read_text())
    assert config["dataset"] == "stripes" and config["plugins"][0].startswith("extras.py#")


def test_missing_or_non_python_plugin_is_refused(tmp_path) -> None:
    assert "no such file" in invoke("list", "tasks", "--plugin", tmp_path / "x.py").output
    (tmp_path / "x.txt").write_text("")
    assert "a plugin is a Python file" in invoke("list", "tasks", "--plugin",
                                                 tmp_path / "x.txt").output


@pytest.mark.slow
def test_installed_package_plugin_is_found_by_its_entry_point(tmp_path) -> None:
    """A package declaring an entry point in group warmup_bench.plugins: its model, task
    and optimizer appear without any --plugin."""
    site = tmp_path / "site"
    (site / "wb_extra-1.0.dist-info").mkdir(parents=True)
    (site / "wb_extra-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wb-extra\nVersion: 1.0\n")
    (site / "wb_extra-1.0.dist-info" / "entry_points.txt").write_text(
        "[warmup_bench.plugins]\nextra = wb_extra:register\n")
    (site / "wb_extra.py").write_text(
        "import torch\nfrom torch import nn\nimport warmup_bench as wb\n\n"
        "def register():\n"
        "    wb.register_model('tiny-mlp', lambda num_classes, in_channels: nn.Sequential(\n"
        "        nn.Flatten(), nn.Linear(in_channels * 64, num_classes)))\n"
        "    wb.register_optimizer('adamw-amsgrad2', torch.optim.AdamW, description='AMSGrad',"
        " options={'amsgrad': True})\n"
        "    wb.register_task('digits-mlp', dataset='digits', model='tiny-mlp', epochs=2,"
        " warmup='untuned-linear', description='a linear model on digits')\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "warmup_bench", *map(str, args)],
                              capture_output=True, text=True, env={**env, "COLUMNS": "250"})
    listed = cli("list", "tasks")
    assert "digits-mlp" in listed.stdout and "extra#sha256:" in listed.stdout
    trained = cli("train", "--task", "digits-mlp", "--opt", "adamw-amsgrad2", "--out",
                  tmp_path / "r", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    config = json.loads(next((tmp_path / "r").glob("digits-mlp/*/config.json")).read_text())
    assert config["model"] == "tiny-mlp" and config["plugins"][0].startswith("extra#sha256:")


# ---- your own data ----------------------------------------------------------------------


def digits_arrays():
    (train_x, train_y), (test_x, test_y) = read_sklearn_digits()
    return train_x, train_y, test_x, test_y


def test_npz_data_set_trains_exactly_like_the_same_data_built_in(tmp_path) -> None:
    train_x, train_y, test_x, test_y = digits_arrays()
    path = tmp_path / "digits.npz"
    np.savez_compressed(path, x_train=train_x[:, 0], y_train=train_y.astype(np.int32),
                        x_test=test_x[:, 0], y_test=test_y)  # (N, H, W), int32 labels
    common = ("train", "--task", "digits", "--epochs", "3", "--no-diagnostics")
    built_in = invoke(*common, "--out", tmp_path / "a")
    own = invoke(*common, "--data", f"npz:{path}", "--out", tmp_path / "b")
    assert built_in.exit_code == 0 and own.exit_code == 0, own.output
    a, b = only_run(tmp_path / "a"), only_run(tmp_path / "b")
    assert pd.read_csv(a / "steps.csv").equals(pd.read_csv(b / "steps.csv"))
    assert pd.read_csv(a / "epochs.csv").drop(columns=["seconds", "images_per_second"]).equals(
        pd.read_csv(b / "epochs.csv").drop(columns=["seconds", "images_per_second"]))
    config = json.loads((b / "config.json").read_text())
    assert config["dataset"] == "npz:digits.npz"
    assert config["plugins"] == [f"npz:digits.npz#sha256:{plugins.sha256_of(path)[:16]}"]


def test_npz_channels_last_colour_images_are_read_as_nchw(tmp_path) -> None:
    from warmup_bench.data import load_dataset
    from warmup_bench.extend import register_data

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x, y_train=np.arange(20) % 4, x_test=x[:8],
             y_test=np.arange(8) % 4, class_names=np.array(["a", "b", "c", "d"]))
    data = load_dataset(register_data(f"npz:{tmp_path / 'c.npz'}"))
    assert data.input_shape == (3, 6, 5) and data.num_classes == 4
    assert np.array_equal(data.train.images.numpy(), x.transpose(0, 3, 1, 2))
    assert len(data.mean) == 3  # per-channel statistics of the train split
    assert DATASETS["npz:c.npz"].class_names == ("a", "b", "c", "d")


def npy_header_only(shape, dtype="|u1") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


@pytest.mark.parametrize("arrays, needle", [
    ({"x_train": np.zeros((4, 8, 8), np.float32)}, "x_train is float32; images must be uint8"),
    ({"x_train": np.array([{"a": 1}] * 4, dtype=object)}, "holds Python objects"),
    ({"y_train": np.zeros(3, np.int64)}, "y_train must be 4 integer labels"),
    ({"y_train": np.full(4, -1)}, "train labels run from -1"),
    ({"x_train": np.zeros((4, 3, 8, 3), np.uint8)}, "images must be (N, H, W)"),
    ({"x_test": None}, "no x_test array"),
])
def test_bad_npz_is_one_line_exit_2_and_writes_nothing(tmp_path, arrays, needle) -> None:
    good = {"x_train": np.zeros((4, 8, 8), np.uint8), "y_train": np.arange(4) % 2,
            "x_test": np.zeros((2, 8, 8), np.uint8), "y_test": np.arange(2)}
    merged = {k: v for k, v in {**good, **arrays}.items() if v is not None}
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:  # np.savez, pickles allowed
        for name, value in merged.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=True)
    result = invoke("train", "--task", "digits", "--data", f"npz:{tmp_path / 'bad.npz'}",
                    "--out", tmp_path / "r")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert needle in result.output
    assert not (tmp_path / "r").exists()


def test_npz_header_claiming_huge_arrays_is_refused_before_reading(tmp_path) -> None:
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x_train.npy", npy_header_only((10**9, 28, 28)))  # no data at all
        for name, shape in (("y_train", (10**9,)), ("x_test", (1, 28, 28)), ("y_test", (1,))):
            archive.writestr(f"{name}.npy", npy_header_only(shape, "<i8" if "y" in name
                                                            else "|u1"))
    result = invoke("train", "--task", "digits", "--data", f"npz:{tmp_path / 'huge.npz'}",
                    "--out", tmp_path / "r")
    assert result.exit_code == 2 and "more than 8,589,934,592 bytes" in result.output


def write_image_folder(root: Path, per_class: int | None = None) -> None:
    from PIL import Image

    train_x, train_y, test_x, test_y = digits_arrays()
    for split, images, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0]).save(folder / f"{i:05d}.png")


def test_image_folder_trains_end_to_end_and_reads_the_pixels_exactly(tmp_path) -> None:
    from warmup_bench.data import load_dataset
    from warmup_bench.extend import register_data

    write_image_folder(tmp_path / "digits")
    data = load_dataset(register_data(f"folder:{tmp_path / 'digits'}"))
    train_x, train_y, _, _ = digits_arrays()
    order = np.argsort(train_y, kind="stable")  # class by class, files in name order
    assert np.array_equal(data.train.images.numpy(), train_x[order])
    assert np.array_equal(data.train.labels.numpy(), train_y[order])
    assert DATASETS["folder:digits"].class_names == tuple(f"class_{d}" for d in range(10))

    result = invoke("train", "--task", "digits", "--data", f"folder:{tmp_path / 'digits'}",
                    "--epochs", "10", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    summary = json.loads((only_run(tmp_path / "r") / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["best_test_acc"] > 0.9


def test_image_folder_faults_are_one_line(tmp_path) -> None:
    from PIL import Image

    write_image_folder(tmp_path / "d")
    wrong = invoke("train", "--task", "emnist-cnn", "--data", f"folder:{tmp_path / 'd'}",
                   "--epochs", "1", "--out", tmp_path / "r")  # a 28x28 model on 8x8 images
    assert wrong.exit_code == 2 and "--model emnist-cnn cannot take" in wrong.output
    assert not (tmp_path / "r").exists()
    Image.new("L", (9, 8)).save(tmp_path / "d" / "test" / "class_3" / "odd.png")
    result = invoke("train", "--task", "digits", "--data", f"folder:{tmp_path / 'd'}",
                    "--out", tmp_path / "r")
    assert result.exit_code == 2 and "odd.png: 9x8 pixels; the first image is 8x8" in \
        result.output
    (tmp_path / "e" / "train" / "a").mkdir(parents=True)
    result = invoke("train", "--task", "digits", "--data", f"folder:{tmp_path / 'e'}")
    assert result.exit_code == 2 and "holds train/ and test/ (or val/)" in result.output
    assert "use npz:PATH, folder:PATH, text:PATH" in invoke("train", "--data", "csv:x").output


# ---- TensorBoard ------------------------------------------------------------------------


def test_tensorboard_reader_sees_the_logged_metrics(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = invoke("train", "--task", "digits", "--epochs", "2", "--tensorboard",
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path)
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    steps, epochs = pd.read_csv(run / "steps.csv"), pd.read_csv(run / "epochs.csv")
    diagnostics = pd.read_csv(run / "diagnostics.csv")
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == steps["step"].tolist()
    assert np.allclose([e.value for e in loss], steps["loss"], rtol=1e-6)  # float32 events
    test_acc = events.Scalars("epoch/test_acc")
    iters = json.loads((run / "meta.json").read_text())["iterations_per_epoch"]
    assert [e.step for e in test_acc] == [iters * e for e in epochs["epoch"]]
    assert np.allclose([e.value for e in test_acc], epochs["test_acc"], rtol=1e-6)
    assert len(events.Scalars("diagnostics/update_norm")) == len(diagnostics)


@pytest.mark.parametrize("lines, needle", [
    ('plugins = "cosine_warmup.py"', "plugins must be a list of file paths"),
    ('plugins = ["nowhere.py"]', "nowhere.py: no such file"),
    ('tensorboard = "yes"', "tensorboard must be true or false"),
])
def test_bad_grid_plugin_keys_are_one_line(tmp_path, lines: str, needle: str) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(f'{lines}\ntask = "digits"\n[grid]\nlr = [0.01]\n')
    result = invoke("sweep", grid, "--out", tmp_path / "r")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and needle in result.output


def test_tensorboard_missing_is_one_line_before_any_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    result = invoke("train", "--task", "digits", "--tensorboard", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "pip install 'warmup-bench[tensorboard]'" in result.output
    assert not (tmp_path / "r").exists()


def test_a_plugin_failing_half_way_leaves_nothing_registered(tmp_path) -> None:
    path = tmp_path / "half.py"
    path.write_text("import warmup_bench as wb\nfrom torch.optim import SGD\n"
                    "wb.register_optimizer('plain-sgd', SGD, description='x', has_betas=False)\n"
                    "raise ValueError('then it breaks')\n")
    result = invoke("list", "optimizers", "--plugin", path)
    assert result.exit_code == 2 and "line 4): ValueError: then it breaks" in result.output
    assert "plain-sgd" not in OPTIMIZERS and OPTIMIZERS.provider("plain-sgd") is None


def test_a_plugin_optimizer_with_a_fused_step_takes_it_on_a_cpu(tmp_path) -> None:
    """`fused=True` in the registration: a CPU run steps it fused, as the built-ins."""
    path = tmp_path / "fused_opt.py"
    path.write_text("import torch\nimport warmup_bench as wb\n"
                    "wb.register_optimizer('adamw2', torch.optim.AdamW, description='x', "
                    "fused=True)\nwb.register_optimizer('adamw3', torch.optim.AdamW, "
                    "description='y')\n")
    for name, kernel in (("adamw2", "fused"), ("adamw3", "for-loop")):
        result = invoke("train", "--task", "digits", "--epochs", "1", "--opt", name,
                        "--plugin", path, "--no-progress", "--no-diagnostics",
                        "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        meta = json.loads((only_run(tmp_path / name) / "meta.json").read_text())
        assert meta["optimizer_kernel"] == kernel
