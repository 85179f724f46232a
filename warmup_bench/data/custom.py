"""Data sets from the user's own files, with the built-in readers' care: nothing is
unpickled, and every size is known and checked before anything is allocated.

- `npz:PATH`: a NumPy .npz holding `x_train`, `y_train`, `x_test`, `y_test` (and
  optionally `class_names`): images uint8 as (N, H, W), (N, H, W, C) or (N, C, H, W) with
  C in {1, 3}, labels integers 0..K-1.
- `text:PATH`: a UTF-8 text file or a folder of train.txt / valid.txt (/ test.txt), for
  the language-model tasks (data.text reads and checks it).
- `folder:PATH`: `train/` and `test/` (or `val/`) folders, each with one subfolder of
  images per class (torchvision's ImageFolder layout, twice); classes are the sorted
  subfolder names of train/; every image must have the same size.

Opened, a source is a `DataSource` value: a data set named after it ("npz:digits.npz")
whose provider is fingerprinted by the SHA-256 of its content, so a run records exactly
the data it read; the value travels from the CLI to the training code in the run's
options, and its location goes into meta.json, so `predict` finds the data again.

Refused, in one line naming the file: more than MAX_BYTES decoded in all (or more than the
memory available to load it), labels of MAX_CLASSES or more, an archive member twice,
encrypted, compressed by an unknown method or corrupt, and any image file images.py does
not open (not a regular file, content not its suffix's format, a decompression bomb, more
than 8 bits per pixel).
"""

from __future__ import annotations

import hashlib
import lzma
import math
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..registry import Provider
from .catalog import DATASETS, DatasetSpec, custom_spec
from .images import GREY_MODES, SUFFIXES, image_info, load_image, open_regular
from .readers import DataError
from .text import text_source_spec
from .verify import sha256_of

MAX_BYTES = 1 << 33  # 8 GiB decoded, all arrays of a data set together
MAX_CLASSES = 100_000  # labels 0..99,999: a larger label is a corrupt file, not a class
# load_dataset's peak per decoded byte, rounded up: measured with tracemalloc 1.8 for an
# .npz of (N, H, W, C) images (transposed while the file's copy is alive), 1.03-1.08 for
# other layouts and for folders (decoded straight into their array)
LOAD_COPIES = 2
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
# what zipfile, zlib, bz2, lzma and numpy's .npy parser raise on a corrupt member
ZIP_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, zlib.error, lzma.LZMAError,
              NotImplementedError, RuntimeError, OSError)
KINDS = ("npz", "folder", "text")


@dataclass(frozen=True)
class DataSource:
    """The user's own data, opened (headers checked): its data set's spec, and the
    provider a run records for it (the data set's name and its content's SHA-256)."""

    spec: DatasetSpec
    provider: Provider
    kind: str  # "npz", "folder" or "text"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def location(self) -> str:
        """What meta.json records: the source with its absolute path."""
        return f"{self.kind}:{self.provider.path}"


def open_data_source(source: str) -> DataSource:
    """The data of "npz:PATH", "folder:PATH" or "text:PATH" (DataError, one line, if it is
    unusable)."""
    kind, _, where = source.partition(":")
    if kind not in KINDS or not where:

        raise DataError(f"--data {source!r} is not valid; use npz:PATH, folder:PATH, "
                        "text:PATH (a UTF-8 file, or a folder of train.txt / valid.txt) or a data "
                        f"set's name ({', '.join(DATASETS)}).")
    read = {"npz": lambda: _npz_spec(Path(where)), "folder": lambda: _folder_spec(Path(where)),
            "text": lambda: text_source_spec(where)}[kind]
    spec, fingerprint, path = read()
    return DataSource(spec, Provider(spec.name, fingerprint, path.resolve()), kind)


# ---- .npz ---------------------------------------------------------------------------


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _open_archive(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except ZIP_ERRORS as error:
        raise DataError(f"{path}: not an .npz archive ({_reason(error)}).") from None


def _npz_members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name ("x_train" for x_train.npy); two members of one
    name are refused, since which of them each reader picks is an accident."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise DataError(f"{path}: {members[name].filename} and {info.filename} are both "
                            f"the array {name}; an .npz holds each array once.")
        members[name] = info
    return members


@contextmanager
def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
    """One member as a stream; a corrupt one (bad CRC, truncated, undecodable) as DataError."""
    if info.flag_bits & 0x1:
        raise DataError(f"{path}: {info.filename} is encrypted; only unencrypted archives "
                        "are read.")
    if info.compress_type not in ZIP_METHODS:
        raise DataError(f"{path}: {info.filename} uses zip compression method "
                        f"{info.compress_type}; only stored, deflate, bzip2 and lzma are read.")
    try:
        with archive.open(info) as stream:
            yield stream
    except ZIP_ERRORS as error:
        raise DataError(f"{path}: {info.filename} is corrupt or truncated "
                        f"({_reason(error)}).") from None


def _npz_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path):
    """(shape, dtype, bytes after the header) of one .npy member, from its header alone."""
    with _member(archive, info, path) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(stream)
        except ValueError as error:
            raise DataError(f"{path}: {info.filename} is not a readable .npy array "
                            f"({_reason(error)}).") from None
        data_start = stream.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: {info.filename} holds Python objects; only plain arrays "
                        "are read (no pickle).")
    if any(d < 0 for d in shape):
        raise DataError(f"{path}: {info.filename} declares the impossible shape {shape}.")
    return shape, dtype, info.file_size - data_start


def _npz_arrays(path: Path, headers: dict, names) -> dict[str, np.ndarray]:
    """The named arrays, read from the members the headers were read from."""
    archive = _open_archive(path)
    arrays = {}
    with archive:
        members = _npz_members(archive, path)
        for name in names:
            if name not in headers:
                continue
            with _member(archive, members[name], path) as stream:
                array = np.lib.format.read_array(stream, allow_pickle=False)
            if (array.shape, array.dtype) != headers[name]:
                raise DataError(f"{path}: {members[name].filename} changed while it was read.")
            arrays[name] = array
    return arrays


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_cost(where: Path, decoded: int, largest: str) -> None:
    """A data set's decoded arrays must total at most MAX_BYTES, and loading them (decoded
    bytes times the copies the loader holds at once) must fit in the available memory."""
    if decoded > MAX_BYTES:
        raise DataError(f"{where}: its arrays hold {decoded:,} bytes decoded ({largest}), "
                        f"more than {MAX_BYTES:,} bytes, the limit for a whole data set.")
    available = available_memory()
    if available is not None and decoded * LOAD_COPIES > available:
        raise DataError(f"{where}: loading it needs about {decoded * LOAD_COPIES:,} bytes "
                        f"({decoded:,} decoded, x{LOAD_COPIES}); {available:,} bytes are "
                        "available.")


def _max_label(labels: np.ndarray, path: Path, name: str) -> int:
    """The largest label (-1 for none); one of MAX_CLASSES or more is refused."""
    top = int(labels.max()) if labels.size else -1
    if top >= MAX_CLASSES:
        raise DataError(f"{path}: {name} holds the label {top:,}; labels must be below "
                        f"{MAX_CLASSES:,} (the most classes read).")
    return top


def _class_names(names: np.ndarray | None, path: Path) -> tuple[str, ...]:
    """class_names as Python strings (bytes decoded as UTF-8)."""
    if names is None:
        return ()
    if names.ndim != 1 or names.dtype.kind not in "USiu" or len(names) > MAX_CLASSES:
        raise DataError(f"{path}: class_names is {names.dtype} {names.shape}; it must be a "
                        f"1-D array of at most {MAX_CLASSES:,} strings.")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                 for n in names.tolist())


def _npz_spec(path: Path) -> tuple[DatasetSpec, str, Path]:
    if not path.exists():
        raise DataError(f"--data npz:{path}: no such file.")
    open_regular(path).close()  # a FIFO or a device: refused, not read
    archive = _open_archive(path)
    with archive:
        members = _npz_members(archive, path)
        missing = [name for name in NPZ_ARRAYS if name not in members]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)} array(s); an .npz data set holds "
                            f"{', '.join(NPZ_ARRAYS)}.")
        parsed = {name: _npz_header(archive, members[name], path)
                  for name in (*NPZ_ARRAYS, "class_names") if name in members}
    headers = {name: (shape, dtype) for name, (shape, dtype, _) in parsed.items()}
    sizes = {name: math.prod(shape) * dtype.itemsize for name, (shape, dtype) in headers.items()}
    largest = max(sizes, key=sizes.get)
    check_cost(path, sum(sizes.values()), f"{largest} is {headers[largest][0]}")
    for name, (shape, dtype, held) in parsed.items():
        if held < sizes[name]:
            raise DataError(f"{path}: {members[name].filename} is truncated: its header "
                            f"announces {shape} {dtype} ({sizes[name]:,} bytes), it holds "
                            f"{held:,}.")
    layouts = {}
    for split in ("train", "test"):
        (x_shape, x_dtype), (y_shape, y_dtype) = headers[f"x_{split}"], headers[f"y_{split}"]
        if x_dtype != np.uint8:
            raise DataError(f"{path}: x_{split} is {x_dtype}; images must be uint8 (0..255), "
                            "e.g. (x * 255).round().astype(np.uint8).")
        layouts[split] = _image_layout(x_shape, f"{path}: x_{split}")
        if y_dtype.kind not in "iu" or y_shape != (x_shape[0],):
            raise DataError(f"{path}: y_{split} must be {x_shape[0]} integer labels, got "
                            f"{y_dtype} {y_shape}.")
    if layouts["train"][1] != layouts["test"][1]:
        raise DataError(f"{path}: train images are {layouts['train'][1]} (C, H, W), test "
                        f"images {layouts['test'][1]}.")

    # only the labels now (the class count); the images when the data set is read
    labels = _npz_arrays(path, headers, ("y_train", "y_test", "class_names"))
    num_classes = max(_max_label(labels[name], path, name) for name in ("y_train", "y_test")) + 1
    class_names = _class_names(labels.get("class_names"), path)
    if class_names and len(class_names) < num_classes:
        raise DataError(f"{path}: {len(class_names)} class_names for labels up to "
                        f"{num_classes - 1}.")
    num_classes = max(num_classes, len(class_names))

    def read():
        out = []
        for split in ("train", "test"):
            data = _npz_arrays(path, headers, (f"x_{split}", f"y_{split}"))
            out.append((_to_nchw(data[f"x_{split}"], layouts[split][0]), data[f"y_{split}"]))
        return tuple(out)

    name = f"npz:{path.name}"
    spec = custom_spec(name, read, num_classes, layouts["train"][1], title=f"{path.name} (npz)",
                       class_names=class_names,
                       sizes=(headers["x_train"][0][0], headers["x_test"][0][0]),
                       source=str(path))
    return spec, sha256_of(path), path


def _image_layout(shape: tuple[int, ...], what: str) -> tuple[str, tuple[int, int, int]]:
    """("nhw" | "nhwc" | "nchw", (C, H, W)) of an image array's shape."""
    layout = None
    if len(shape) == 3:
        layout = "nhw", (1, shape[1], shape[2])
    elif len(shape) == 4:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if last and not first:
            layout = "nhwc", (shape[3], shape[1], shape[2])
        elif first and not last:
            layout = "nchw", (shape[1], shape[2], shape[3])
    if layout is None:
        raise DataError(f"{what} is {shape}; images must be (N, H, W), (N, H, W, C) or "
                        "(N, C, H, W) with C 1 or 3 (and H, W not 1 or 3).")
    if 0 in layout[1]:
        raise DataError(f"{what} is {shape}: images of {layout[1][1]}x{layout[1][2]} pixels "
                        "(an image needs at least one).")
    return layout


def _to_nchw(images: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return images.reshape(len(images), 1, *images.shape[1:])  # row-major strides: no copy later
    if layout == "nhwc":
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images


# ---- a folder of class subfolders -----------------------------------------------------


def _class_images(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> its files with an image suffix. Those that are not regular files
    (FIFOs, devices, folders named x.png) are kept here, to be refused when read."""
    return {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in SUFFIXES)
            for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _folder_spec(root: Path) -> tuple[DatasetSpec, str, Path]:
    if not root.is_dir():
        raise DataError(f"--data folder:{root}: no such folder.")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"{root}: a folder data set holds train/ and test/ (or val/), each "
                        "with one subfolder of images per class.")
    splits = {"train": _class_images(root / "train"), "test": _class_images(test_dir)}
    classes = [c for c, files in splits["train"].items() if files]
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise DataError(f"{root / 'train'}: found {len(classes):,} class subfolder(s) with "
                        f"images; need 2 to {MAX_CLASSES:,}.")
    unknown = sorted(c for c, files in splits["test"].items() if files and c not in classes)
    if unknown:
        raise DataError(f"{test_dir}: classes {', '.join(unknown)} are not in train/.")

    digest, size, colour, count = hashlib.sha256(), None, False, 0
    files = {split: [(f, label) for label, c in enumerate(classes)
                     for f in splits[split].get(c, [])] for split in splits}
    for split, listed in files.items():
        if not listed:
            raise DataError(f"{root}: the {split} split holds no images.")
        for file, label in listed:
            file_size, mode = image_info(file)  # the header only
            size = size or file_size
            if file_size != size:
                raise DataError(f"{file}: {file_size[0]}x{file_size[1]} pixels; the first image "
                                f"is {size[0]}x{size[1]} (all must match).")
            colour = colour or mode not in GREY_MODES
            digest.update(f"{split}/{classes[label]}/{file.name}\n".encode())
            with open_regular(file) as stream:
                digest.update(stream.read())
            count += 1
    channels = 3 if colour else 1
    check_cost(root, count * (channels * size[0] * size[1] + 8),
               f"{count:,} images of {size[0]}x{size[1]}")

    def read():
        out = []
        for listed in files.values():
            images = np.empty((len(listed), channels, size[1], size[0]), dtype=np.uint8)
            for i, (file, _) in enumerate(listed):
                image = load_image(file, "RGB" if colour else "L")
                if image.size != size:
                    raise DataError(f"{file}: changed while the data set was read.")
                pixels = np.asarray(image)
                images[i] = pixels.transpose(2, 0, 1) if colour else pixels[None]
            out.append((images, np.array([label for _, label in listed], dtype=np.int64)))
        return tuple(out)

    name = f"folder:{root.resolve().name}"
    spec = custom_spec(name, read, len(classes), (channels, size[1], size[0]),
                       title=f"{root.name} (image folder)", class_names=tuple(classes),
                       sizes=(len(files["train"]), len(files["test"])), source=str(root))
    return spec, digest.hexdigest(), root
