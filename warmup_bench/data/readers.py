"""Parsers for the on-disk formats, defensive about every byte they trust.

Each reader returns numpy arrays (images uint8 (N, C, H, W), labels int64 (N,)) or raises
DataError naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


class DataError(Exception):
    """A data set is missing, corrupt, or not what it claims to be (a user-facing message)."""


IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in .gz."""
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip file ({error}).") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST family): magic, dtype and dimensions checked against its size."""
    raw = read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number).")
    dtype = IDX_DTYPES.get(raw[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX element type 0x{raw[2]:02x}.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} {dtype.name} "
            f"({expected} bytes) but the file has {len(raw)} bytes (truncated or corrupt)."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int):
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from two IDX files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images of shape (N, H, W), "
                        f"got {images.dtype} {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: {labels.shape} labels for {len(images)} images.")
    return images[:, None, :, :], check_labels(labels, num_classes, labels_path)


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}.")
    return labels


# ---- CIFAR-10, python version --------------------------------------------------------


def _numpy_globals() -> dict[tuple[str, str], object]:
    import codecs

    from numpy._core import multiarray

    reconstruct = multiarray._reconstruct
    return {
        # What the real batches (pickled by numpy 1.x under Python 2) reference, plus the
        # module name numpy 2 writes for the same function.
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes under protocol 2 as encode(str, "latin1") (batches re-saved
        # by Python 3 tools); a pure conversion, it can run nothing.
        ("_codecs", "encode"): codecs.encode,
    }


class CifarUnpickler(pickle.Unpickler):
    """Loads only plain containers and numpy arrays: any other global is refused."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")
        self.path = path
        self.allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path}: refusing to unpickle {module}.{name}; a CIFAR batch holds "
                "only numpy arrays, lists, strings and ints."
            ) from None


def read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch: images (N, 3, 32, 32) uint8, labels (N,) int64."""
    try:
        batch = CifarUnpickler(io.BytesIO(path.read_bytes()), path).load()
    except DataError:
        raise
    except Exception as error:  # any malformed pickle: EOF, bad opcode, bad reduce
        raise DataError(f"{path}: corrupt or truncated CIFAR batch ({error}).") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR batch (a {type(batch).__name__}, not a dict).")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' is not a uint8 array of N x 3072 pixels.")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise DataError(f"{path}: 'labels' is not a list of {len(data)} ints.")
    return data.reshape(-1, 3, 32, 32), check_labels(np.asarray(labels), 10, path)


def read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    record = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of "
                        f"{record}-byte CIFAR records (truncated or corrupt).")
    rows = raw.reshape(-1, record)
    return rows[:, 1:].reshape(-1, 3, 32, 32), check_labels(rows[:, 0], 10, path)


def read_sklearn_digits(test_fraction: float = 0.2, split_seed: int = 0):
    """scikit-learn's bundled 8x8 digits (values 0..16) as uint8 0..255, split train/test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])
