"""The data sets warmup-bench knows: where their files live, how to read and fetch them.

On-disk layout is torchvision's, so data a user already downloaded with torchvision is
found: <data>/cifar-10-batches-py/, <data>/MNIST/raw/, <data>/EMNIST/raw/,
<data>/FashionMNIST/raw/ (IDX files plain or .gz).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import check_choice
from ..registry import Registry, result_error
from .readers import (
    DataError,
    read_cifar_binary,
    read_cifar_pickle,
    read_idx_pair,
    read_sklearn_digits,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
EMNIST_FILES = tuple(f"emnist-balanced-{split}-{kind}-ubyte" for split in ("train", "test")
                     for kind in ("images-idx3", "labels-idx1"))
CIFAR_PY = ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
# Published MD5s of the extracted python batches (the IDX family is only published as
# .gz archives, which Debian and mirrors recompress, so those are checked by structure).
CIFAR_PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR_BIN = ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
             ["test_batch.bin"])


@dataclass(frozen=True)
class Remote:
    """One file to download: its official URL and published MD5."""

    url: str
    md5: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass
class Split:
    """One split held in memory: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it was read from

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    num_classes: int
    shape: tuple[int, ...]  # (C, H, W); (1,) for a text corpus: one token per position
    sizes: tuple[int, int] | None  # train, test (None: known once read)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folders: tuple[str, ...]  # candidate folders under the data dir, in search order
    layout: IdxLayout | CifarLayout | EmbeddedLayout  # how the files are found and read
    extra_folders: tuple[Path, ...] = ()  # system-wide locations (Debian packages)
    remotes: tuple[Remote, ...] = ()
    archive: str = "gz-files"  # how the remotes unpack: a key of download.UNPACKERS
    expected_files: str = ""  # for the "put these files there" message
    class_names: tuple[str, ...] = ()  # label -> name (default: the label's number)

    @property
    def label(self) -> str:
        return self.title

    @property
    def description(self) -> str:
        return self.title

    def check(self, cfg) -> None:
        """The rules a data set states about a config (none: the model's fit to its images
        is checked once both are built)."""

    def candidate_folders(self, data_dir: Path) -> list[Path]:
        return [data_dir / f for f in self.folders] + list(self.extra_folders)

    def find(self, data_dir: Path) -> Path | None:
        """The first folder holding a complete copy (None if none does)."""
        return next((f for f in self.candidate_folders(data_dir) if self.layout.complete(f)),
                    None)


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class IdxLayout:
    """Four IDX files (train images, train labels, test images, test labels), .gz or not."""

    names: tuple[str, ...]
    num_classes: int
    image_shape: tuple[int, int]
    sizes: tuple[int, int]  # the most images each split may hold (train, test)
    embedded = False

    def complete(self, folder: Path) -> bool:
        return all(_idx_file(folder, n) for n in self.names)

    def read(self, folder: Path):
        paths = [_idx_file(folder, n) for n in self.names]
        return (read_idx_pair(paths[0], paths[1], self.num_classes, self.image_shape,
                              self.sizes[0]),
                read_idx_pair(paths[2], paths[3], self.num_classes, self.image_shape,
                              self.sizes[1]))


@dataclass(frozen=True)
class CifarLayout:
    """CIFAR-10 batches: the python-pickle version or the binary one, by folder name."""

    embedded = False

    def _files(self, folder: Path):
        for layout, train_files, test_files, reader in (
                (*CIFAR_PY, read_cifar_pickle), (*CIFAR_BIN, read_cifar_binary)):
            if folder.name == layout:
                return train_files, test_files, reader
        return [], [], None

    def complete(self, folder: Path) -> bool:
        train_files, test_files, reader = self._files(folder)
        return reader is not None and all((folder / f).is_file()
                                          for f in train_files + test_files)

    def read(self, folder: Path):
        train_files, test_files, reader = self._files(folder)
        parts = [[reader(folder / f) for f in files] for files in (train_files, test_files)]
        return tuple((np.concatenate([p[0] for p in part]), np.concatenate([p[1] for p in part]))
                     for part in parts)


@dataclass(frozen=True)
class EmbeddedLayout:
    """A data set a function reads (bundled with a package, registered by a plugin, or
    read from a file the user named): nothing in the data folder to find or fetch."""

    reader: object  # () -> ((train images, labels), (test images, labels))
    source: str
    embedded = True

    def complete(self, folder: Path) -> bool:
        return True

    def read(self, folder: Path | None = None):
        splits = self.reader()
        if not (isinstance(splits, (tuple, list)) and len(splits) == 2 and all(
                isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in splits)):
            raise result_error(f"the data set reader ({self.source}) returned "
                               f"{type(splits).__name__}, not ((train images, train labels), "
                               "(test images, test labels))", self.reader)
        return splits


def idx_remotes(base: str, md5s: tuple[str, ...]) -> tuple[Remote, ...]:
    return tuple(Remote(f"{base}{name}.gz", md5) for name, md5 in zip(IDX_FILES, md5s))


MNIST_BASE = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

DIGITS = tuple("0123456789")


def mnist_family(name: str, title: str, folder: str, base_url: str, md5s: tuple[str, ...],
                 mean: float, std: float, extra_folders: tuple[Path, ...] = (),
                 class_names: tuple[str, ...] = DIGITS) -> DatasetSpec:
    """A data set in MNIST's format: 60k/10k 28x28 grey images of 10 classes, four IDX files."""
    return DatasetSpec(
        name=name, title=title, num_classes=10, shape=(1, 28, 28), sizes=(60_000, 10_000),
        mean=(mean,), std=(std,), folders=(folder,), extra_folders=extra_folders,
        remotes=idx_remotes(base_url, md5s),
        layout=IdxLayout(IDX_FILES, 10, (28, 28), (60_000, 10_000)),
        expected_files=", ".join(IDX_FILES) + f" (each may be .gz) in {folder}/",
        class_names=class_names)


DATASETS: Registry[DatasetSpec] = Registry("dataset", "data set", {
    "cifar10": DatasetSpec(
        name="cifar10", title="CIFAR-10", num_classes=10, shape=(3, 32, 32),
        sizes=(50_000, 10_000), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        folders=(CIFAR_PY[0], CIFAR_BIN[0]),
        remotes=(Remote("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a"),),
        layout=CifarLayout(), archive="tar",
        expected_files="data_batch_1..5 and test_batch (from cifar-10-python.tar.gz) in "
                       "cifar-10-batches-py/",
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck"),
    ),
    "mnist": mnist_family("mnist", "MNIST", "MNIST/raw", MNIST_BASE, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
        mean=0.1307, std=0.3081),
    "emnist": DatasetSpec(
        name="emnist", title="EMNIST balanced", num_classes=47, shape=(1, 28, 28),
        sizes=(112_800, 18_800), mean=(0.1751,), std=(0.3332,), folders=("EMNIST/raw",),
        remotes=(Remote("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
                        "58c8d27c78d21e728a6bc7b3cc06412e"),),
        layout=IdxLayout(EMNIST_FILES, 47, (28, 28), (112_800, 18_800)), archive="zip-of-gz",
        expected_files=", ".join(EMNIST_FILES) + " (each may be .gz) in EMNIST/raw/",
        class_names=tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"),  # "balanced"
    ),
    "fashion-mnist": mnist_family("fashion-mnist", "Fashion-MNIST", "FashionMNIST/raw",
                                  FASHION_BASE, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
        mean=0.2860, std=0.3530, extra_folders=(DEBIAN_FASHION_MNIST,),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot")),
    "digits": DatasetSpec(
        name="digits", title="scikit-learn digits (8x8, embedded)", num_classes=10,
        shape=(1, 8, 8), sizes=(1438, 359), mean=(), std=(), folders=(),
        layout=EmbeddedLayout(read_sklearn_digits, "scikit-learn (bundled)"),
        class_names=DIGITS,
    ),
})


def custom_spec(name: str, read, num_classes: int, shape: tuple[int, int, int],
                title: str | None = None, class_names: tuple[str, ...] = (),
                mean: tuple[float, ...] = (), std: tuple[float, ...] = (),
                sizes: tuple[int, int] | None = None, source: str = "plugin") -> DatasetSpec:
    """A data set read by `read()` (a plugin's, or one from the user's files)."""
    return DatasetSpec(name=name, title=title or name, num_classes=num_classes,
                       shape=tuple(shape), sizes=sizes, mean=tuple(mean), std=tuple(std),
                       folders=(), layout=EmbeddedLayout(read, source),
                       class_names=tuple(class_names))


def default_data_dir() -> Path:
    return Path(os.environ.get("WARMUP_BENCH_DATA", "data"))


def get_spec(name: str) -> DatasetSpec:
    check_choice("data set", name, DATASETS)
    return DATASETS[name]


def locate(name: str, data_dir: Path | None = None) -> Path | None:
    """The first folder holding a complete copy of the data set (None if none does)."""
    spec = get_spec(name)
    if spec.layout.embedded:
        return None
    return spec.find(default_data_dir() if data_dir is None else Path(data_dir))


def not_found_message(spec: DatasetSpec, data_dir: Path) -> str:
    return (f"{spec.name} not found: put {spec.expected_files} under {data_dir} "
            f"(--data-dir or WARMUP_BENCH_DATA), or run `warmup-bench data download {spec.name}`.")


def load_dataset(name: str, data_dir: Path | None = None,
                 spec: DatasetSpec | None = None) -> Dataset:
    """Reads a whole data set into memory (CPU uint8 tensors): a registered one by name,
    or the one `spec` describes (the user's own data, opened from its source)."""
    spec = spec or get_spec(name)
    if hasattr(spec.layout, "load"):  # a text corpus (data.text) reads itself
        return spec.layout.load(name)
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    if spec.layout.embedded:
        folder, source = None, spec.layout.source
    else:
        folder = spec.find(data_dir)
        if folder is None:
            raise DataError(not_found_message(spec, data_dir))
        source = str(folder)
    (train_x, train_y), (test_x, test_y) = spec.layout.read(folder)
    for split, images, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        check_split(source, split, images, labels, spec)
    mean, std = spec.mean, spec.std
    if not mean:  # no published statistics: those of the train split, per channel
        mean, std = pixel_statistics(train_x, source)

    def split(images, labels) -> Split:
        # parsed arrays may view read-only file buffers: copy those; and one memory layout
        # (row-major strides, also for the channel axis of grey images) whatever the reader
        # gave, since kernels pick their summation order by strides: the same pixels then
        # train bit-identically from any file format
        canonical = tuple(math.prod(images.shape[i + 1:]) for i in range(images.ndim))  # uint8
        if images.strides != canonical or not images.flags.writeable:
            images = np.array(images, order="C", copy=True)  # a fresh array: row-major
        return Split(torch.from_numpy(images),
                     torch.from_numpy(np.require(labels.astype(np.int64, copy=False),
                                                 requirements=["C", "W"])))

    return Dataset(name=name, train=split(train_x, train_y), test=split(test_x, test_y),
                   num_classes=spec.num_classes, mean=mean, std=std, source=source)


STATS_CHUNK = 1 << 18  # pixels per np.bincount call, whose int64 copy is then 2 MiB


def pixel_statistics(images: np.ndarray, source: str = "data") -> tuple[tuple[float, ...],
                                                                         tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W) on the 0..1
    scale, from exact integer histograms: no float copy of the split, and each value
    within an ulp or so of exact, so their float32 casts (what the loader uses) are those
    of the former `(images / 255).mean()`, `.std()` (tested: digits, random arrays).
    A constant channel (std 0) is refused: normalising it would give NaN."""
    count, channels = images.shape[0], images.shape[1]
    pixels = math.prod(images.shape[2:])
    step = max(1, STATS_CHUNK // max(pixels, 1))
    means, stds = [], []
    for c in range(channels):
        histogram = sum((np.bincount(images[i:i + step, c].ravel(), minlength=256)
                         for i in range(0, count, step)), np.zeros(256, np.int64)).tolist()
        n = count * pixels
        total = sum(v * k for v, k in enumerate(histogram))  # Python ints: exact
        squares = sum(v * v * k for v, k in enumerate(histogram))
        spread = n * squares - total * total  # n^2 * 255^2 * variance, exact
        if spread == 0:
            raise DataError(f"{source}: every train pixel of channel {c} is {total // n}; "
                            "constant images cannot be normalised (their std is 0).")
        means.append(total / (255 * n))  # int / int: correctly rounded
        stds.append(math.sqrt(spread / (255 * n) ** 2))
    return tuple(means), tuple(stds)


def check_split(source: str, split: str, images, labels, spec: DatasetSpec) -> None:
    """What the loader relies on, whoever read the arrays: uint8 images of the spec's
    shape, one integer label in 0..classes-1 per image, at least one image."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"{source}: {split} images must be a uint8 array (N, C, H, W), got "
                        f"{getattr(images, 'dtype', type(images).__name__)} "
                        f"{getattr(images, 'shape', '')}.")
    if tuple(images.shape[1:]) != spec.shape:
        raise DataError(f"{source}: {split} images are {images.shape[1:]}, "
                        f"expected {spec.shape}.")
    if len(images) == 0:
        raise DataError(f"{source}: the {split} split holds no images.")
    if 0 in images.shape[1:]:
        raise DataError(f"{source}: {split} images are {tuple(images.shape[1:])} (C, H, W); "
                        "an image needs at least one pixel.")
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu" \
            or labels.shape != (len(images),):
        raise DataError(f"{source}: {split} labels must be {len(images)} integers, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)} "
                        f"{getattr(labels, 'shape', '')}.")
    if labels.min() < 0 or labels.max() >= spec.num_classes:
        raise DataError(f"{source}: {split} labels run from {labels.min()} to "
                        f"{labels.max()}; {spec.name} has classes 0..{spec.num_classes - 1}.")


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
