"""pytorch_warmup's own test suite, run against warmup_bench.warmup: the library is a
drop-in, so the tests written for pytorch_warmup 0.2.0 (LRs, state dicts, error messages)
pass against it. The suite is fetched from PyPI's source distribution at test time (none
of its code lives in this repository); without a package index the test is skipped."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

VERSION = "0.2.0"


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """pytorch_warmup's test/ folder, its `import pytorch_warmup` pointed at ours."""
    where = tmp_path_factory.mktemp("pytorch_warmup_sdist")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", f"pytorch-warmup=={VERSION}", "-d", str(where)],
        capture_output=True, text=True, timeout=120)
    archives = list(where.glob("pytorch_warmup-*.tar.gz"))
    if fetched.returncode != 0 or not archives:
        pytest.skip(f"pytorch-warmup {VERSION}'s source distribution could not be fetched "
                    f"({(fetched.stderr.strip().splitlines() or ['no archive'])[-1]})")
    with tarfile.open(archives[0]) as archive:
        members = [m for m in archive.getmembers()
                   if "/test/" in m.name and m.name.endswith(".py") and m.isfile()]
        archive.extractall(where, members=members, filter="data")
    tests = next(where.glob("pytorch_warmup-*/test"))
    for file in tests.glob("*.py"):
        text = file.read_text()
        file.write_text(text.replace("import pytorch_warmup as warmup",
                                     "import warmup_bench.warmup as warmup"))
    return tests


def test_pytorch_warmups_own_suite_passes_against_this_library(suite: Path,
                                                                  monkeypatch) -> None:
    """Its 7 tests: LRs of each warmup, state dicts round-tripped into warmups built with
    another period, and the exact messages of its argument checks."""
    import importlib
    import unittest

    names = sorted(p.stem for p in suite.glob("test_*.py"))
    assert names == ["test_base", "test_radam", "test_untuned"]
    assert all("warmup_bench.warmup" in (suite / f"{n}.py").read_text() for n in names)
    monkeypatch.syspath_prepend(str(suite.parent))  # its tests import each other as test.*
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "test"}
    try:
        tests = unittest.defaultTestLoader.loadTestsFromNames([f"test.{n}" for n in names])
        assert importlib.import_module("test.test_base").warmup.__name__ == \
            "warmup_bench.warmup"
        with warnings.catch_warnings():  # its state tests load other periods: said, expected
            warnings.simplefilter("ignore", UserWarning)
            outcome = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(tests)
    finally:  # "test" is also the standard library's package: put back what was there
        for name in [k for k in sys.modules if k.split(".")[0] == "test"]:
            del sys.modules[name]
        sys.modules.update(saved)
    failures = [f"{case}: {text.strip().splitlines()[-1]}"
                for case, text in outcome.failures + outcome.errors]
    assert outcome.testsRun == 7 and not failures, failures
