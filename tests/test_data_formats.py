"""Reading every supported on-disk format, and refusing corrupt or hostile files."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from clirun import invoke
from datafiles import (
    idx_bytes,
    write_cifar_binary,
    write_cifar_python,
    write_idx,
    write_idx_dataset,
)

from warmup_bench.data import (
    DEBIAN_FASHION_MNIST,
    DataError,
    check_dataset,
    load_dataset,
    locate,
    read_cifar_pickle,
    read_idx,
)
from warmup_bench.data.catalog import EMNIST_FILES, IDX_FILES


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("name", "folder", "names", "classes"), [
    ("mnist", "MNIST/raw", IDX_FILES, 10),
    ("fashion-mnist", "FashionMNIST/raw", IDX_FILES, 10),
    ("emnist", "EMNIST/raw", EMNIST_FILES, 47),
])
def test_idx_datasets_read_back_exactly(tmp_path, gz, name, folder, names, classes) -> None:
    arrays = write_idx_dataset(tmp_path / folder, names, classes=classes, gz=gz)
    data = load_dataset(name, tmp_path)
    assert data.source == str(tmp_path / folder) and data.num_classes == classes
    for split, part in (("train", data.train), ("test", data.test)):
        images, labels = arrays[split]
        assert part.images.dtype.is_floating_point is False
        assert np.array_equal(part.images.numpy(), images[:, None])
        assert np.array_equal(part.labels.numpy(), labels.astype(np.int64))


def test_cifar_python_batches_read_back_exactly(tmp_path) -> None:
    batches = write_cifar_python(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", tmp_path)
    train = [batches[f"data_batch_{k}"] for k in range(1, 6)]
    expected = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32)
    assert np.array_equal(data.train.images.numpy(), expected)
    assert data.train.labels.tolist() == sum((b["labels"] for b in train), [])
    assert data.test.labels.tolist() == batches["test_batch"]["labels"]


def test_cifar_python_batch_with_bytes_keys(tmp_path) -> None:
    """The real batches were pickled by Python 2: keys may arrive as bytes."""
    batch = {b"labels": [1, 2], b"data": np.zeros((2, 3072), np.uint8)}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    images, labels = read_cifar_pickle(path)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]


def test_cifar_binary_batches_read_back_exactly(tmp_path) -> None:
    batches = write_cifar_binary(tmp_path / "cifar-10-batches-bin")
    data = load_dataset("cifar10", tmp_path)
    pixels, labels = batches["test_batch.bin"]
    assert np.array_equal(data.test.images.numpy(), pixels.reshape(-1, 3, 32, 32))
    assert data.test.labels.tolist() == labels.tolist()
    assert len(data.train) == 5 * len(labels)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_python(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Payload()}, protocol=2))
    with pytest.raises(DataError, match="data_batch_3: refusing to unpickle"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def corrupt_cases(tmp_path: Path):
    images = np.zeros((5, 28, 28), np.uint8)
    good = write_idx(tmp_path / "good", images)
    raw = good.read_bytes()
    yield "truncated", raw[:-10], "truncated IDX data for 5x28x28 uint8 (3910 of 3920 bytes)"
    yield "bad-magic", b"\x01\x02" + raw[2:], "bad magic"
    yield "bad-dtype", raw[:2] + b"\x42" + raw[3:], "unknown IDX element type"
    yield "short-header", raw[:6], "truncated IDX header"
    yield "extra", raw + b"\x00", "more bytes than its IDX header (5x28x28) announces"


def test_corrupt_idx_files_name_the_file(tmp_path) -> None:
    for label, content, needle in corrupt_cases(tmp_path):
        path = tmp_path / label
        path.write_bytes(content)
        with pytest.raises(DataError) as info:
            read_idx(path)
        assert str(path) in str(info.value) and needle in str(info.value), label
    gz = tmp_path / "cut.gz"
    raw = idx_bytes(np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8))
    gz.write_bytes(gzip.compress(raw)[:2000])  # a valid header, then the stream breaks off
    with pytest.raises(DataError, match="cut.gz: (corrupt or truncated file|truncated IDX)"):
        read_idx(gz)


def test_corrupt_cifar_files_name_the_file(tmp_path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_python(folder)
    content = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="test_batch: corrupt or truncated"):
        load_dataset("cifar10", tmp_path)
    binary = tmp_path / "bin" / "cifar-10-batches-bin"
    write_cifar_binary(binary)
    with (binary / "data_batch_2.bin").open("ab") as handle:
        handle.write(b"\x00" * 5)
    with pytest.raises(DataError, match="data_batch_2.bin: .* not a whole number"):
        load_dataset("cifar10", tmp_path / "bin")


def test_labels_out_of_range_are_rejected(tmp_path) -> None:
    arrays = write_idx_dataset(tmp_path / "MNIST/raw", IDX_FILES)
    write_idx(tmp_path / "MNIST/raw" / IDX_FILES[3], arrays["test"][1] + 10)
    with pytest.raises(DataError, match="labels outside 0..9"):
        load_dataset("mnist", tmp_path)


def test_check_flags_md5_mismatch_and_sizes(tmp_path) -> None:
    write_cifar_python(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match="data_batch_1: MD5 differs"):
        check_dataset("cifar10", tmp_path)
    write_idx_dataset(tmp_path / "MNIST/raw", IDX_FILES)
    with pytest.raises(DataError, match="30 train / 12 test samples, expected 60000 / 10000"):
        check_dataset("mnist", tmp_path)


def test_missing_data_set_is_a_one_line_error(tmp_path) -> None:
    result = invoke("data", "check", "mnist", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte" in lines[0] and "MNIST/raw" in lines[0]
    assert "warmup-bench data download mnist" in lines[0]
    assert not any(tmp_path.iterdir())
    result = invoke("data", "check", "imagenet")
    assert result.exit_code == 2
    assert "cifar10, mnist, emnist, fashion-mnist, digits" in result.output


def test_data_dir_from_environment(tmp_path, monkeypatch) -> None:
    write_idx_dataset(tmp_path / "MNIST/raw", IDX_FILES)
    monkeypatch.setenv("WARMUP_BENCH_DATA", str(tmp_path))
    assert locate("mnist") == tmp_path / "MNIST/raw"
    result = invoke("data", "list")
    assert result.exit_code == 0 and str(tmp_path / "MNIST/raw") in result.output


def test_digits_are_embedded() -> None:
    data = load_dataset("digits")
    assert (len(data.train), len(data.test)) == (1438, 359)
    assert data.input_shape == (1, 8, 8) and int(data.train.images.max()) == 255
    assert set(data.train.labels.tolist()) == set(range(10))


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_package(tmp_path) -> None:
    data = check_dataset("fashion-mnist", tmp_path)  # nothing under tmp_path: system copy
    assert data.source == str(DEBIAN_FASHION_MNIST)
    assert tuple(data.train.images.shape) == (60_000, 1, 28, 28)
    assert tuple(data.test.images.shape) == (10_000, 1, 28, 28)
    assert data.train.labels.bincount().tolist() == [6000] * 10
    assert data.test.labels.bincount().tolist() == [1000] * 10
