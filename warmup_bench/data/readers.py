"""Parsers for the on-disk formats, defensive about every byte they trust.

Each reader returns numpy arrays (images uint8 (N, C, H, W), labels int64 (N,)) or raises
DataError naming the file and what is wrong with it.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: Path) -> io.BufferedIOBase:
    """The file as a byte stream, decompressed on the fly when its name ends in .gz (so
    nothing is inflated beyond what the reader asks for)."""
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}).") from None


def _read_exactly(stream, size: int, path: Path, what: str) -> bytes:
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated file ({error}).") from None
    if len(data) != size:
        raise DataError(f"{path}: truncated {what} ({len(data)} of {size} bytes).")
    return data


def read_idx(path: Path, item_shape: tuple[int, ...] | None = None,
             max_items: int | None = None) -> np.ndarray:
    """An IDX file (MNIST family). The header is checked before anything is allocated:
    magic, element type, dimensions (`item_shape` after the first, at most `max_items` in
    the first, when given), then exactly the bytes the header announces are read."""
    with _open(path) as stream:
        magic = _read_exactly(stream, 4, path, "IDX header")
        if magic[0] != 0 or magic[1] != 0:
            raise DataError(f"{path}: not an IDX file (bad magic number).")
        dtype = IDX_DTYPES.get(magic[2])
        if dtype is None:
            raise DataError(f"{path}: unknown IDX element type 0x{magic[2]:02x}.")
        ndim = magic[3]
        if ndim == 0:
            raise DataError(f"{path}: IDX header declares no dimensions.")
        dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, path, "IDX header"))
        shape = "x".join(map(str, dims))
        if item_shape is not None and tuple(dims[1:]) != tuple(item_shape):
            expected = "x".join(map(str, ("N", *item_shape)))
            raise DataError(f"{path}: IDX header says {shape}, expected {expected}.")
        if max_items is not None and dims[0] > max_items:
            raise DataError(f"{path}: IDX header says {dims[0]:,} items; this data set has at "
                            f"most {max_items:,}.")
        size = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
        if size > MAX_IDX_BYTES:
            raise DataError(f"{path}: IDX header says {shape} ({size:,} bytes), more than "
                            f"{MAX_IDX_BYTES:,}.")
        data = _read_exactly(stream, size, path, f"IDX data for {shape} {dtype.name}")
        try:
            trailing = stream.read(1)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: corrupt or truncated file ({error}).") from None
        if trailing:
            raise DataError(f"{path}: more bytes than its IDX header ({shape}) announces.")
    return np.frombuffer(data, dtype=dtype).reshape(dims)


MAX_IDX_BYTES = 1 << 31  # 2 GiB: over 20x EMNIST-balanced's training images


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int,
                  image_shape: tuple[int, int] | None = None, max_items: int | None = None):
    """Images (N, 1, H, W) uint8 and labels (N,) int64 from two IDX files."""
    images = read_idx(images_path, image_shape, max_items)
    labels = read_idx(labels_path, (), max_items)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images of shape (N, H, W), "
                        f"got {images.dtype} {images.shape}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: {labels.shape} labels for {len(images)} images.")
    return images[:, None, :, :], check_labels(labels, num_classes, labels_path)


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    """int64 class indices in 0..num_classes-1; anything else (floats, strings) refused,
    never truncated."""
    if labels.size and labels.dtype.kind not in "iu":
        raise DataError(f"{path}: labels are {labels.dtype}, not integers.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}.")
    return labels


# ---- CIFAR-10, python version --------------------------------------------------------


def _empty_array(subtype, shape, dtype):
    """numpy's _reconstruct, which pickles always call with shape (0,) before filling the
    array in (its __setstate__ checks the data's length): any other shape is refused here,
    so a small file cannot make it allocate a huge array."""
    from numpy._core import multiarray

    if subtype is not np.ndarray or not isinstance(shape, tuple) or math.prod(shape) > 1:
        raise ValueError(f"unexpected array reconstruction {shape!r}")
    return multiarray._reconstruct(subtype, shape, dtype)


def _array_from_buffer(buffer, dtype, shape, order):
    """numpy's pickle-protocol-5 constructor, after checking that the buffer holds exactly
    the declared shape (it views the buffer: no allocation)."""
    from numpy._core import numeric

    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)
            and len(memoryview(buffer)) == math.prod(shape) * np.dtype(dtype).itemsize):
        raise ValueError(f"array buffer does not hold the declared shape {shape!r}")
    return numeric._frombuffer(buffer, dtype, shape, order)


def _bytes(*args):
    """bytes() as protocol-2 pickles use it (empty, or from a str and an encoding);
    never bytes(n), which would allocate n bytes."""
    if args and not isinstance(args[0], (str, bytes, bytearray)):
        raise ValueError("bytes() of a size")
    return bytes(*args)


def _numpy_globals() -> dict[tuple[str, str], object]:
    return {
        # What the real batches (pickled by numpy 1.x under Python 2) reference, the names
        # numpy 2 writes for the same functions, and protocol 5's buffer constructor.
        ("numpy.core.multiarray", "_reconstruct"): _empty_array,
        ("numpy._core.multiarray", "_reconstruct"): _empty_array,
        ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
        ("numpy._core.numeric", "_frombuffer"): _array_from_buffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes under protocol 2 as encode(str, "latin1"), and empty bytes
        # as bytes() (batches re-saved by Python 3 tools): pure conversions.
        ("_codecs", "encode"): codecs.encode,
        ("__builtin__", "bytes"): _bytes,
        ("builtins", "bytes"): _bytes,
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
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}).") from None
    try:
        batch = CifarUnpickler(io.BytesIO(raw), path).load()
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
    if not isinstance(labels, list) or len(labels) != len(data) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise DataError(f"{path}: 'labels' is not a list of {len(data)} ints.")
    return data.reshape(-1, 3, 32, 32), check_labels(np.asarray(labels, dtype=np.int64), 10,
                                                     path)


def read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    try:
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}).") from None
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
