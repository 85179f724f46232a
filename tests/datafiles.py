"""Writers of the real on-disk formats, for tests (data sets are never committed)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def random_images(n: int, shape=(28, 28), seed: int = 0, classes: int = 10):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            rng.integers(0, classes, n).astype(np.uint8))


def write_idx_dataset(folder: Path, names, sizes=(30, 12), classes=10, gz=False, seed=0):
    """Four IDX files named `names` (train images/labels, test images/labels)."""
    arrays = {}
    for split, n, (img_name, lbl_name) in zip(("train", "test"), sizes,
                                              (names[:2], names[2:])):
        images, labels = random_images(n, seed=seed + n, classes=classes)
        write_idx(folder / img_name, images, gz)
        write_idx(folder / lbl_name, labels, gz)
        arrays[split] = (images, labels)
    return arrays


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"batch_label": f"batch {seed}", "labels": rng.integers(0, 10, n).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "filenames": [f"img_{i}.png" for i in range(n)]}


def write_cifar_python(folder: Path, per_batch: int = 8) -> dict[str, dict]:
    """cifar-10-batches-py/ with protocol-2 pickles, as the real files are."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[name] = cifar_batch(per_batch, seed=i)
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    return batches


def write_cifar_binary(folder: Path, per_batch: int = 8) -> dict[str, tuple]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        rng = np.random.default_rng(100 + i)
        labels = rng.integers(0, 10, per_batch).astype(np.uint8)
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], pixels], 1).tobytes())
        batches[name] = (pixels, labels)
    return batches


def write_npz(path: Path, arrays: dict, compress: bool = False) -> Path:
    """An .npz as np.savez writes it (members NAME.npy), but pickles allowed, so that bad
    arrays can be written too."""
    import zipfile

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:  # small: no zip64 fields
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=True)
    return path


def png_header(width: int, height: int, bit_depth: int = 1) -> bytes:
    """A grey PNG declaring width x height pixels, with a token IDAT: a few dozen bytes
    (a decompression bomb as far as any header check can tell)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))
