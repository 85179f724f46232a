"""Downloads end to end against an HTTP server on 127.0.0.1 started by the test."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from clirun import invoke
from datafiles import idx_bytes, random_images, write_cifar_python

from warmup_bench.data import DATASETS, DataError, download, load_dataset
from warmup_bench.data.catalog import EMNIST_FILES, IDX_FILES, Remote


class Server:
    """Serves `files` (name -> bytes); names in `cut_off` announce more bytes than sent."""

    def __init__(self, files: dict[str, bytes], cut_off: frozenset[str] = frozenset()):
        self.files, self.cut_off, self.requests = files, cut_off, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in outer.cut_off else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def mnist_files(monkeypatch):
    """Four synthetic MNIST .gz files, with the catalog's MD5s pointed at them."""
    arrays, files = {}, {}
    for name, seed in zip(IDX_FILES, range(4)):
        images, labels = random_images(20 if "train" in name else 6, seed=seed)
        arrays[name] = images if "images" in name else labels
        files[f"{name}.gz"] = gzip.compress(idx_bytes(arrays[name]))
    spec = DATASETS["mnist"]
    remotes = tuple(Remote(r.url, md5(files[r.filename])) for r in spec.remotes)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(spec, remotes=remotes))
    return arrays, files


def leftovers(data_dir: Path) -> list[Path]:
    return sorted(data_dir.rglob("*")) if data_dir.exists() else []


def test_verified_download_lands_and_loads(tmp_path, mnist_files) -> None:
    arrays, files = mnist_files
    with Server(files) as server:
        folder = download("mnist", tmp_path, mirror=server.url, show_progress=False)
    assert folder == tmp_path / "MNIST/raw"
    assert sorted(p.name for p in folder.iterdir()) == sorted(IDX_FILES)
    data = load_dataset("mnist", tmp_path)
    assert np.array_equal(data.train.images.numpy()[:, 0], arrays[IDX_FILES[0]])
    assert [p.name for p in tmp_path.iterdir()] == ["MNIST"]  # no staging left behind


def test_md5_mismatch_lands_nothing(tmp_path, mnist_files) -> None:
    _, files = mnist_files
    files = dict(files)
    files[f"{IDX_FILES[3]}.gz"] = gzip.compress(b"tampered")  # the last file is bad
    with Server(files) as server, pytest.raises(DataError, match="MD5"):
        download("mnist", tmp_path, mirror=server.url, show_progress=False)
    assert leftovers(tmp_path) == []  # not even the three good files


def test_connection_refused_lands_nothing(tmp_path, mnist_files) -> None:
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match="failed"):
        download("mnist", tmp_path, mirror=f"http://127.0.0.1:{port}", show_progress=False)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_lands_nothing(tmp_path, mnist_files) -> None:
    _, files = mnist_files
    cut = frozenset({f"{IDX_FILES[2]}.gz"})
    with Server(files, cut_off=cut) as server, pytest.raises(DataError, match=IDX_FILES[2]):
        download("mnist", tmp_path, mirror=server.url, show_progress=False)
    assert leftovers(tmp_path) == []


def test_cifar_tarball_download(tmp_path, monkeypatch) -> None:
    source = tmp_path / "src"
    batches = write_cifar_python(source / "cifar-10-batches-py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive = buffer.getvalue()
    spec = DATASETS["cifar10"]
    remote = Remote(spec.remotes[0].url, md5(archive))
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(spec, remotes=(remote,)))
    data_dir = tmp_path / "data"
    with Server({"cifar-10-python.tar.gz": archive}) as server:
        download("cifar10", data_dir, mirror=server.url, show_progress=False)
    data = load_dataset("cifar10", data_dir)
    assert data.test.labels.tolist() == batches["test_batch"]["labels"]


def test_emnist_zip_download(tmp_path, monkeypatch) -> None:
    buffer, arrays = io.BytesIO(), {}
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, seed in zip(EMNIST_FILES, range(4)):
            images, labels = random_images(10, seed=seed, classes=47)
            arrays[name] = images if "images" in name else labels
            archive.writestr(f"gzip/{name}.gz", gzip.compress(idx_bytes(arrays[name])))
        archive.writestr("gzip/emnist-letters-train-images-idx3-ubyte.gz", b"other split")
    spec = DATASETS["emnist"]
    remote = Remote(spec.remotes[0].url, md5(buffer.getvalue()))
    monkeypatch.setitem(DATASETS, "emnist", dataclasses.replace(spec, remotes=(remote,)))
    with Server({"gzip.zip": buffer.getvalue()}) as server:
        folder = download("emnist", tmp_path, mirror=server.url, show_progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(EMNIST_FILES)
    data = load_dataset("emnist", tmp_path)
    assert data.test.labels.tolist() == arrays[EMNIST_FILES[3]].tolist()


def test_cli_download_then_already_there(tmp_path, mnist_files) -> None:
    _, files = mnist_files
    with Server(files) as server:
        args = ["data", "download", "mnist", "--data-dir", str(tmp_path),
                "--mirror", server.url, "--no-progress"]
        first = invoke(*args)
        assert first.exit_code == 0, first.output
        assert "verified" in first.output
        second = invoke(*args)
        assert second.exit_code == 0 and "already" in second.output
        assert len(server.requests) == 4  # the second call fetched nothing


def test_cli_download_failure_is_one_line_exit_2(tmp_path, mnist_files) -> None:
    _, files = mnist_files
    with Server({}) as server:  # every file 404s
        result = invoke("data", "download", "mnist", "--data-dir", str(tmp_path), "--mirror",
                        server.url, "--no-progress")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "404" in lines[0]
    assert leftovers(tmp_path) == []
