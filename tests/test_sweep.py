"""`warmup-bench sweep`: grids, skipping finished work, failures, and the Ray backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import invoke

from warmup_bench.experiments import ExperimentError, load_experiment
from warmup_bench.runs import RunDir


def run_dir(out, cfg):
    return RunDir.of(out, cfg).path


def read_summary(directory):
    return RunDir(directory).read_summary()

ROOT = Path(__file__).resolve().parents[1]

TINY = """
title = "tiny digits"
task = "digits"
seeds = [1, 2]
[fixed]
epochs = 1
train_samples = 320
[grid]
warmup = ["none", {warmup = "linear", warmup_period = 5}]
lr = [0.01, 0.003]
"""


def write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_bundled_experiment_loads() -> None:
    sizes = {p.name: len(load_experiment(p).configs())
             for p in sorted((ROOT / "experiments").glob("*.toml"))}
    assert sizes == {"cifar10-beta2-0.99.toml": 90, "cifar10-no-warmup.toml": 60,
                     "cifar10-sgd-depth.toml": 50, "cifar10-warmup.toml": 240,
                     "digits.toml": 16, "digits-diagnostics.toml": 12,
                     "digits-inverse-sqrt.toml": 9, "emnist-warmups.toml": 12,
                     "fashion-mnist-methods.toml": 24, "fashion-mnist-phase.toml": 60,
                     "mnist-vit-warmups.toml": 12, "shakespeare-noam.toml": 14,
                     "shakespeare-warmups.toml": 60}


def test_sweep_twice_trains_nothing_the_second_time_then_reports(tmp_path) -> None:
    grid, out = write(tmp_path, TINY), tmp_path / "results"
    first = invoke("sweep", str(grid), "--out", str(out))
    assert first.exit_code == 0, first.output
    assert "8 runs, 0 already finished, 8 to run" in first.output
    summaries = sorted(out.glob("digits/*/summary.json"))
    assert len(summaries) == 8
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = invoke("sweep", str(grid), "--out", str(out))
    assert second.exit_code == 0 and "8 already finished, 0 to run" in second.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    report = invoke("report", str(out), "--experiment", str(grid), "--format", "csv")
    assert report.exit_code == 0, report.output
    lines = report.output.strip().splitlines()
    assert lines[0] == ("row,lr,mean,std,n,diverged,published_mean,published_std,difference,"
                        "within_2sigma")
    assert sorted(line.split(",")[0] + "@" + line.split(",")[1] for line in lines[1:]) == [
        "AdamW/Linear-5@0.003", "AdamW/Linear-5@0.01", "AdamW/None@0.003", "AdamW/None@0.01"]
    assert all(line.split(",")[4:6] == ["2", "0"] for line in lines[1:])  # n=2, 0 diverged


def test_dry_run_lists_and_trains_nothing(tmp_path) -> None:
    result = invoke("sweep", str(write(tmp_path, TINY)), "--out", str(tmp_path / "r"),
                    "--dry-run")
    assert result.exit_code == 0 and result.output.count("to run") == 9  # header line + 8
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_sweep_says_which_finished_runs_trained_with_other_threads(tmp_path) -> None:
    """The README's order: the main job trains one of the demo grid's runs with all
    cores, then the sweep, whose runs get one thread each, reuses it as finished: the
    sweep says so, since its cells may differ in rounding from a fresh run's."""
    grid, out = write(tmp_path, TINY), tmp_path / "r"
    one = invoke("train", "--task", "digits", "--epochs", "1", "--train-samples", "320",
                 "--warmup", "none", "--lr", "0.01", "--threads", "2", "--no-progress",
                 "--out", out)
    assert one.exit_code == 0, one.output
    said = invoke("sweep", grid, "--out", out, "--threads", "1", "--dry-run").output
    assert "note: 1 finished run reused as trained (1 with 2 threads), where this " \
        "sweep's runs get 1" in " ".join(said.split())
    same = invoke("sweep", grid, "--out", out, "--threads", "2", "--dry-run").output
    assert "reused as trained" not in same


def test_a_built_in_grid_is_found_by_name_and_listed(tmp_path) -> None:
    listed = invoke("list", "experiments")
    assert listed.exit_code == 0 and "digits" in listed.output
    assert "Embedded 8x8 digits" in listed.output  # its title
    found = invoke("sweep", "digits", "--out", tmp_path / "r", "--dry-run")
    assert found.exit_code == 0 and "16 runs, 0 already finished, 16 to run" in found.output
    unknown = invoke("sweep", "nosuch", "--out", tmp_path / "r")
    assert unknown.exit_code == 2 and "no built-in grid of that name" in unknown.output
    assert "digits" in unknown.output.split("built-in grids:")[1]
    assert not (tmp_path / "r").exists()


def test_epochs_override_and_interrupted_run_resumes(tmp_path) -> None:
    grid, out = write(tmp_path, TINY), tmp_path / "r"
    assert invoke("sweep", str(grid), "--out", str(out), "--epochs", "2").exit_code == 0
    cfg = load_experiment(grid).configs(epochs=2)[0]
    assert cfg.epochs == 2 and read_summary(run_dir(out, cfg)).epochs_done == 2
    report = invoke("report", str(out), "--experiment", str(grid), "--epochs", "2",
                    "--format", "csv")
    assert report.exit_code == 0 and report.output.count(",2,0,") == 4  # 4 cells, n=2 each
    summary_path = run_dir(out, cfg) / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["status"] = "interrupted"
    summary_path.write_text(json.dumps(summary))
    again = invoke("sweep", str(grid), "--out", str(out), "--epochs", "2")
    assert "7 already finished, 1 to run" in again.output
    assert read_summary(run_dir(out, cfg)).status == "complete"


def test_diverging_run_does_not_stop_the_sweep(tmp_path) -> None:
    grid = write(tmp_path, TINY.replace('lr = [0.01, 0.003]', 'lr = [0.01, 1e12]')
                 .replace('warmup = ["none", {warmup = "linear", warmup_period = 5}]',
                          'warmup = ["none"]\nopt = ["sgd"]'))
    result = invoke("sweep", str(grid), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "2 complete, 2 diverged, 0 failed" in result.output
    again = invoke("sweep", str(grid), "--out", str(tmp_path / "r"))
    assert "4 already finished, 0 to run" in again.output  # divergence is a final result
    assert "2 complete, 2 diverged, 0 failed" in again.output
    report = invoke("report", str(tmp_path / "r"), "--format", "markdown")
    row = next(line for line in report.output.splitlines() if line.startswith("| SGD/None"))
    # the papers' order, the larger LR first: lr 1e12: 2 diverged; lr 0.01: 2 runs
    assert row.startswith("| SGD/None | - [2 diverged] |") and row.endswith(" (2) |")


def test_failing_run_does_not_stop_the_sweep(tmp_path) -> None:
    grid = write(tmp_path, TINY.replace("train_samples = 320", "train_samples = 16")
                 .replace('lr = [0.01, 0.003]', 'batch_size = [32, 8]')
                 .replace('warmup = ["none", {warmup = "linear", warmup_period = 5}]',
                          'warmup = ["none"]').replace("seeds = [1, 2]", "seeds = [1]"))
    result = invoke("sweep", str(grid), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1, result.output  # the sweep went on, and says a run failed
    assert "1 complete, 0 diverged, 1 failed" in result.output
    assert "--batch-size 32 exceeds the 16 training samples" in result.output


@pytest.mark.parametrize(("text", "needle"), [
    ("bogus = 1\n" + TINY, "unknown key 'bogus'; valid keys: title"),
    (TINY + "\nbogus = 1\n", "unknown setting 'bogus' in [grid]"),
    (TINY.replace("epochs = 1", "epochz = 1"), "unknown setting 'epochz' in [fixed]"),
    (TINY.replace('lr = [0.01, 0.003]', 'opt = ["adamz"]'),
     "[grid] opt: opt 'adamz' is not valid; choose from: sgd, adam, adamw"),
    (TINY.replace('task = "digits"', 'task = "imagenet"'), "task 'imagenet' is not valid"),
    (TINY.replace('lr = [0.01, 0.003]', 'lr = [-1.0]'), "--lr -1.0 must be positive"),
    (TINY.replace('lr = [0.01, 0.003]', 'opt = ["sgd"]').replace(
        'warmup = ["none", {warmup = "linear", warmup_period = 5}]', 'warmup = ["radam"]'),
     "derives its period from beta2"),
    ("task = 'digits'\n[grid]\nlr = 0.1\n", "[grid] lr must be a non-empty list"),
])
def test_bad_experiment_files_name_file_key_and_choices(tmp_path, text, needle) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    result = invoke("sweep", str(path), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results(tmp_path) -> None:
    """Like with like: CPU kernels reduce in a thread-count-dependent order, so both sweeps
    run one thread per run (the count is recorded in meta.json)."""
    grid = write(tmp_path, TINY)
    assert invoke("sweep", str(grid), "--out", str(tmp_path / "a"), "--threads", "1"
                  ).exit_code == 0
    assert invoke("sweep", str(grid), "--out", str(tmp_path / "b"), "--jobs", "2",
                  "--threads", "1").exit_code == 0
    for cfg in load_experiment(grid).configs():
        a, b = run_dir(tmp_path / "a", cfg), run_dir(tmp_path / "b", cfg)
        assert (a / "steps.csv").read_text() == (b / "steps.csv").read_text()
        assert RunDir(a).read_meta()["threads"] == RunDir(b).read_meta()["threads"] == 1


@pytest.mark.slow
def test_ray_backend_on_a_local_ray_instance(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    grid = write(tmp_path, TINY.replace("seeds = [1, 2]", "seeds = [1]"))
    local = invoke("sweep", str(grid), "--out", str(tmp_path / "local"), "--threads", "1")
    assert local.exit_code == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = invoke("sweep", str(grid), "--out", str(tmp_path / "ray"), "--backend", "ray",
                        "--threads", "1")
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output
    assert "4 complete, 0 diverged, 0 failed" in result.output
    for cfg in load_experiment(grid).configs():
        a, b = run_dir(tmp_path / "local", cfg), run_dir(tmp_path / "ray", cfg)
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert (a / "steps.csv").read_text() == (b / "steps.csv").read_text()
        assert read_summary(a).best_test_acc == read_summary(b).best_test_acc


def test_unavailable_device_is_refused_before_any_run(tmp_path) -> None:
    result = invoke("sweep", str(write(tmp_path, TINY)), "--out", str(tmp_path / "r"),
                    "--devices", "cpu,cuda:3")
    assert result.exit_code == 2 and "cuda:3" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_run_listed_twice_is_trained_once(tmp_path) -> None:
    grid = write(tmp_path, TINY.replace('lr = [0.01, 0.003]', 'lr = [0.01, 0.01]')
                 .replace("seeds = [1, 2]", "seeds = [1, 1]"))
    experiment = load_experiment(grid)
    assert len(experiment.configs()) == 2 and experiment.duplicates == 6
    result = invoke("sweep", str(grid), "--out", str(tmp_path / "r"), "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "2 runs, 0 already finished, 2 to run" in result.output
    assert "6 grid entries repeat an earlier run" in result.output
    assert len(list((tmp_path / "r" / "digits").iterdir())) == 2


def test_sharpness_every_is_checked_against_every_runs_log_interval(tmp_path) -> None:
    grid = write(tmp_path, TINY.replace('lr = [0.01, 0.003]', 'log_interval = [10, 7]'))
    result = invoke("sweep", str(grid), "--out", str(tmp_path / "r"), "--sharpness-every", "20")
    assert result.exit_code == 2 and "multiple of the log interval (7)" in result.output
    assert not (tmp_path / "r").exists()
