"""Faults through real processes: two writers on one run, a sweep killed with SIGKILL,
a sweep stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warmup_bench.experiments import load_experiment
from warmup_bench.runs import RunDir

GRID = """
title = "faults"
task = "digits"
seeds = [1, 2, 3, 4]
[fixed]
epochs = {epochs}
"""


def default_sigint() -> None:
    """In the child: Ctrl-C's default handling, even when the test runner was started
    with SIGINT ignored (as a background job of a script is), which children inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "warmup_bench", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def epochs_logged(folder: Path) -> int:
    path = folder / "epochs.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def epochs_checkpointed(folder: Path) -> int:
    """Epochs the run's summary counts as done: its row, its checkpoint, then the summary
    are written in that order, so a logged row alone does not mean a resumable epoch."""
    summary = RunDir(folder).read_summary()
    return summary.epochs_done if summary is not None else 0


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_first_keeps_every_row(tmp_path) -> None:
    epochs = 60  # long enough for the second writer to start while the first one writes
    args = ["train", "--task", "digits", "--epochs", str(epochs), "--no-progress",
            "--threads", "1", "--out", str(tmp_path)]
    first = cli(*args)
    wait_for(lambda: any(epochs_logged(f) >= 2 for f in (tmp_path / "digits").glob("*")))
    second = cli(*args, "--resume")
    assert second.wait(60) == 2
    err = second.stderr.read().strip().splitlines()
    assert len(err) == 1 and f"pid {first.pid}" in err[0] and "is being written" in err[0]
    assert first.wait(120) == 0, first.stderr.read()
    (folder,) = (tmp_path / "digits").iterdir()
    assert [int(r["epoch"]) for r in read_rows(folder / "epochs.csv")] == \
        list(range(1, epochs + 1))
    steps = [int(r["step"]) for r in read_rows(folder / "steps.csv")]
    assert steps == list(range(1, epochs * (1438 // 32) + 1, 10))  # every row, once
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"


SWEEP_EPOCHS = 20  # a run lasts several seconds: the sweep is stopped while both train


def sweep_in_flight(tmp_path: Path, epochs: int):
    """A 4-run sweep with --jobs 2, once both workers have checkpointed an epoch: (grid, out,
    the sweep process, its workers' pids)."""
    grid, out = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text(GRID.format(epochs=epochs))
    sweep = cli("sweep", str(grid), "--out", str(out), "--jobs", "2")
    wait_for(lambda: sum(epochs_checkpointed(f) >= 1 for f in out.glob("digits/*")) >= 2)
    workers = [p for p in children(sweep.pid) if alive(p)]
    assert workers, "the sweep had no worker processes"
    return grid, out, sweep, workers


@pytest.mark.slow
def test_sigkill_of_a_sweep_leaves_no_orphan_and_a_rerun_finishes_each_run_once(tmp_path):
    grid, out, sweep, workers = sweep_in_flight(tmp_path, epochs=SWEEP_EPOCHS)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    wait_for(lambda: not any(alive(p) for p in workers), timeout=30)  # they die with it
    rerun = cli("sweep", str(grid), "--out", str(out), "--jobs", "2")
    assert rerun.wait(300) == 0, rerun.stderr.read()
    for cfg in load_experiment(grid).configs():
        run = RunDir.of(out, cfg)
        assert run.read_summary().status == "complete"
        assert [int(r["epoch"]) for r in read_rows(run.epochs_path)] == \
            list(range(1, SWEEP_EPOCHS + 1))
        steps = [int(r["step"]) for r in read_rows(run.steps_path)]
        assert steps == sorted(set(steps)) and \
            len(steps) == len(range(1, SWEEP_EPOCHS * 44 + 1, 10))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.slow
def test_stopping_a_sweep_interrupts_runs_in_flight_and_starts_no_more(tmp_path, stop):
    grid, out, sweep, workers = sweep_in_flight(tmp_path, epochs=SWEEP_EPOCHS)
    sweep.send_signal(stop)
    assert sweep.wait(120) == 130
    assert "interrupted" in sweep.stderr.read()
    # children (the pool's workers, multiprocessing's resource tracker) exit with it
    wait_for(lambda: not any(alive(p) for p in workers), timeout=10)
    started = [RunDir(f) for f in out.glob("digits/*")]
    assert len(started) == 2  # the two queued runs never started
    for run in started:
        summary = run.read_summary()
        assert summary.status == "interrupted" and 1 <= summary.epochs_done < SWEEP_EPOCHS
        assert run.has_checkpoint()
    rerun = cli("sweep", str(grid), "--out", str(out), "--jobs", "2")
    assert rerun.wait(300) == 0, rerun.stderr.read()
    for cfg in load_experiment(grid).configs():
        run = RunDir.of(out, cfg)
        assert [int(r["epoch"]) for r in read_rows(run.epochs_path)] == \
            list(range(1, SWEEP_EPOCHS + 1))


@pytest.mark.slow
def test_pid_of_a_stale_lock_does_not_block(tmp_path) -> None:
    """A lock file left by a dead holder is no lock: the OS released it."""
    args = ["train", "--task", "digits", "--epochs", "2", "--no-progress", "--out", str(tmp_path)]
    assert cli(*args).wait(60) == 0
    (folder,) = (tmp_path / "digits").iterdir()
    (folder / "lock").write_text("999999\n")
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    resumed = cli(*args, "--resume")
    assert resumed.wait(60) == 0, resumed.stderr.read()
    assert not (folder / "lock").exists()  # taken, then removed as the run finished
    assert os.path.exists(folder / "checkpoint.pt")


def test_a_lock_removed_between_open_and_lock_is_taken_again(tmp_path, monkeypatch) -> None:
    """The holder removes the lock file as it lets go: a process that opened the old file
    just before must not hold a lock on a file no one else can see (two writers). It
    locks again until the file it holds is the one in the folder."""
    from warmup_bench.runs import RunLock

    path = tmp_path / "lock"
    take, raced = RunLock._take, []

    def racing(self, where):
        take(self, where)
        if not raced:  # the first time: the old holder lets go and removes the file
            raced.append(True)
            where.unlink()
            where.write_text("")

    monkeypatch.setattr(RunLock, "_take", racing)
    lock = RunLock(path)
    assert raced and os.fstat(lock.handle.fileno()).st_ino == os.stat(path).st_ino
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not path.exists()


@pytest.mark.slow
def test_files_get_the_umask_mode_and_no_temporaries_remain(tmp_path) -> None:
    import stat

    previous = os.umask(0o027)
    try:
        args = ["train", "--task", "digits", "--epochs", "2", "--no-progress", "--save-model",
                "--out", str(tmp_path / "out")]
        assert cli(*args).wait(60) == 0
        report = cli("report", str(tmp_path / "out"), "--out", str(tmp_path / "report"))
        assert report.wait(60) == 0, report.stderr.read()
    finally:
        os.umask(previous)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "summary.json", "checkpoint.pt",
                                       "model.pt", "report.md"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in files), \
        {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert not [p for p in files if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_temporaries_of_a_killed_writer_are_removed_on_resume(tmp_path) -> None:
    args = ["train", "--task", "digits", "--epochs", "2", "--no-progress", "--out", str(tmp_path)]
    assert cli(*args).wait(60) == 0
    (folder,) = (tmp_path / "digits").iterdir()
    stale = folder / ".checkpoint.pt.0123456789ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    assert cli(*args, "--resume").wait(60) == 0
    assert not stale.exists()


def test_a_full_disk_mid_run_ends_failed_with_one_line(tmp_path, monkeypatch) -> None:
    """Fault injection: the fourth CSV row hits ENOSPC, as a full disk would."""
    import errno

    from clirun import invoke

    from warmup_bench import runs

    real_append, calls = runs.CsvLog.append, []

    def append(self, row):
        calls.append(row)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        real_append(self, row)

    monkeypatch.setattr(runs.CsvLog, "append", append)
    result = invoke("train", "--task", "digits", "--epochs", "2",
                    "--warmup", "none",  # no long-warmup warning
                    "--no-progress", "--out", str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "No space left on device" in lines[0] and "Traceback" not in result.output
    (folder,) = (tmp_path / "digits").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
