"""Fetching data sets: stream to .part, verify the published MD5, extract, then move in.

Nothing lands in the data folder until every file of the data set has downloaded and
verified; a failure at any point leaves the folder as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .catalog import DatasetSpec, Remote, get_spec
from .readers import DataError
from .verify import CHUNK


def fetch(url: str, part: Path, expected_md5: str, progress: Progress | None,
          timeout: float = 60.0) -> None:
    """Streams `url` into `part`, checking its length and MD5; raises DataError on failure."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            total = response.length
            task = progress.add_task(part.name.removesuffix(".part"), total=total) \
                if progress else None
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress:
                    progress.update(task, advance=len(chunk))
    except urllib.error.HTTPError as error:
        raise DataError(f"download of {url} failed: HTTP {error.code} {error.reason}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(f"download of {url} failed: {reason}.") from None
    if total is not None and received != total:
        raise DataError(f"download of {url} was cut off at {received} of {total} bytes.")
    if digest.hexdigest() != expected_md5:
        raise DataError(f"download of {url} has MD5 {digest.hexdigest()}, expected "
                        f"{expected_md5}: the file is corrupt or not the published one.")


def gunzip(source: Path, target: Path) -> None:
    try:
        with gzip.open(source, "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    except (OSError, EOFError) as error:
        raise DataError(f"{source.name}: cannot decompress ({error}).") from None


def unpack_tar(spec: DatasetSpec, archives: list[Path], staging: Path) -> None:
    with tarfile.open(archives[0]) as tar:
        tar.extractall(staging, filter="data")  # refuses absolute paths and '..'


def unpack_zip_of_gz(spec: DatasetSpec, archives: list[Path], staging: Path) -> None:
    """One zip holding every split of every variant as gzip/<name>.gz: take ours only."""
    target = staging / spec.folders[0]
    target.mkdir(parents=True)
    with zipfile.ZipFile(archives[0]) as archive:
        for name in spec.layout.names:
            packed = staging / f"{name}.gz"
            with archive.open(f"gzip/{name}.gz") as src, packed.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            gunzip(packed, target / name)


def unpack_gz_files(spec: DatasetSpec, archives: list[Path], staging: Path) -> None:
    target = staging / spec.folders[0]
    target.mkdir(parents=True)
    for archive in archives:
        gunzip(archive, target / archive.name.removesuffix(".gz"))


# archive format (DatasetSpec.archive) -> lays the verified downloads out in a staging folder
UNPACKERS = {"tar": unpack_tar, "zip-of-gz": unpack_zip_of_gz, "gz-files": unpack_gz_files}


def extract(spec: DatasetSpec, archives: list[Path], staging: Path) -> Path:
    """Lays out verified downloads in `staging` as they will sit under the data dir."""
    UNPACKERS[spec.archive](spec, archives, staging)
    return staging / spec.folders[0]


def download(name: str, data_dir: Path, mirror: str | None = None,
             show_progress: bool = True) -> Path:
    """Downloads data set `name` into `data_dir`; returns the folder it now lives in.

    `mirror` replaces the host and path of every official URL (file names kept), for
    institutional mirrors and for tests.
    """
    spec = get_spec(name)
    if not spec.remotes:
        raise DataError(f"{name} is embedded; there is nothing to download.")
    remotes = [Remote(f"{mirror.rstrip('/')}/{r.filename}", r.md5) if mirror else r
               for r in spec.remotes]
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Staging lives inside data_dir so the final moves are same-filesystem renames.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=data_dir) as tmp:
        tmp = Path(tmp)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not show_progress, transient=True) as progress:
            archives = []
            for remote in remotes:
                part = tmp / f"{remote.filename}.part"
                fetch(remote.url, part, remote.md5, progress)
                archives.append(part.rename(tmp / remote.filename))
        staged = extract(spec, archives, tmp / "staging")
        final = data_dir / staged.relative_to(tmp / "staging")
        final.mkdir(parents=True, exist_ok=True)
        for item in staged.iterdir():
            item.replace(final / item.name)
    return final
