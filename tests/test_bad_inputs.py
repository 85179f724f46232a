"""Bad inputs, table-driven: CLI flags, data files, grid files, run folders, checkpoints.

Every case asserts the exit code, exactly one line on stderr that names the bad value, no
traceback, and nothing written or changed on disk that should not be. Only the digits
task ever trains here, so the whole table runs in seconds.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import invoke
from datafiles import idx_bytes, write_cifar_python, write_idx_dataset

from warmup_bench.config import ConfigError, TrainConfig
from warmup_bench.data.catalog import IDX_FILES
from warmup_bench.runs import run_name
from warmup_bench.tasks import resolve_config


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def assert_one_line_error(result, code: int, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output and needle in lines[0], (needle, lines[0])


# ---- 1. CLI flags of train ------------------------------------------------------------

TRAIN_FLAGS = [
    # devices
    (["--device", "tpu"], "--device 'tpu' is not a device"),
    (["--device", "xpu"], "--device 'xpu'"),
    (["--device", ""], "--device ''"),
    (["--device", "cpu:-1"], "--device 'cpu:-1'"),
    (["--device", "meta"], "--device 'meta'"),
    (["--device", "gpu"], "--device 'gpu'"),
    (["--device", "cpu:0"], "--device 'cpu:0'"),
    (["--device", "cuda:abc"], "--device 'cuda:abc'"),
    (["--device", "mps:0"], "--device 'mps:0'"),
    (["--device", "CPU"], "--device 'CPU'"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--device", "cpu,cuda"], "--device 'cpu,cuda'"),
    # non-finite and out-of-range numbers
    (["--lr", "inf"], "--lr inf must be a finite number"),
    (["--lr", "nan"], "--lr nan must be a finite number"),
    (["--lr", "-inf"], "--lr -inf"),
    (["--lr", "1e400"], "--lr inf"),
    (["--lr", "-0.1"], "--lr -0.1 must be positive"),
    (["--lr", "0"], "--lr 0.0 must be positive"),
    (["--lr", "fast"], "--lr"),
    (["--weight-decay", "nan"], "--weight-decay nan"),
    (["--weight-decay", "-0.1"], "--weight-decay -0.1 must be >= 0"),
    (["--weight-decay", "inf"], "--weight-decay inf"),
    (["--label-smoothing", "5"], "--label-smoothing 5.0 must be in [0, 1)"),
    (["--label-smoothing", "-0.5"], "--label-smoothing -0.5"),
    (["--label-smoothing", "1"], "--label-smoothing 1.0"),
    (["--label-smoothing", "nan"], "--label-smoothing nan"),
    (["--grad-clip", "nan"], "--grad-clip nan"),
    (["--grad-clip", "0"], "--grad-clip 0.0 must be positive"),
    (["--grad-clip", "-1"], "--grad-clip -1.0"),
    (["--grad-clip", "inf"], "--grad-clip inf"),
    (["--beta1", "1"], "--beta1 1.0 must be in [0, 1)"),
    (["--beta1", "-0.1"], "--beta1 -0.1"),
    (["--beta1", "nan"], "--beta1 nan"),
    (["--beta2", "2"], "--beta2 2.0 must be in [0, 1)"),
    (["--beta2", "1.0"], "--beta2 1.0"),
    (["--beta2", "-0.5"], "--beta2 -0.5"),
    (["--beta2", "nan"], "--beta2 nan"),
    (["--seed", str(2**64)], f"--seed {2**64} must be in 0..2^63-1"),
    (["--seed", str(2**63)], f"--seed {2**63}"),
    (["--seed", "-1"], "--seed -1"),
    (["--seed", "one"], "--seed"),
    (["--epochs", "0"], "--epochs 0 must be positive"),
    (["--epochs", "-3"], "--epochs -3"),
    (["--epochs", "1.5"], "--epochs"),
    (["--batch-size", "0"], "--batch-size 0 must be positive"),
    (["--batch-size", "-8"], "--batch-size -8"),
    (["--log-interval", "0"], "--log-interval 0"),
    (["--train-samples", "0"], "--train-samples 0"),
    (["--warmup", "linear", "--warmup-period", "0"], "--warmup-period 0"),
    (["--warmup", "linear", "--warmup-period", "-5"], "--warmup-period -5"),
    (["--warmup", "linear"], "--warmup linear needs --warmup-period"),
    (["--schedule", "inverse-sqrt"], "--schedule inverse-sqrt needs --warmup-period"),
    (["--schedule", "multistep"], "--schedule multistep needs --milestones"),
    (["--schedule", "multistep", "--milestones", "-1"], "--milestones [-1]"),
    (["--warmup", "radam", "--beta2", "0.5"], "--warmup radam needs --beta2 > 0.6"),
    (["--opt", "sgd", "--warmup", "untuned-linear"], "--opt sgd does not have"),
    # settings the chosen entries never read, and ranges an entry states
    (["--opt", "adamw", "--momentum", "0.5"], "--momentum 0.5 does nothing with --opt adamw"),
    (["--schedule", "cosine", "--cooldown-fraction", "0.3"],
     "--cooldown-fraction 0.3 does nothing with --opt adamw, --warmup untuned-linear, "
     "--schedule cosine: only --schedule wsd read it"),
    (["--schedule", "constant", "--cooldown-shape", "cosine"],
     "--cooldown-shape cosine does nothing"),
    (["--opt", "sgd", "--warmup", "none", "--beta2", "0.98"],
     "--beta2 0.98 does nothing with --opt sgd"),
    (["--warmup", "none", "--delay-schedule"], "--delay-schedule does nothing with --warmup "
     "none: there is no warmup for the schedule to wait for"),
    (["--warmup", "linear", "--warmup-period", "5", "--schedule", "constant",
      "--delay-schedule"], "--delay-schedule does nothing with --opt adamw, --warmup linear, "
     "--schedule constant: only --schedule multistep, cosine"),
    (["--warmup", "radam", "--warmup-period", "50"], "--warmup-period 50 does nothing"),
    (["--schedule", "constant", "--gamma", "0.5"], "--gamma 0.5 does nothing"),
    (["--schedule", "cosine", "--eta-min", "0.1", "--lr", "0.01"],
     "--eta-min 0.1 is above --lr 0.01: --schedule cosine decays from the LR"),
    (["--schedule", "wsd", "--eta-min", "0.1", "--lr", "0.01"], "--eta-min 0.1 is above"),
    (["--opt", "adamw-schedule-free", "--schedule", "constant", "--beta1", "0"],
     "--beta1 0.0 is outside (0, 1), the range --opt adamw-schedule-free accepts"),
    (["--opt", "sgd-schedule-free", "--schedule", "constant", "--warmup", "none",
      "--momentum", "0"], "--momentum 0.0 is outside (0, 1), the range --opt sgd-schedule-free"),
    (["--threads", "0"], "--threads 0 must be at least 1"),
    (["--threads", "-2"], "--threads -2"),
    # names
    (["--opt", "adamz"], "--opt 'adamz' is not valid; choose from: sgd, adam, adamw"),
    (["--opt", ""], "--opt ''"),
    (["--warmup", "cosine"], "--warmup 'cosine' is not valid"),
    (["--schedule", "step"], "--schedule 'step' is not valid"),
    (["--task", "imagenet"], "--task 'imagenet' is not valid"),
    (["--task", ""], "--task ''"),
    (["--model", "resnet21"], "--model 'resnet21' is not valid"),
    (["--bogus-flag"], "No such option: --bogus-flag"),
]


@pytest.mark.parametrize(("flags", "needle"), TRAIN_FLAGS,
                         ids=[" ".join(f) or "empty" for f, _ in TRAIN_FLAGS])
def test_train_flags(tmp_path, flags, needle) -> None:
    out = tmp_path / "out"
    result = invoke("train", "--task", "digits", "--no-progress", "--out", str(out), *flags,
                    clean=True)
    assert_one_line_error(result, 2, needle)
    assert not out.exists()


def test_train_out_is_a_file(tmp_path) -> None:
    out = tmp_path / "results"
    out.write_text("not a folder")
    result = invoke("train", "--task", "digits", "--out", str(out), clean=True)
    assert_one_line_error(result, 2, f"--out {out} is a file")
    assert out.read_text() == "not a folder"


def test_train_out_too_long(tmp_path) -> None:
    out = tmp_path / ("x" * 300)
    assert_one_line_error(invoke("train", "--task", "digits", "--out", str(out), clean=True), 2,
                          "File name too long")
    deep = tmp_path.joinpath(*["d" * 200] * 25)
    assert_one_line_error(invoke("train", "--task", "digits", "--out", str(deep), clean=True), 2,
                          "File name too long")
    assert snapshot(tmp_path) == {}


# ---- 2. other commands ---------------------------------------------------------------

GOOD_GRID = 'title = "t"\ntask = "digits"\n[fixed]\nepochs = 1\ntrain_samples = 64\n'
OTHER_COMMANDS = [
    (["sweep", "{grid}", "--jobs", "0"], "--jobs 0 must be at least 1"),
    (["sweep", "{grid}", "--epochs", "0"], "--epochs 0 must be at least 1"),
    (["sweep", "{grid}", "--backend", "mpi"], "--backend 'mpi' is not valid"),
    (["sweep", "{grid}", "--devices", ",,,"], "--devices names no device"),
    (["sweep", "{grid}", "--devices", "cpu,tpu"], "--device 'tpu'"),
    (["sweep", "{grid}", "--devices", "cpu,cuda:3"], "--device cuda:3"),
    (["sweep", "{grid}", "--threads", "0"], "--threads 0"),
    (["sweep", "{tmp}/missing.toml"], "missing.toml: cannot read"),
    (["sweep", "{tmp}"], "not a regular file"),
    (["sweep", "{grid}", "--out", "{file}"], "is a file, not a folder"),
    (["sweep", "{grid}", "--backend", "ray", "--ray-address", "localhost"],
     "--ray-address 'localhost' is not HOST:PORT"),
    (["sweep", "{grid}", "--backend", "ray", "--ray-address", "127.0.0.1:1"],
     "--ray-address 127.0.0.1:1: cannot reach it"),
    (["report", "{tmp}/nothing-here"], "does not exist"),
    (["report", "{tmp}"], "no finished runs"),
    (["report", "{tmp}", "--metric", "median"], "--metric 'median' is not valid"),
    (["report", "{tmp}", "--format", "html"], "--format 'html' is not valid"),
    (["report", "{tmp}", "--plot-format", "gif"], "--plot-format 'gif' is not valid"),
    (["report", "{tmp}", "--compare"], "--compare needs --experiment"),
    (["report", "{tmp}", "--experiment", "{tmp}/missing.toml"], "missing.toml: cannot read"),
    (["report", "{tmp}", "--out", "{file}"], "is a file, not a folder"),
    (["plot-periods", "--beta2-min", "0.5", "--out", "{out}"], "--beta2-min 0.5"),
    (["plot-periods", "--beta2-max", "1.5", "--out", "{out}"], "--beta2-max 1.5"),
    (["plot-periods", "--beta2-min", "0.999", "--beta2-max", "0.99", "--out", "{out}"],
     "must be smaller than --beta2-max"),
    (["plot-periods", "--steps", "0", "--out", "{out}"], "--steps 0"),
    (["plot-periods", "--points", "1", "--out", "{out}"], "--points 1"),
    (["plot-periods", "--format", "gif", "--out", "{out}"], "--format 'gif' is not valid"),
    (["data", "download", "imagenet", "--data-dir", "{out}"], "data set 'imagenet' is not valid"),
    (["data", "check", "imagenet", "--data-dir", "{out}"], "data set 'imagenet'"),
    (["data", "download", "digits", "--data-dir", "{out}"], "nothing to download"),
    (["data", "check", "mnist", "--data-dir", "{out}"], "mnist not found"),
    (["list", "bogus"], "No such command 'bogus'"),
    (["bogus"], "No such command 'bogus'"),
]


@pytest.mark.parametrize(("args", "needle"), OTHER_COMMANDS,
                         ids=[" ".join(a[:4]) for a, _ in OTHER_COMMANDS])
def test_other_commands(tmp_path, args, needle) -> None:
    (tmp_path / "grid.toml").write_text(GOOD_GRID)
    (tmp_path / "a-file").write_text("x")
    places = {"tmp": str(tmp_path), "grid": str(tmp_path / "grid.toml"),
              "out": str(tmp_path / "out"), "file": str(tmp_path / "a-file")}
    args = [a.format(**places) for a in args]
    if "sweep" in args[0] and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    assert_one_line_error(invoke(*args, clean=True), 2, needle)
    assert snapshot(tmp_path) == before


# ---- 3. data files -------------------------------------------------------------------


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def images(n: int, shape=(28, 28)) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, *shape), dtype=np.uint8)


IDX_CASES = {  # file to replace -> (its new bytes, what the message must say)
    "bad-magic": (0, b"\x01\x02" + idx_bytes(images(4))[2:], "bad magic"),
    "bad-dtype": (0, idx_bytes(images(4))[:2] + b"\x42" + idx_bytes(images(4))[3:],
                  "unknown IDX element type 0x42"),
    "truncated": (0, idx_bytes(images(4))[:-7], "truncated IDX data"),
    "extra-bytes": (0, idx_bytes(images(4)) + b"\x00", "more bytes than its IDX header"),
    "short-header": (0, idx_bytes(images(4))[:6], "truncated IDX header"),
    "empty-file": (0, b"", "truncated IDX header"),
    "no-dims": (0, bytes([0, 0, 8, 0]), "declares no dimensions"),
    "dims-overflow": (0, idx_header(8, (2**32 - 1, 2**32 - 1, 2**32 - 1)),
                      "expected Nx28x28"),
    "huge-count": (0, idx_header(8, (2**32 - 1, 28, 28)), "this data set has at most 60,000"),
    "wrong-image-shape": (0, idx_bytes(images(4, (32, 32))), "says 4x32x32, expected Nx28x28"),
    "images-int32": (0, idx_header(0x0C, (4, 28, 28)) + b"\x00" * (4 * 784 * 4),
                     "expected uint8 images"),
    "labels-2d": (1, idx_bytes(np.zeros((4, 2), np.uint8)), "IDX header says 4x2, expected N."),
    "labels-count": (1, idx_bytes(np.zeros(3, np.uint8)), "(3,) labels for 4 images"),
    "labels-range": (1, idx_bytes(np.full(4, 10, np.uint8)), "labels outside 0..9"),
    "labels-float": (1, idx_header(0x0D, (4,)) + np.ones(4, ">f4").tobytes(),
                     "labels are >f4, not integers"),
    "empty-test-split": (2, idx_bytes(np.zeros((0, 28, 28), np.uint8)), "holds no images"),
    "a-directory": (0, None, "mnist not found: put train-images-idx3-ubyte"),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_idx_data_files(tmp_path, case) -> None:
    index, content, needle = IDX_CASES[case]
    folder = tmp_path / "data" / "MNIST" / "raw"
    write_idx_dataset(folder, IDX_FILES, sizes=(4, 3))
    target = folder / IDX_FILES[index]
    target.unlink()
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    if case == "empty-test-split":  # its labels must match: none
        (folder / IDX_FILES[3]).write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    before = snapshot(tmp_path)
    result = invoke("data", "check", "mnist", "--data-dir", str(tmp_path / "data"), clean=True)
    assert_one_line_error(result, 2, needle)
    assert str(tmp_path / "data") in result.stderr
    assert snapshot(tmp_path) == before


def test_gzip_bomb_is_refused_after_reading_what_the_header_announces(tmp_path) -> None:
    """1 MB on disk that would inflate to 1 GiB: only the 4 x 784 bytes the header
    announces (and one more) are ever decompressed."""
    import gzip

    folder = tmp_path / "data" / "MNIST" / "raw"
    write_idx_dataset(folder, IDX_FILES, sizes=(4, 3))
    (folder / IDX_FILES[0]).unlink()
    with gzip.open(folder / f"{IDX_FILES[0]}.gz", "wb") as handle:
        handle.write(idx_header(8, (4, 28, 28)))
        for _ in range(64):
            handle.write(bytes(1 << 24))
    result = invoke("data", "check", "mnist", "--data-dir", str(tmp_path / "data"), clean=True)
    assert_one_line_error(result, 2, "more bytes than its IDX header (4x28x28)")


class RunsCode:
    """A pickled object that would create a marker file if unpickling ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class HugeArray:
    def __reduce__(self):
        from numpy._core import multiarray

        return (multiarray._reconstruct, (np.ndarray, (10**11,), b"b"))


class HugeBytes:
    def __reduce__(self):
        return (bytes, (10**11,))


def cifar_batch(**changes) -> dict:
    batch = {"batch_label": "b", "labels": [1, 2, 3],
             "data": np.zeros((3, 3072), np.uint8), "filenames": ["a", "b", "c"]}
    return {**batch, **changes}


CIFAR_CASES = {
    "runs-code": (lambda m: pickle.dumps(cifar_batch(data=RunsCode(m)), protocol=2),
                  "refusing to unpickle"),
    "not-a-dict": (lambda m: pickle.dumps([1, 2, 3], protocol=2), "not a CIFAR batch"),
    "data-float": (lambda m: pickle.dumps(cifar_batch(data=np.zeros((3, 3072))), protocol=2),
                   "'data' is not a uint8 array"),
    "data-3d": (lambda m: pickle.dumps(cifar_batch(data=np.zeros((3, 3, 1024), np.uint8)),
                                       protocol=2), "'data' is not a uint8 array"),
    "labels-strings": (lambda m: pickle.dumps(cifar_batch(labels=["a", "b", "c"]), protocol=2),
                       "'labels' is not a list of 3 ints"),
    "labels-floats": (lambda m: pickle.dumps(cifar_batch(labels=[1.5, 2.0, 3.0]), protocol=2),
                      "'labels' is not a list of 3 ints"),
    "labels-bools": (lambda m: pickle.dumps(cifar_batch(labels=[True, False, True]),
                                            protocol=4), "'labels' is not a list of 3 ints"),
    "labels-count": (lambda m: pickle.dumps(cifar_batch(labels=[1, 2]), protocol=3),
                     "'labels' is not a list of 3 ints"),
    "labels-range": (lambda m: pickle.dumps(cifar_batch(labels=[1, 2, 10]), protocol=5),
                     "labels outside 0..9"),
    "huge-array": (lambda m: pickle.dumps(cifar_batch(data=HugeArray()), protocol=2),
                   "unexpected array reconstruction"),
    "huge-bytes": (lambda m: pickle.dumps(cifar_batch(filenames=HugeBytes()), protocol=2),
                   "corrupt or truncated CIFAR batch"),
    "truncated": (lambda m: pickle.dumps(cifar_batch(), protocol=2)[:-40],
                  "corrupt or truncated CIFAR batch"),
    "garbage": (lambda m: b"\x00garbage\xff" * 10, "corrupt or truncated CIFAR batch"),
    "empty-file": (lambda m: b"", "corrupt or truncated CIFAR batch"),
}


@pytest.mark.parametrize("case", list(CIFAR_CASES))
def test_cifar_data_files(tmp_path, case) -> None:
    make, needle = CIFAR_CASES[case]
    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_cifar_python(folder, per_batch=3)
    marker = tmp_path / "code-ran"
    (folder / "data_batch_2").write_bytes(make(marker))
    before = snapshot(tmp_path)
    result = invoke("data", "check", "cifar10", "--data-dir", str(tmp_path / "data"), clean=True)
    assert_one_line_error(result, 2, needle)
    assert "data_batch_2" in result.stderr and not marker.exists()
    assert snapshot(tmp_path) == before


def test_cifar_binary_partial_record(tmp_path) -> None:
    from datafiles import write_cifar_binary

    folder = tmp_path / "data" / "cifar-10-batches-bin"
    write_cifar_binary(folder, per_batch=2)
    (folder / "test_batch.bin").write_bytes(b"\x01" * 3000)
    result = invoke("data", "check", "cifar10", "--data-dir", str(tmp_path / "data"), clean=True)
    assert_one_line_error(result, 2, "3000 bytes is not a whole number of 3073-byte")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("per_batch", [0, 3])
def test_genuine_cifar_batches_of_every_protocol_load(tmp_path, protocol, per_batch) -> None:
    """Legitimate files are not refused: batches re-saved with pickle protocols 2-5, and
    empty ones (a test split still needs images, so only a train batch is emptied)."""
    from warmup_bench.data import read_cifar_pickle

    path = tmp_path / "data_batch_1"
    pixels = np.random.default_rng(protocol).integers(0, 256, (per_batch, 3072), dtype=np.uint8)
    batch = cifar_batch(data=pixels, labels=list(range(per_batch)))
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    pixels, labels = read_cifar_pickle(path)
    assert pixels.shape == (per_batch, 3, 32, 32) and labels.tolist() == list(range(per_batch))
    assert (pixels.reshape(per_batch, 3072) == batch["data"]).all()


# ---- 4. grid files -------------------------------------------------------------------

BASE = 'task = "digits"\n'
GRID_CASES = [
    ("non-utf8", b'title = "\xff\xfe"\ntask = "digits"\n', "not UTF-8 text"),
    ("not-toml", b"task = digits = 3\n", "not valid TOML"),
    ("unknown-key", BASE + "bogus = 1\n", "unknown key 'bogus'; valid keys: title"),
    ("no-task", "[fixed]\nlr = 0.1\n", "task None is not valid"),
    ("bad-task", 'task = "imagenet"\n', "task 'imagenet' is not valid"),
    ("title-int", BASE + "title = 5\n", "title must be a string, got 5"),
    ("description-list", BASE + "description = []\n", "description must be a string"),
    ("seeds-bools", BASE + "seeds = [true, false]\n", "seeds must be a non-empty list of integers"),
    ("seeds-string", BASE + 'seeds = "1"\n', "seeds must be a non-empty list"),
    ("seeds-empty", BASE + "seeds = []\n", "seeds must be a non-empty list"),
    ("seeds-negative", BASE + "seeds = [-1]\n", "seeds must be"),
    ("seeds-huge", BASE + f"seeds = [{2**63}]\n", "integers in 0..2^63-1"),
    ("seeds-float", BASE + "seeds = [1.5]\n", "seeds must be"),
    ("fixed-int", BASE + "fixed = 3\n", "[fixed] must be a table of settings, got 3"),
    ("grid-list", BASE + "grid = [1, 2]\n", "[grid] must be a table of lists"),
    ("table-int", BASE + "table = 5\n", "[table] must be a table"),
    ("published-int", BASE + "published = 5\n", "[published] must be a table"),
    ("axis-scalar", BASE + "[grid]\nlr = 0.1\n", "[grid] lr must be a non-empty list"),
    ("axis-empty", BASE + "[grid]\nlr = []\n", "[grid] lr must be a non-empty list"),
    ("lr-string", BASE + '[grid]\nlr = ["fast"]\n', "--lr 'fast' must be a finite number"),
    ("fixed-lr-string", BASE + '[fixed]\nlr = "fast"\n', "[fixed]: --lr 'fast'"),
    ("lr-nan", BASE + "[fixed]\nlr = nan\n", "--lr nan must be a finite number"),
    ("lr-inf", BASE + "[grid]\nlr = [inf]\n", "--lr inf"),
    ("lr-negative", BASE + "[grid]\nlr = [-1.0]\n", "--lr -1.0 must be positive"),
    ("epochs-bool", BASE + "[fixed]\nepochs = true\n", "--epochs True must be an integer"),
    ("epochs-float", BASE + "[fixed]\nepochs = 2.5\n", "--epochs 2.5 must be an integer"),
    ("milestones-strings", BASE + '[fixed]\nmilestones = ["a"]\n',
     "--milestones ['a'] must be a list of integers"),
    ("milestones-int", BASE + "[fixed]\nmilestones = 5\n", "--milestones 5"),
    ("period-float", BASE + '[fixed]\nwarmup = "linear"\nwarmup_period = 1.5\n',
     "--warmup-period 1.5 must be an integer"),
    ("amp-string", BASE + '[fixed]\namp = "yes"\n', "--amp 'yes' must be true or false"),
    ("smoothing-2", BASE + "[fixed]\nlabel_smoothing = 2.0\n", "--label-smoothing 2.0"),
    ("opt-unknown", BASE + '[grid]\nopt = ["adamz"]\n', "opt 'adamz' is not valid"),
    ("opt-int", BASE + "[grid]\nopt = [3]\n", "--opt 3 must be a string"),
    ("setting-unknown-fixed", BASE + "[fixed]\nepochz = 1\n",
     "unknown setting 'epochz' in [fixed]"),
    ("setting-unknown-grid", BASE + "[grid]\nepochz = [1]\n", "unknown setting 'epochz' in [grid]"),
    ("bad-combination", BASE + '[fixed]\nopt = "sgd"\nwarmup = "radam"\n',
     "derives its period from beta2"),
    ("rows-string", BASE + '[table]\nrows = "opt"\n', "[table] rows must be a non-empty list"),
    ("rows-ints", BASE + "[table]\nrows = [1]\n", "[table] rows must be"),
    ("rows-unknown", BASE + '[table]\nrows = ["colour"]\n', "[table] key 'colour' is not valid"),
    ("columns-list", BASE + '[table]\ncolumns = ["lr"]\n', "[table] columns must be one setting"),
    ("table-unknown-key", BASE + "[table]\nsort = 1\n", "unknown key 'sort' in [table]"),
    ("published-row-int", BASE + '[published]\n"SGD/none" = 3\n',
     "[published] 'SGD/none' must be a table"),
    ("published-one-number", BASE + '[published]\n"SGD/none" = { "0.1" = [1.0] }\n',
     "must be [mean, std]"),
    ("published-strings", BASE + '[published]\n"SGD/none" = { "0.1" = ["a", 1] }\n',
     "must be [mean, std]"),
    ("published-negative-std", BASE + '[published]\n"SGD/none" = { "0.1" = [8.0, -1] }\n',
     "std >= 0"),
    ("published-bools", BASE + '[published]\n"SGD/none" = { "0.1" = [true, false] }\n',
     "must be [mean, std]"),
    ("nested-deeply", "a = " + "[" * 1000 + "]" * 1000 + "\n", "nest too deeply"),
    ("integer-of-5000-digits", BASE + "seeds = [" + "9" * 5000 + "]\n",
     "not valid TOML (a number too long to read)"),
    ("over-a-mebibyte", BASE + "#" * (1 << 20) + "\n", "larger than 1 MiB"),
    ("over-100k-runs", BASE + f"seeds = {list(range(1000))}\n[grid]\n"
     f"lr = {[0.001 * (i + 1) for i in range(101)]}\n",
     "the grid lists 101,000 runs; a grid file holds at most 100,000"),
    ("momentum-with-adamw", BASE + "[grid]\nmomentum = [0.5, 0.9]\n",
     "--momentum 0.5 does nothing with --opt adamw"),
    ("eta-min-above-lr", BASE + "[fixed]\neta_min = 0.5\n", "--eta-min 0.5 is above --lr 0.01"),
]


@pytest.mark.parametrize(("text", "needle"), [(t, n) for _, t, n in GRID_CASES],
                         ids=[c for c, _, _ in GRID_CASES])
def test_grid_files(tmp_path, text, needle) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = invoke("sweep", str(grid), "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, needle)
    assert str(grid) in result.stderr and not (tmp_path / "out").exists()


# ---- 5. run folders (report) ---------------------------------------------------------

GOOD_SUMMARY = {"status": "complete", "best_test_acc": 0.9, "best_epoch": 1,
                "final_test_acc": 0.9, "epochs_done": 1, "wall_seconds": 1.0, "error": None}


def write_folder(root: Path, name: str, config, summary, keep_name: bool = False) -> Path:
    """A finished one-epoch run's folder with these config.json and summary.json: named
    as its config's run (a folder named otherwise is not believed), or `name` where the
    config is no valid one (or `keep_name`)."""
    try:
        name = name if keep_name else run_name(TrainConfig.from_dict(config))
    except (ConfigError, TypeError, AttributeError):
        pass
    folder = root / "digits" / name
    folder.mkdir(parents=True)
    for file, content in (("config.json", config), ("summary.json", summary)):
        (folder / file).write_text(content if isinstance(content, str) else json.dumps(content))
    (folder / "epochs.csv").write_text("epoch,train_loss,train_acc,test_loss,test_acc,seconds,"
                                       "images_per_second\n1,1.0,0.5,1.0,0.9,1.0,10.0\n")
    (folder / "steps.csv").write_text("step,epoch,lr,warmup_factor,loss\n1,1,0.001,0.1,2.3\n")
    return folder


GOOD_CONFIG = resolve_config("digits", {"epochs": 1}).to_dict()
OTHER_CONFIG = {**GOOD_CONFIG, "seed": 2}  # another run: a folder of its own
FOLDER_CASES = [
    ("summary-list", OTHER_CONFIG, [1, 2], "summary.json is damaged (not a JSON object)"),
    ("summary-text-acc", OTHER_CONFIG, {**GOOD_SUMMARY, "best_test_acc": "x"},
     "best_test_acc 'x' is not a number"),
    ("summary-nan-acc", OTHER_CONFIG, {**GOOD_SUMMARY, "best_test_acc": float("nan")},
     "best_test_acc nan is not a number"),
    ("summary-bool-epoch", OTHER_CONFIG, {**GOOD_SUMMARY, "epochs_done": True},
     "epochs_done True is not a count"),
    ("summary-status", OTHER_CONFIG, {**GOOD_SUMMARY, "status": "bogus"},
     "'bogus' is not a valid Status"),
    ("summary-not-json", OTHER_CONFIG, "{oops", "no readable summary.json"),
    ("summary-running", OTHER_CONFIG, {**GOOD_SUMMARY, "status": "running"},
     "status 'running', not finished"),
    ("config-list", [1], GOOD_SUMMARY, "unreadable config.json"),
    ("config-not-json", "{oops", GOOD_SUMMARY, "unreadable config.json"),
    ("config-empty", {}, GOOD_SUMMARY, "unreadable config.json"),
    ("config-lr-text", {**GOOD_CONFIG, "lr": "abc"}, GOOD_SUMMARY, "unreadable config.json"),
    ("config-task-up", {**GOOD_CONFIG, "task": "../../x"}, GOOD_SUMMARY,
     "task '../../x' is not valid"),
    ("config-task-absolute", {**GOOD_CONFIG, "task": "/tmp/elsewhere"}, GOOD_SUMMARY,
     "task '/tmp/elsewhere' is not valid"),
    ("config-opt-unknown", {**GOOD_CONFIG, "opt": "adamz"}, GOOD_SUMMARY,
     "--opt 'adamz' is not valid"),
    ("config-epochs-negative", {**GOOD_CONFIG, "epochs": -1}, GOOD_SUMMARY, "--epochs -1"),
]


@pytest.mark.parametrize(("config", "summary", "needle"),
                         [(c, s, n) for _, c, s, n in FOLDER_CASES],
                         ids=[c for c, *_ in FOLDER_CASES])
def test_run_folders_are_skipped_with_one_warning(tmp_path, config, summary, needle) -> None:
    root, report_dir = tmp_path / "results", tmp_path / "report"
    write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    bad = write_folder(root, "bad", config, summary)
    outside = snapshot(tmp_path)
    result = invoke("report", str(root), "--out", str(report_dir), clean=True)
    assert_one_line_error(result, 0, needle)
    assert result.stderr.startswith(f"warning: skipping {bad}")
    written = set(snapshot(tmp_path)) - set(outside)
    assert written and all(w.startswith("report/") for w in written), written
    assert "(1)" in (report_dir / "report.md").read_text()  # the good run alone


def test_unknown_published_cells_are_warned_about(tmp_path) -> None:
    root = tmp_path / "results"
    write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    grid = tmp_path / "grid.toml"
    grid.write_text(BASE + '[fixed]\nepochs = 1\n[published]\n'
                    '"AdamW/Linear" = { "0.01" = [1.0, 0.1] }\n'
                    '"Adam/none" = { "0.01" = [1.0, 0.1] }\n')
    result = invoke("report", str(root), "--experiment", str(grid), "--compare", "--format", "csv",
                    clean=True)
    assert_one_line_error(result, 0, "[published] 'Adam/none' / '0.01' names no cell")
    assert "AdamW/Linear,0.01,10.0" in result.stdout and "Adam/none" not in result.stdout


# ---- 6. checkpoints ------------------------------------------------------------------

CKPT_ARGS = ["--task", "digits", "--epochs", "2", "--train-samples", "320", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Two finished digits runs (lr 0.01 and 0.02), trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    folders = {}
    for name, lr in (("mine", "0.01"), ("foreign", "0.02")):
        result = invoke("train", *CKPT_ARGS, "--lr", lr, "--out", str(root / name), clean=True)
        assert result.exit_code == 0, result.output
        (folders[name],) = (root / name / "digits").iterdir()
    return folders


def tamper(state: dict, **changes) -> dict:
    return {**state, **changes}


CHECKPOINT_CASES = {
    "foreign": (lambda mine, foreign: foreign.read_bytes(), "belongs to another run"),
    "truncated": (lambda mine, foreign: mine.read_bytes()[:1000], "unreadable or corrupt"),
    "empty": (lambda mine, foreign: b"", "unreadable or corrupt"),
    "random-bytes": (lambda mine, foreign: np.random.default_rng(0).bytes(5000),
                     "unreadable or corrupt"),
    "plain-tensor": (lambda mine, foreign: save(torch.zeros(3)), "not a warmup-bench checkpoint"),
    "missing-keys": (lambda mine, foreign: save(drop(load(mine), "rows")),
                     "not a warmup-bench checkpoint"),
    "old-format": (lambda mine, foreign: save(tamper(load(mine), format=0)),
                   "belongs to another run"),
    "absurd-epoch": (lambda mine, foreign: save(tamper(load(mine), epoch=999)),
                     "says epoch 999"),
    "negative-epoch": (lambda mine, foreign: save(tamper(load(mine), epoch=-1)),
                       "says epoch -1"),
    "absurd-rows": (lambda mine, foreign: save(tamper(load(mine), rows={"steps": 10**6,
                                                                         "epochs": 2})),
                    "cannot have produced"),
    "rows-not-epoch": (lambda mine, foreign: save(tamper(load(mine), rows={"steps": 1,
                                                                           "epochs": 1})),
                       "cannot have produced"),
    "forged-model": (lambda mine, foreign: save(tamper(load(mine), model={"w": torch.zeros(2)})),
                     "does not fit this run's model or optimizer"),
    "code-in-pickle": (lambda mine, foreign: malicious_zip(), "unreadable or corrupt"),
}


def save(state) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def drop(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


def malicious_zip() -> bytes:
    """A torch checkpoint whose pickle would run code if loaded without weights_only."""
    import io

    buffer = io.BytesIO()
    torch.save({"x": RunsCode(Path("/tmp/warmup-bench-code-ran"))}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoints_that_are_not_this_runs(tmp_path, trained, case) -> None:
    make, needle = CHECKPOINT_CASES[case]
    out = tmp_path / "out"
    folder = out / "digits" / trained["mine"].name
    shutil.copytree(trained["mine"], folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    (folder / "checkpoint.pt").write_bytes(make(trained["mine"] / "checkpoint.pt",
                                                trained["foreign"] / "checkpoint.pt"))
    before = snapshot(out, skip=("lock",))
    result = invoke("train", *CKPT_ARGS, "--lr", "0.01", "--resume", "--out", str(out), clean=True)
    assert_one_line_error(result, 2, needle)
    assert "checkpoint" in result.stderr
    assert snapshot(out, skip=("lock",)) == before  # nothing in the folder changed
    assert not Path("/tmp/warmup-bench-code-ran").exists()


def test_the_untampered_copy_resumes(tmp_path, trained) -> None:
    """The control for the table above: the same copy with its own checkpoint resumes."""
    out = tmp_path / "out"
    folder = out / "digits" / trained["mine"].name
    shutil.copytree(trained["mine"], folder)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    result = invoke("train", *CKPT_ARGS, "--lr", "0.01", "--resume", "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
