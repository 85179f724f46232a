"""The CPU side of the GPU check (scripts/gpu_check.sh, scripts/bench_gpu.py): it refuses
at once without CUDA, its arguments are checked, and its report turns a recorded
bench.json into the README's tables and the paper grids' GPU-hours."""

from __future__ import annotations

import json
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
                            {"jobs": 8, "error": ["CUDA out of memory"]}]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check")
def test_gpu_check_without_cuda_is_one_line_and_quick(tmp_path) -> None:
    started = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device here (torch.cuda.is_available() is false): nothing to check"]
    assert time.monotonic() - started < 60 and not (tmp_path / "o").exists()
    assert bench_gpu.main(["--out", str(tmp_path / "b")]) == 2


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
    assert f"{hours['one_at_a_time']:.1f} GPU-hours one run at a time" in text
