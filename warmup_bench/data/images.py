"""Opening the user's image files (folder data sets, `predict --image`), the one way both do.

The rules: only regular files (a FIFO would block forever, a device never end); only the
decoder the suffix names (Pillow otherwise picks one by content, and its EPS decoder runs
Ghostscript); only 8-bit pixel modes (`convert("L")` clips 16- and 32-bit pixels to 0 or
255); never more pixels than Pillow's decompression-bomb limit, whose warning is an error
here. Anything else is a one-line DataError naming the file.
"""

from __future__ import annotations

import os
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .readers import DataError

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF",
           ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".ppm": "PPM", ".pgm": "PPM"}
SUFFIXES = tuple(FORMATS)
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")  # 8-bit ones
GREY_MODES = ("1", "L", "LA")
NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str | None:
    """What a file that is not a regular one is (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in NOT_REGULAR if test(mode)), "not a regular file")


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading when it is a regular file (symbolic links followed);
    DataError for anything else, checked before opening and again on what was opened."""
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is None:
            # non-blocking, so a file swapped for a FIFO in between cannot hang the open
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            kind = _kind(os.fstat(fd).st_mode)
            if kind is None:
                return os.fdopen(fd, "rb")
            os.close(fd)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error}).") from None
    raise DataError(f"{path}: {kind}, not a regular file; only regular files are read.")


@contextmanager
def _opened(path: Path):
    """The image at `path`, header read and checked; Pillow's failures as DataError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    decoder = FORMATS.get(path.suffix.lower())
    if decoder is None:
        raise DataError(f"{path}: not a supported image file; supported suffixes: "
                        f"{', '.join(SUFFIXES)}.")
    with open_regular(path) as stream, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream, formats=[decoder]) as image:
                if image.mode not in MODES:
                    raise DataError(f"{path}: mode {image.mode} is not read (8-bit pixels "
                                    f"only); supported modes: {', '.join(MODES)}.")
                yield image
        except UnidentifiedImageError:
            raise DataError(f"{path}: not a readable image: its content is not {decoder}, as "
                            f"its suffix says (supported suffixes: {', '.join(SUFFIXES)}).") \
                from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise DataError(f"{path}: refused as a possible decompression bomb ({error})") \
                from None
        except DataError:
            raise
        except Exception as error:  # decoders raise many types on malformed data
            reason = " ".join(str(error).split())[:200]
            raise DataError(f"{path}: not a readable image ({type(error).__name__}: "
                            f"{reason}).") from None


def image_info(path: Path) -> tuple[tuple[int, int], str]:
    """The (width, height) and mode of an image file, from its header."""
    with _opened(path) as image:
        return image.size, image.mode


def load_image(path: Path, mode: str):
    """An image file decoded and converted to `mode` ("L" or "RGB"), the file closed."""
    with _opened(path) as image:
        return image.convert(mode)  # decodes: its errors are caught by _opened
