"""The CPU side of the GPU check (scripts/gpu_check.sh, scripts/bench_gpu.py): it refuses
at once without CUDA, its arguments are checked, and its report turns a recorded
bench.json into docs/gpu.md's tables and the paper grids' GPU-hours."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_gpu  # noqa: E402

RECORDED = {"device": "NVIDIA H200", "torch": "2.11.0+cu130", "python": "3.12.3",
            "date": "2026-12-02", "fraction": 0.5, "skipped": ["ViT compile"],
            "runs": [{"workload": "ResNet-20", "variant": "fp32", "images": 25000,
                      "seconds_per_epoch": 1.2, "images_per_second": 41666.0,
                      "first_epoch_seconds": 3.0},
                     {"workload": "ViT", "variant": "amp (bf16)", "images": 27000,
                      "seconds_per_epoch": 1.8, "images_per_second": 30000.0,
                      "first_epoch_seconds": 4.0}],
            "concurrency": [{"jobs": 1, "aggregate_images_per_second": 40000.0},
                            {"jobs": 4, "aggregate_images_per_second": 100000.0},
                            {"jobs": 8, "error": "CUDA out of memory"}],
            "packs": [{"workload": "ResNet-20", "pack": 8,
                       "aggregate_images_per_second": 200000.0},
                      {"workload": "ResNet-20", "pack": 32, "error": "CUDA out of memory"}]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check")
@pytest.mark.parametrize("named", ["python", "python3"])
def test_gpu_check_without_cuda_is_one_line_and_quick(tmp_path, named) -> None:
    """Where only `python3` is on PATH (a bare GPU machine), the check uses it."""
    shutil.rmtree(tmp_path / "bin", ignore_errors=True)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / named).symlink_to(sys.executable)
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"  # /usr/bin's python3 has no torch, no python
    started = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device here (torch.cuda.is_available() is false for "
        f"{tmp_path / 'bin' / named}): nothing to check"]
    assert time.monotonic() - started < 60 and not (tmp_path / "o").exists()
    assert bench_gpu.main(["--out", str(tmp_path / "b")]) == 2


@pytest.mark.slow
def test_a_test_past_its_time_fails_and_the_suite_goes_on(tmp_path) -> None:
    """gpu_check.sh's per-test limit (WARMUP_BENCH_TEST_TIMEOUT, tests/conftest.py)."""
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_hang.py").write_text("import time\n\n\ndef test_hangs():\n"
                                           "    time.sleep(60)\n\n\ndef test_next():\n"
                                           "    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "WARMUP_BENCH_TEST_TIMEOUT": "1"}, cwd=tmp_path)
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-2000:]
    assert "TimeoutError: test_hang.py::test_hangs ran past 1 s" in done.stdout


def test_bad_arguments_are_refused(tmp_path, capsys) -> None:
    assert bench_gpu.main(["--fraction", "2"]) == 2
    assert "--fraction 2.0 must be in (0, 1]" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("{oops")
    assert bench_gpu.main(["--report", str(tmp_path / "x.json")]) == 2
    assert "not a recorded bench.json" in capsys.readouterr().err


def test_the_report_of_a_recorded_run(tmp_path, capsys) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(RECORDED))
    assert bench_gpu.main(["--report", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("NVIDIA H200, torch 2.11.0+cu130, 2026-12-02\n")
    assert "| ResNet-20 | fp32 | 1.20 | 41,666 |" in text
    assert "| 4 | 100,000 |" in text and "| 8 | failed: CUDA out of memory |" in text
    assert "Not measured (time budget): ViT compile." in text
    runs = bench_gpu.paper_runs()
    assert runs["resnet20"] == 355 * 186 and runs["resnet110"] == 10 * 186
    epochs = sum(n * bench_gpu.depth_cost(m) for m, n in runs.items())
    hours = bench_gpu.paper_grid_hours(RECORDED)
    assert hours["one_at_a_time"] == pytest.approx(epochs * 1.2 / 3600)
    assert hours["best_concurrency"] == 4
    assert hours["at_best_concurrency"] == pytest.approx(epochs * 50_000 / 100_000 / 3600)
    assert hours["best_pack"] == 8
    assert hours["at_best_pack"] == pytest.approx(epochs * 50_000 / 200_000 / 3600)
    assert f"{hours['one_at_a_time']:.1f} GPU-hours one run at a time" in text
    assert f"{hours['at_best_pack']:.1f} in packs of 8" in text
    assert "| ResNet-20 | 8 | 200,000 |" in text and "| ResNet-20 | 32 | failed: CUDA" in text


def test_one_failed_measurement_loses_nothing_else(tmp_path) -> None:
    """Each measurement is recorded (bench.json and bench.md) as it ends, a failure as its
    error; what the budget leaves out is listed, not run."""
    results = {"device": "x", "torch": "t", "date": "d", "runs": [], "concurrency": [],
               "packs": [], "skipped": []}
    written = []

    def record() -> None:
        written.append(json.loads(json.dumps(results)))

    def fails() -> dict:
        raise RuntimeError("CUDA error: an illegal memory access\nmore")

    steps = [("runs", "ResNet-20 fp32", lambda: {"workload": "ResNet-20", "variant": "fp32",
                                                 "seconds_per_epoch": 1.0,
                                                 "images_per_second": 5e4}),
             ("packs", "EMNIST CNN pack of 8", fails),
             ("concurrency", "4 ResNet-20 runs at once", fails)]
    bench_gpu.measure(steps, results, time.monotonic() + 60, record)
    assert len(written) == 3 and written[0]["runs"][0]["images_per_second"] == 5e4
    failed = "CUDA error: an illegal memory access"  # its first line
    assert results["packs"] == [{"workload": "EMNIST CNN", "pack": 8, "error": failed}]
    assert results["concurrency"] == [{"jobs": 4, "error": failed}]
    text = bench_gpu.markdown(results)
    assert f"| EMNIST CNN | 8 | failed: {failed} |" in text and f"| 4 | failed: {failed} |" \
        in text
    later = {**results, "runs": [], "skipped": []}
    bench_gpu.measure(steps, later, time.monotonic() - 1, lambda: None)
    assert later["skipped"] == [name for _, name, _ in steps] and later["runs"] == []


def test_the_plan_measures_fp32_and_bf16_first_and_compiling_last() -> None:
    names = [name for _, name, _ in bench_gpu.plan(0.5, "cuda")]
    assert names[:6] == [f"{w} {v}" for v in ("fp32", "amp (bf16)") for w in bench_gpu.WORKLOADS]
    assert names[6] == "ResNet-20 no diagnostics"
    assert names.index("1 ResNet-20 runs at once") < names.index("ResNet-20 pack of 1")
    assert names[-6:] == [f"{w} {v}" for v in ("compile", "CUDA graphs")
                          for w in bench_gpu.WORKLOADS]
