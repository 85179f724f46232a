"""The user's own data files, made bad: image files (folder data sets and `predict --image`)
and .npz archives, each written at test time in its real on-disk format.

Every bad case is run where the user meets it (the CLI) and must end in one line on stderr
naming the file, exit code 2, no traceback, and no run folder written. The statistics the
loader normalises with are checked to stay what they were, bit for bit, in float32.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import invoke
from datafiles import png_header, write_npz
from PIL import Image

from warmup_bench.data import BatchLoader, DataError, Split, pixel_statistics
from warmup_bench.data.readers import read_sklearn_digits

EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
       b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")


def assert_one_line_error(result, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output and needle in lines[0], (needle, lines[0])


def train_on(tmp_path: Path, source: str):
    """`train` on --data `source`, the cheapest command that reads a data source."""
    return invoke("train", "--task", "digits", "--data", source, "--epochs", "1", "--no-progress",
                  "--out", tmp_path / "out", clean=True)


def assert_refused(tmp_path: Path, source: str, needle: str) -> None:
    assert_one_line_error(train_on(tmp_path, source), needle)
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.fixture(scope="module")
def model_run(tmp_path_factory) -> Path:
    """A digits run with a saved model, for `predict --image`."""
    out = tmp_path_factory.mktemp("run")
    result = invoke("train", "--task", "digits", "--epochs", "1", "--save-model", "--no-progress",
                    "--out", out, clean=True)
    assert result.exit_code == 0, result.output
    (folder,) = (out / "digits").iterdir()
    return folder


def predict(run: Path, image: Path):
    return invoke("predict", run, "--image", image, clean=True)


def write_folder(root: Path, per_class: int = 20) -> Path:
    """A folder data set of 8x8 grey PNGs: two classes, train/ and test/."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


def good_arrays(n_train: int = 40, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, 8, 8), dtype=np.uint8),
            "y_train": np.arange(n_train) % 10,
            "x_test": rng.integers(0, 256, (n_test, 8, 8), dtype=np.uint8),
            "y_test": np.arange(n_test) % 10}


def test_a_good_npz_and_folder_train(tmp_path) -> None:
    npz = write_npz(tmp_path / "good.npz", good_arrays())
    assert train_on(tmp_path / "n", f"npz:{npz}").exit_code == 0
    folder = write_folder(tmp_path / "d")
    result = train_on(tmp_path / "f", f"folder:{folder}")
    assert result.exit_code == 0, result.output


# ---- 1. only the decoder the suffix names (an EPS file would run Ghostscript) ---------


@pytest.fixture
def fake_ghostscript(tmp_path, monkeypatch) -> Path:
    """A `gs` first on PATH that leaves a marker file; returns the marker's path."""
    from PIL import EpsImagePlugin

    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # Pillow caches its search
    return marker


def test_eps_content_named_png_never_runs_ghostscript(tmp_path, model_run,
                                                      fake_ghostscript) -> None:
    from PIL import EpsImagePlugin

    eps = tmp_path / "x.png"
    eps.write_bytes(EPS)
    # the control: Pillow left to choose by content does run gs on this file
    with pytest.raises(Exception), Image.open(eps) as image:  # noqa: B017 (gs is fake)
        image.load()
    assert fake_ghostscript.exists()
    fake_ghostscript.unlink()
    EpsImagePlugin.gs_binary = None

    assert_one_line_error(predict(model_run, eps), "x.png: not a readable image: its content "
                                                   "is not PNG, as its suffix says")
    folder = write_folder(tmp_path / "d")
    (folder / "train" / "a" / "x.png").write_bytes(EPS)
    assert_refused(tmp_path, f"folder:{folder}", "x.png: not a readable image")
    assert not fake_ghostscript.exists()


def test_content_of_another_format_and_unsupported_suffixes(tmp_path, model_run) -> None:
    Image.new("L", (8, 8), 7).save(tmp_path / "jpeg.png", "JPEG")
    assert_one_line_error(predict(model_run, tmp_path / "jpeg.png"),
                          "its content is not PNG, as its suffix says (supported suffixes: "
                          ".png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp, .ppm, .pgm)")
    (tmp_path / "x.eps").write_bytes(EPS)
    assert_one_line_error(predict(model_run, tmp_path / "x.eps"),
                          "x.eps: not a supported image file; supported suffixes: .png")


def test_every_supported_suffix_still_reads(tmp_path, model_run) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    for name, mode in (("a.PNG", "RGBA"), ("b.jpg", "RGB"), ("c.JPEG", "L"), ("d.bmp", "RGB"),
                       ("e.gif", "P"), ("f.tif", "RGB"), ("g.webp", "RGB"), ("h.ppm", "RGB"),
                       ("i.pgm", "L"), ("j.png", "1"), ("k.png", "LA")):
        Image.fromarray(pixels).convert(mode).save(tmp_path / name)
        result = predict(model_run, tmp_path / name)
        assert result.exit_code == 0 and result.output.startswith("1."), (name, result.output)


# ---- 2. only regular files ----------------------------------------------------------


@contextmanager
def fifo(path: Path):
    """A FIFO at `path`, with a writer waiting on it, so that a reader that opens it
    anyway gets end-of-file instead of hanging the test."""
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: open(path, "wb").close(), daemon=True)
    writer.start()
    try:
        yield path
    finally:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))  # releases the writer
        writer.join(5)


def test_predict_refuses_what_is_not_a_regular_file(tmp_path, model_run) -> None:
    with fifo(tmp_path / "pipe.png") as pipe:
        assert_one_line_error(predict(model_run, pipe),
                              "pipe.png: a FIFO (named pipe), not a regular file")
    (tmp_path / "dir.png").mkdir()
    assert_one_line_error(predict(model_run, tmp_path / "dir.png"),
                          "dir.png: a folder, not a regular file")
    (tmp_path / "null.png").symlink_to("/dev/null")
    assert stat.S_ISCHR(os.stat(tmp_path / "null.png").st_mode)
    assert_one_line_error(predict(model_run, tmp_path / "null.png"),
                          "null.png: a character device, not a regular file")
    assert_one_line_error(predict(model_run, tmp_path / "missing.png"),
                          "missing.png: cannot read (No such file or directory)")


def test_folder_data_refuses_class_files_that_are_not_regular(tmp_path) -> None:
    """Decided: refused, not skipped (a skipped file would silently shrink the data set)."""
    folder = write_folder(tmp_path / "d")
    with fifo(folder / "train" / "b" / "pipe.png"):
        assert_refused(tmp_path, f"folder:{folder}", "pipe.png: a FIFO (named pipe), not a "
                                                     "regular file")
    (folder / "train" / "b" / "pipe.png").unlink()
    (folder / "test" / "a" / "sub.png").mkdir()
    assert_refused(tmp_path, f"folder:{folder}", "sub.png: a folder, not a regular file")
    (folder / "test" / "a" / "sub.png").rmdir()
    (folder / "test" / "a" / "notes.txt").write_text("other suffixes are not images: skipped")
    assert train_on(tmp_path, f"folder:{folder}").exit_code == 0


# ---- 3. decompression bombs ---------------------------------------------------------


@pytest.mark.parametrize("side, pixels", [(20000, "400000000"), (10000, "100000000")])
def test_decompression_bombs_are_one_line(tmp_path, model_run, side, pixels) -> None:
    """20000^2 pixels is past Pillow's error limit, 10000^2 past its warning limit."""
    limit = Image.MAX_IMAGE_PIXELS
    (tmp_path / "bomb.png").write_bytes(png_header(side, side))
    assert (tmp_path / "bomb.png").stat().st_size < 100
    needle = f"bomb.png: refused as a possible decompression bomb (Image size ({pixels} pixels)"
    assert_one_line_error(predict(model_run, tmp_path / "bomb.png"), needle)
    folder = write_folder(tmp_path / "d")
    (folder / "train" / "a" / "bomb.png").write_bytes(png_header(side, side))
    assert_refused(tmp_path, f"folder:{folder}", needle)
    assert Image.MAX_IMAGE_PIXELS == limit  # the process's limit is left alone


# ---- 4. 16- and 32-bit images are refused (convert("L") would clip them) -------------


def test_wide_pixel_modes_are_refused(tmp_path, model_run) -> None:
    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(wide).save(tmp_path / "i16.png")
    Image.fromarray(wide.astype(np.float32) / 65535).save(tmp_path / "f.tif")
    for name, mode in (("i16.png", "I;16"), ("f.tif", "F")):
        assert Image.open(tmp_path / name).mode == mode
        assert_one_line_error(predict(model_run, tmp_path / name),
                              f"{name}: mode {mode} is not read (8-bit pixels only); supported "
                              "modes: 1, L, LA, P, PA, RGB, RGBA")
    folder = write_folder(tmp_path / "d")
    Image.fromarray(wide).save(folder / "test" / "b" / "i16.png")
    assert_refused(tmp_path, f"folder:{folder}", "i16.png: mode I;16 is not read")


# ---- 5. zero-area images -------------------------------------------------------------


def test_zero_area_images_are_one_line(tmp_path, model_run) -> None:
    (tmp_path / "empty.png").write_bytes(png_header(0, 0, bit_depth=8))
    assert_one_line_error(predict(model_run, tmp_path / "empty.png"),
                          "empty.png: not a readable image")  # Pillow refuses 0x0 itself
    folder = write_folder(tmp_path / "d")
    (folder / "train" / "a" / "empty.png").write_bytes(png_header(0, 8, bit_depth=8))
    assert_refused(tmp_path, f"folder:{folder}", "empty.png: not a readable image")
    arrays = {**good_arrays(), "x_train": np.zeros((40, 0, 8), np.uint8),
              "x_test": np.zeros((10, 0, 8), np.uint8)}
    npz = write_npz(tmp_path / "empty.npz", arrays)
    assert_refused(tmp_path, f"npz:{npz}", "x_train is (40, 0, 8): images of 0x8 pixels")


def test_zero_area_plugin_data_is_refused_before_statistics(tmp_path) -> None:
    from warmup_bench.data.catalog import check_split, custom_spec

    spec = custom_spec("empty", None, 2, (1, 0, 4))
    with pytest.raises(DataError, match=r"\(1, 0, 4\) \(C, H, W\); an image needs at least"):
        check_split("plugin", "train", np.zeros((3, 1, 0, 4), np.uint8), np.zeros(3, int), spec)


# ---- 6. corrupt .npz archives ---------------------------------------------------------


def npy_header(shape, dtype: str = "|u1") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def patch_member(path: Path, member: str, patch) -> None:
    """Calls patch(data, info, local, central) on the file's bytes: `local` and `central`
    are the offsets of the member's local and central directory headers."""
    with zipfile.ZipFile(path) as archive:
        info, central = archive.getinfo(member), archive.start_dir
    data = bytearray(path.read_bytes())
    while data[central + 46:central + 46 + len(member)] != member.encode():
        central += 46 + sum(struct.unpack("<HHH", data[central + 28:central + 34]))
    patch(data, info, info.header_offset, central)
    path.write_bytes(bytes(data))


def data_offset(data: bytearray, local: int) -> int:
    return local + 30 + sum(struct.unpack("<HH", data[local + 26:local + 30]))


def bad_crc(path: Path) -> None:
    def flip_last_byte(data, info, local, central):
        data[data_offset(data, local) + info.compress_size - 1] ^= 0xFF
    patch_member(path, "x_train.npy", flip_last_byte)


def encrypted(path: Path) -> None:
    def set_flag(data, info, local, central):
        data[local + 6] |= 0x1
        data[central + 8] |= 0x1
    patch_member(path, "y_train.npy", set_flag)


def method_99(path: Path) -> None:
    def set_method(data, info, local, central):
        data[local + 8:local + 10] = struct.pack("<H", 99)
        data[central + 10:central + 12] = struct.pack("<H", 99)
    patch_member(path, "x_test.npy", set_method)


def cut_deflate_stream(path: Path) -> None:
    """The compressed size halved in both headers: the stream ends before its data does."""
    def halve(data, info, local, central):
        data[local + 18:local + 22] = struct.pack("<I", info.compress_size // 2)
        data[central + 20:central + 24] = struct.pack("<I", info.compress_size // 2)
    patch_member(path, "x_train.npy", halve)


def rewrite(**members):
    """Writes the good arrays, then the given members as raw .npy bytes or arrays."""
    def write(path: Path) -> None:
        arrays = {k: v for k, v in good_arrays().items() if k not in members}
        write_npz(path, arrays)
        with zipfile.ZipFile(path, "a") as archive:
            for name, value in members.items():
                if isinstance(value, bytes):
                    archive.writestr(f"{name}.npy", value)
                else:
                    with archive.open(f"{name}.npy", "w") as member:
                        np.lib.format.write_array(member, value, allow_pickle=True)
    return write


def cut_file(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])  # the central directory is gone


NPZ_FAULTS = {
    "truncated-file": (cut_file, False, "bad.npz: not an .npz archive (BadZipFile: File is "
                                        "not a zip file)"),
    "bad-crc": (bad_crc, False, "x_train.npy is corrupt or truncated (BadZipFile: Bad CRC-32"),
    "encrypted": (encrypted, False, "y_train.npy is encrypted; only unencrypted archives"),
    "method-99": (method_99, False, "x_test.npy uses zip compression method 99; only stored, "
                                    "deflate, bzip2 and lzma are read"),
    "cut-deflate-stream": (cut_deflate_stream, True, "x_train.npy is corrupt or truncated"),
    "short-member": (rewrite(x_train=npy_header((40, 8, 8)) + b"\0" * 100), False,
                     "x_train.npy is truncated: its header announces (40, 8, 8) uint8 (2,560 "
                     "bytes), it holds 100"),
    "negative-shape": (rewrite(x_test=npy_header((-10, 8, 8))), False,
                       "x_test.npy declares the impossible shape (-10, 8, 8)"),
    "absurd-shape": (rewrite(x_train=npy_header((10**30, 8, 8))), False,
                     "more than 8,589,934,592 bytes, the limit for a whole data set"),
    "not-npy": (rewrite(y_test=b"PK not an array"), False,
                "y_test.npy is not a readable .npy array (ValueError:"),
    "object-array": (rewrite(x_train=np.array([{"a": 1}] * 40, dtype=object)), False,
                     "x_train.npy holds Python objects; only plain arrays are read"),
    "label-2**31": (rewrite(y_train=np.array([2**31] + [0] * 39, np.int64)), False,
                    "y_train holds the label 2,147,483,648; labels must be below 100,000"),
    "label-uint64-max": (rewrite(y_test=np.full(10, 2**64 - 1, np.uint64)), False,
                         "y_test holds the label 18,446,744,073,709,551,615; labels must be "
                         "below 100,000"),
    "class-names-2d": (rewrite(class_names=np.array([["a", "b"]] * 5)), False,
                       "class_names is <U1 (5, 2); it must be a 1-D array of at most 100,000"),
}


@pytest.mark.parametrize("fault", list(NPZ_FAULTS))
def test_corrupt_npz_is_one_line(tmp_path, fault) -> None:
    make, compress, needle = NPZ_FAULTS[fault]
    path = tmp_path / "bad.npz"
    if make.__name__ == "write":
        make(path)
    else:
        write_npz(path, good_arrays(), compress=compress)
        make(path)
    assert_refused(tmp_path, f"npz:{path}", needle)


def test_an_npz_that_is_not_a_regular_file_is_refused(tmp_path) -> None:
    with fifo(tmp_path / "pipe.npz") as pipe:
        assert_refused(tmp_path, f"npz:{pipe}", "pipe.npz: a FIFO (named pipe), not a regular")


def test_duplicate_member_names_are_refused(tmp_path) -> None:
    """x_train and x_train.npy would be one array to a reader that strips ".npy" and
    another to one that looks the name up first: whichever is meant, refused."""
    path = write_npz(tmp_path / "dup.npz", good_arrays())
    with zipfile.ZipFile(path, "a") as archive, archive.open("x_train", "w") as member:
        np.lib.format.write_array(member, np.zeros((40, 8, 8), np.uint8))
    assert_refused(tmp_path, f"npz:{path}", "x_train.npy and x_train are both the array "
                                            "x_train; an .npz holds each array once")
    path = write_npz(tmp_path / "twice.npz", good_arrays())
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        with archive.open("y_test.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(10, np.int64))
    assert_refused(tmp_path, f"npz:{path}", "y_test.npy and y_test.npy are both the array "
                                            "y_test")


def test_class_names_are_python_strings(tmp_path) -> None:
    from warmup_bench.data.custom import open_data_source

    for names, expected in ((np.array(list("abcdefghij")), tuple("abcdefghij")),
                            (np.array([n.encode() for n in "abcdefghij"]), tuple("abcdefghij")),
                            (np.arange(10), tuple(map(str, range(10))))):
        path = write_npz(tmp_path / "names.npz", {**good_arrays(), "class_names": names})
        spec = open_data_source(f"npz:{path}").spec
        assert spec.class_names == expected and all(type(n) is str for n in spec.class_names)


# ---- 7. costs the per-member size checks do not bound -----------------------------------


def test_total_decoded_size_is_bounded_across_members(tmp_path) -> None:
    """Each member under 8 GiB, together 9.8 GB: refused from the headers alone."""
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "test"):
            archive.writestr(f"x_{split}.npy", npy_header((10**6, 70, 70)))
            archive.writestr(f"y_{split}.npy", npy_header((10**6,), "<i8"))
    assert path.stat().st_size < 2000
    assert_refused(tmp_path, f"npz:{path}", "its arrays hold 9,816,000,000 bytes decoded "
                                            "(x_train is (1000000, 70, 70)), more than "
                                            "8,589,934,592 bytes")


def test_data_that_does_not_fit_in_available_memory_is_refused(tmp_path, monkeypatch) -> None:
    from warmup_bench.data import custom

    monkeypatch.setattr(custom, "available_memory", lambda: 1000)
    npz = write_npz(tmp_path / "good.npz", good_arrays())  # 3,200 + 400 bytes decoded
    assert_refused(tmp_path / "n", f"npz:{npz}", "good.npz: loading it needs about 7,200 bytes "
                                                 "(3,600 decoded, x2); 1,000 bytes are available")
    folder = write_folder(tmp_path / "d")  # 80 images of 64 pixels + an 8-byte label
    assert_refused(tmp_path / "f", f"folder:{folder}", "d: loading it needs about 11,520 bytes "
                                                       "(5,760 decoded, x2); 1,000 bytes are")


def test_available_memory_reads_meminfo() -> None:
    from warmup_bench.data.custom import available_memory

    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc/meminfo here")
    assert available_memory() > 0


def test_compressible_zeros_are_refused_without_a_float_copy(tmp_path) -> None:
    """Zeros compress 1000:1; their statistics used to cost 19.5 bytes per pixel. Now they
    are counted without a float copy, and a constant split is refused (it trained to NaN)."""
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x_train=np.zeros((20000, 32, 32), np.uint8),
                        y_train=np.arange(20000) % 10, x_test=np.zeros((10, 32, 32), np.uint8),
                        y_test=np.arange(10))
    decoded = 20010 * 32 * 32
    assert path.stat().st_size < decoded / 100
    tracemalloc.start()
    try:
        assert_refused(tmp_path, f"npz:{path}", "zeros.npz: every train pixel of channel 0 "
                                                "is 0; constant images cannot be normalised")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * decoded, peak  # the arrays themselves, not 19.5x them


def test_a_constant_colour_channel_is_refused(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    x[:, 1] = 128
    npz = write_npz(tmp_path / "c.npz", {**good_arrays(), "x_train": x, "x_test": x[:10]})
    assert_refused(tmp_path, f"npz:{npz}", "every train pixel of channel 1 is 128")


def old_statistics(images: np.ndarray):
    """The formula the loader's statistics came from before (a float64 copy)."""
    scaled = images.astype(np.float64) / 255.0
    if scaled.shape[1] == 1:
        return (float(scaled.mean()),), (float(scaled.std()),)
    return (tuple(map(float, scaled.mean(axis=(0, 2, 3)))),
            tuple(map(float, scaled.std(axis=(0, 2, 3)))))


def loader_constants(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    split = Split(torch.zeros((1, len(mean), 2, 2), dtype=torch.uint8), torch.zeros(1).long())
    loader = BatchLoader(split, 1, mean, std, train=False)
    return loader.scale, loader.shift


def as_float32(values) -> list[np.float32]:
    return [np.float32(v) for v in values]


def test_digits_statistics_are_bit_identical_in_float32() -> None:
    (train_x, _), _ = read_sklearn_digits()
    old, new = old_statistics(train_x), pixel_statistics(train_x)
    assert as_float32(old[0]) == as_float32(new[0]) and as_float32(old[1]) == as_float32(new[1])
    old_scale, old_shift = loader_constants(*old)
    new_scale, new_shift = loader_constants(*new)
    assert torch.equal(old_scale, new_scale) and torch.equal(old_shift, new_shift)


@pytest.mark.parametrize("seed", range(12))
def test_random_statistics_match_the_float64_formula_in_float32(seed) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 300)), (1, 3)[seed % 2], int(rng.integers(1, 40)),
             int(rng.integers(1, 40)))
    images = rng.integers(0, int(rng.integers(2, 257)), shape, dtype=np.uint8)
    old, new = old_statistics(images), pixel_statistics(images)
    assert as_float32(old[0]) == as_float32(new[0]) and as_float32(old[1]) == as_float32(new[1])
    np.testing.assert_allclose(new, old, rtol=1e-13)  # float64: within rounding


def test_statistics_peak_far_below_a_float64_copy() -> None:
    images = np.random.default_rng(0).integers(0, 256, (2000, 3, 32, 32), dtype=np.uint8)
    float64_copy = images.size * 8  # 49 MB
    tracemalloc.start()
    try:
        pixel_statistics(images)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < float64_copy / 10, peak
