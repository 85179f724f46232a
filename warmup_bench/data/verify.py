"""Checking a data set on disk: published MD5s where they exist, every file parses,
the published sizes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .catalog import CIFAR_PY, CIFAR_PY_MD5, Dataset, get_spec, load_dataset
from .readers import DataError

CHUNK = 1 << 20


def _digest_of(path: Path, digest) -> str:
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    """The MD5 data sets publish (not for security)."""
    return _digest_of(path, hashlib.md5(usedforsecurity=False))


def sha256_of(path: Path) -> str:
    """The SHA-256 a run records of a plugin file or a data file."""
    return _digest_of(path, hashlib.sha256())


def check_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """Verifies a data set on disk: known MD5s, every file parses, the published sizes."""
    spec = get_spec(name)
    data = load_dataset(name, data_dir)  # parses every file defensively
    if spec.layout.embedded:
        return data
    folder = Path(data.source)
    for filename, md5 in CIFAR_PY_MD5.items() if folder.name == CIFAR_PY[0] else ():
        if md5_of(folder / filename) != md5:
            raise DataError(f"{folder / filename}: MD5 differs from the published one.")
    sizes = (len(data.train), len(data.test))
    if sizes != spec.sizes:
        raise DataError(f"{folder}: {sizes[0]} train / {sizes[1]} test samples, expected "
                        f"{spec.sizes[0]} / {spec.sizes[1]}.")
    return data
