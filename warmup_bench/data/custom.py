"""Data sets from the user's own files, with the built-in readers' care: nothing is
unpickled, and every size is known and checked before anything is allocated.

- `npz:PATH`: a NumPy .npz holding `x_train`, `y_train`, `x_test`, `y_test` (and
  optionally `class_names`): images uint8 as (N, H, W), (N, H, W, C) or (N, C, H, W) with
  C in {1, 3}, labels integers 0..K-1.
- `folder:PATH`: `train/` and `test/` (or `val/`) folders, each with one subfolder of
  images per class (torchvision's ImageFolder layout, twice); classes are the sorted
  subfolder names of train/; every image must have the same size.

Each is registered as a data set named after the source ("npz:digits.npz"), its provider
fingerprinted by the SHA-256 of its content, so a run records exactly the data it read.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from pathlib import Path

import numpy as np

from .catalog import DatasetSpec, custom_spec
from .readers import DataError
from .verify import sha256_of

MAX_BYTES = 1 << 33  # 8 GiB of decoded images: a header claiming more is refused
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")
KINDS = ("npz", "folder")


def open_data_source(source: str) -> tuple[DatasetSpec, str, Path]:
    """The spec of "npz:PATH" or "folder:PATH", its content fingerprint, and its path."""
    kind, _, where = source.partition(":")
    if kind not in KINDS or not where:
        from .catalog import DATASETS

        raise DataError(f"--data {source!r} is not valid; use npz:PATH, folder:PATH or a data "
                        f"set's name ({', '.join(DATASETS)}).")
    path = Path(where)
    return (_npz_spec if kind == "npz" else _folder_spec)(path)


# ---- .npz ---------------------------------------------------------------------------


def _npz_header(archive: zipfile.ZipFile, member: str, path: Path):
    """(shape, dtype) of one .npy member, read from its header alone."""
    with archive.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(stream)
        except ValueError as error:
            raise DataError(f"{path}: {member} is not a readable .npy array ({error}).") \
                from None
    if dtype.hasobject:
        raise DataError(f"{path}: {member} holds Python objects; only plain arrays are read "
                        "(no pickle).")
    return shape, dtype


def _npz_spec(path: Path) -> tuple[DatasetSpec, str, Path]:
    if not path.is_file():
        raise DataError(f"--data npz:{path}: no such file.")
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not an .npz archive ({error}).") from None
    with archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        missing = [name for name in NPZ_ARRAYS if name not in members]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)} array(s); an .npz data set holds "
                            f"{', '.join(NPZ_ARRAYS)}.")
        headers = {name: _npz_header(archive, members[name], path)
                   for name in (*NPZ_ARRAYS, "class_names") if name in members}
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
    for name, (shape, dtype) in headers.items():
        if math.prod(shape) * dtype.itemsize > MAX_BYTES:
            raise DataError(f"{path}: {name} is {shape}, more than {MAX_BYTES:,} bytes.")
    if layouts["train"][1] != layouts["test"][1]:
        raise DataError(f"{path}: train images are {layouts['train'][1]} (C, H, W), test "
                        f"images {layouts['test'][1]}.")

    def arrays(*names: str) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as data:  # sizes were checked above
            return {name: data[name] for name in names if name in headers}

    # only the labels now (the class count); the images when the data set is read
    labels = arrays("y_train", "y_test", "class_names")
    num_classes = int(max(labels["y_train"].max(initial=-1), labels["y_test"].max(initial=-1))) + 1
    class_names = tuple(str(n) for n in labels.get("class_names", ()))
    if class_names and len(class_names) < num_classes:
        raise DataError(f"{path}: {len(class_names)} class_names for labels up to "
                        f"{num_classes - 1}.")
    num_classes = max(num_classes, len(class_names))

    def read():
        data = arrays(*NPZ_ARRAYS)
        return tuple((_to_nchw(data[f"x_{split}"], layouts[split][0]), data[f"y_{split}"])
                     for split in ("train", "test"))

    name = f"npz:{path.name}"
    spec = custom_spec(name, read, num_classes, layouts["train"][1], title=f"{path.name} (npz)",
                       class_names=class_names,
                       sizes=(headers["x_train"][0][0], headers["x_test"][0][0]),
                       source=str(path))
    return spec, sha256_of(path), path


def _image_layout(shape: tuple[int, ...], what: str) -> tuple[str, tuple[int, int, int]]:
    """("nhw" | "nhwc" | "nchw", (C, H, W)) of an image array's shape."""
    if len(shape) == 3:
        return "nhw", (1, shape[1], shape[2])
    if len(shape) == 4:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if last and not first:
            return "nhwc", (shape[3], shape[1], shape[2])
        if first and not last:
            return "nchw", (shape[1], shape[2], shape[3])
    raise DataError(f"{what} is {shape}; images must be (N, H, W), (N, H, W, C) or "
                    "(N, C, H, W) with C 1 or 3 (and H, W not 1 or 3).")


def _to_nchw(images: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return images[:, None]
    if layout == "nhwc":
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images


# ---- a folder of class subfolders -----------------------------------------------------


def _class_images(split_dir: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(f for f in d.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            for d in sorted(split_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _folder_spec(root: Path) -> tuple[DatasetSpec, str, Path]:
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataError(f"--data folder:{root}: no such folder.")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"{root}: a folder data set holds train/ and test/ (or val/), each "
                        "with one subfolder of images per class.")
    splits = {"train": _class_images(root / "train"), "test": _class_images(test_dir)}
    classes = [c for c, files in splits["train"].items() if files]
    if len(classes) < 2:
        raise DataError(f"{root / 'train'}: found {len(classes)} class subfolder(s) with "
                        "images; need at least 2.")
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
            try:
                with Image.open(file) as image:  # reads the header only
                    if size is None:
                        size = image.size
                    if image.size != size:
                        raise DataError(f"{file}: {image.size[0]}x{image.size[1]} pixels; the "
                                        f"first image is {size[0]}x{size[1]} (all must match).")
                    colour = colour or image.mode not in ("1", "L", "I", "I;16", "F", "LA")
            except (OSError, UnidentifiedImageError) as error:
                raise DataError(f"{file}: not a readable image ({error}).") from None
            digest.update(f"{split}/{classes[label]}/{file.name}\n".encode())
            digest.update(file.read_bytes())
            count += 1
    channels = 3 if colour else 1
    if count * channels * size[0] * size[1] > MAX_BYTES:
        raise DataError(f"{root}: {count:,} images of {size[0]}x{size[1]} exceed "
                        f"{MAX_BYTES:,} bytes.")

    def read():
        out = []
        for listed in files.values():
            images = np.empty((len(listed), channels, size[1], size[0]), dtype=np.uint8)
            for i, (file, _) in enumerate(listed):
                with Image.open(file) as image:
                    pixels = np.asarray(image.convert("RGB" if colour else "L"))
                images[i] = pixels.transpose(2, 0, 1) if colour else pixels[None]
            out.append((images, np.array([label for _, label in listed], dtype=np.int64)))
        return tuple(out)

    name = f"folder:{root.resolve().name}"
    spec = custom_spec(name, read, len(classes), (channels, size[1], size[0]),
                       title=f"{root.name} (image folder)", class_names=tuple(classes),
                       sizes=(len(files["train"]), len(files["test"])), source=str(root))
    return spec, digest.hexdigest(), root
