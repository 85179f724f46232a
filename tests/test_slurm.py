"""The Slurm backend (warmup_bench.slurm) against a real single-node Slurm: Debian's
slurm-wlm and munge, started by scripts/slurm_local.sh (CI installs them with
scripts/slurm_ci.sh; where they are missing or cannot start, these tests skip saying why).

What is proven here: a grid through Slurm gives the local backend's files byte for byte;
a task killed by scancel leaves its run interrupted and the next submission resumes it to
the uninterrupted run's files, skipping the finished ones; a time limit makes submitit
requeue the task, whose run resumes and completes; a second submission while tasks are
pending or running submits nothing; bad input is one line with nothing submitted.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from clirun import invoke

from warmup_bench import slurm, sweep
from warmup_bench.config import ConfigError
from warmup_bench.execution import RunOptions
from warmup_bench.experiments import load_experiment
from warmup_bench.runs import RunDir
from warmup_bench.slurm import SlurmOptions

pytestmark = pytest.mark.slurm  # registered in pyproject by the CLI's wiring

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
CLUSTER_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/warmup-bench-slurm"))
# the test machine has 2 cores: one per task, two tasks at a time, one thread per run
OPTIONS = SlurmOptions(cpus_per_task=1, array_parallelism=2, time_limit_min=10)
TIMING_COLUMNS = {"seconds", "images_per_second"}  # epochs.csv's wall-clock columns
LOGS = ("steps.csv", "diagnostics.csv", "layers.csv")
timings: dict[str, float] = {}
# by full path: one test takes Slurm's commands off PATH
SQUEUE, SCONTROL = shutil.which("squeue") or "squeue", shutil.which("scontrol") or "scontrol"


# ---- the cluster --------------------------------------------------------------------

def _answers(conf: Path) -> bool:
    if not conf.exists():
        return False
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": str(conf)}, timeout=10)
    return done.returncode == 0 and done.stdout.strip().startswith(("idle", "mix", "alloc"))


@pytest.fixture(scope="module")
def cluster():
    """A running single-node Slurm (SLURM_CONF set for this process and its children);
    stopped afterwards if this fixture started it."""
    pytest.importorskip("submitit", reason="submitit is not installed "
                        "(scripts/slurm_ci.sh installs it)")
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch", "squeue")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): "
                    "scripts/slurm_ci.sh installs slurm-wlm and munge")
    if os.geteuid() != 0:
        pytest.skip("starting the test Slurm (slurmctld, slurmd, munged) needs root")
    env = {**os.environ, "SLURM_LOCAL_DIR": str(CLUSTER_DIR)}
    conf = CLUSTER_DIR / "slurm.conf"
    running_before = _answers(conf)
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                             env=env, timeout=120)
    if started.returncode:
        lines = (started.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"the test Slurm did not start (exit {started.returncode}): {lines}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = started.stdout.strip()
    stop = threading.Event()
    threading.Thread(target=hurry_requeued, args=(stop,), daemon=True).start()
    try:
        yield Path(started.stdout.strip())
    finally:
        stop.set()
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if not running_before:
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120)


def hurry_requeued(stop: threading.Event) -> None:
    """Slurm holds a requeued job back for 120 s (its BeginTime): the tests do not wait."""
    while not stop.wait(1.0):
        try:
            for line in queue():
                slurm_id, state, reason = line.split("|")
                if state == "PENDING" and reason == "BeginTime":
                    subprocess.run([SCONTROL, "update", f"JobId={slurm_id}",
                                    "StartTime=now"], capture_output=True, timeout=10)
        except (OSError, ValueError, subprocess.SubprocessError):
            pass  # the cluster is stopping


@pytest.fixture(autouse=True)
def no_leftover_jobs(request):
    """A test that fails midway leaves no job of its own behind to slow the next one."""
    if "cluster" not in request.fixturenames:
        yield
        return
    before = job_ids()
    yield
    new = job_ids() - before
    if new:
        subprocess.run(["scancel", *sorted(new)], capture_output=True)
        deadline = time.monotonic() + 30
        while job_ids() & new and time.monotonic() < deadline:
            time.sleep(0.2)


def queue(job_id: str | None = None) -> list[str]:
    """The tasks squeue lists (of one job, or all): "id|state|reason" each."""
    done = subprocess.run([SQUEUE, "-h", "-r", "-o", "%i|%T|%r"], capture_output=True,
                          text=True, check=True)
    return [line for line in done.stdout.split()
            if job_id is None or line.split("|")[0].split("_")[0] == job_id]


def job_ids() -> set[str]:
    return {line.split("|")[0].split("_")[0] for line in queue()}


# ---- grids, jobs and files ----------------------------------------------------------

def digits_configs(tmp_path: Path, epochs: int, lrs=(0.01, 0.03), train_samples=None):
    samples = f"train_samples = {train_samples}\n" if train_samples else ""
    text = (f'title = "slurm test"\ntask = "digits"\nseeds = [1]\n[fixed]\nepochs = {epochs}\n'
            f'{samples}[grid]\nopt = ["adamw"]\nwarmup = ["none"]\nlr = {list(lrs)}\n')
    grid = tmp_path / f"grid-{epochs}-{train_samples}.toml"
    grid.write_text(text)
    return load_experiment(grid).configs()


def make_jobs(configs, out: Path) -> list:
    """One-thread CPU jobs, whichever make_jobs signature sweep.py has."""
    if "threads" in inspect.signature(sweep.make_jobs).parameters:
        return sweep.make_jobs(configs, out, None, ["cpu"], threads=1)
    return sweep.make_jobs(configs, out, RunOptions(threads=1), ["cpu"])


def run_locally(configs, out: Path) -> list:
    results = []
    threads = torch.get_num_threads()
    try:
        sweep.run_local(make_jobs(configs, out), 1, results.append)
    finally:
        torch.set_num_threads(threads)  # the run set this process's thread count
    return results


def logged(folder: Path) -> dict[str, str]:
    """The run's CSVs as text, epochs.csv without its wall-clock columns."""
    files = {name: (folder / name).read_text() for name in LOGS}
    with (folder / "epochs.csv").open() as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, column in enumerate(rows[0]) if column not in TIMING_COLUMNS]
    files["epochs.csv"] = "\n".join(",".join(row[i] for i in keep) for row in rows)
    return files


def summary(cfg, out: Path):
    return RunDir.of(out, cfg).read_summary()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; queue: {queue()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def long_configs(tmp_path_factory):
    """Two full-digits runs of 40 epochs (about 11 s each on one thread)."""
    return digits_configs(tmp_path_factory.mktemp("grid"), 40)


@pytest.fixture(scope="module")
def reference(long_configs, tmp_path_factory) -> dict[str, str]:
    """The first long run trained locally without interruption: its CSVs."""
    out = tmp_path_factory.mktemp("reference")
    [result] = run_locally(long_configs[:1], out)
    assert result.outcome == "complete"
    return logged(RunDir.of(out, long_configs[0]).path)


# ---- against the real Slurm ---------------------------------------------------------

@pytest.mark.slow
def test_grid_on_slurm_gives_the_local_backends_files(cluster, tmp_path) -> None:
    configs = digits_configs(tmp_path, 2, train_samples=320)
    started = time.perf_counter()
    local = run_locally(configs, tmp_path / "local")
    timings["local"] = time.perf_counter() - started
    assert {r.outcome for r in local} == {"complete"}

    started = time.perf_counter()
    out = tmp_path / "slurm"
    submission = slurm.submit(make_jobs(configs, out), out, OPTIONS, force=True, name="tiny")
    timings["submit"] = time.perf_counter() - started
    seen = []
    results = slurm.wait(submission, seen.append, poll_seconds=0.5)
    timings["slurm"] = time.perf_counter() - started

    assert submission.job_id and submission.submitted == 2 and submission.finished == 0
    assert submission.log_folder == out / ".slurm"
    assert seen == results and sorted(r.run for r in results) == \
        sorted(RunDir.of(out, cfg).name for cfg in configs)
    assert {r.outcome for r in results} == {"complete"}
    for cfg in configs:
        assert logged(RunDir.of(out, cfg).path) == logged(RunDir.of(tmp_path / "local",
                                                                   cfg).path)
        assert summary(cfg, out).best_test_acc == summary(cfg, tmp_path / "local").best_test_acc
    for task in submission.tasks:  # submitit's per-task logs, where submit() says
        assert slurm.task_log(submission.log_folder, task).exists()
    again = slurm.submit(make_jobs(configs, out), out, OPTIONS, force=True)
    assert (again.job_id, again.submitted, again.finished) == (None, 0, 2)
    print(f"\ntiny digits grid (2 runs x 2 epochs, 320 samples): local {timings['local']:.1f} s, "
          f"slurm {timings['slurm']:.1f} s (submit {timings['submit']:.2f} s), overhead "
          f"{timings['slurm'] - timings['local']:+.1f} s")


@pytest.mark.slow
def test_scancel_interrupts_a_run_and_the_next_submission_resumes_only_it(
        cluster, time_limited, tmp_path, long_configs, reference) -> None:
    """(time_limited: started here, so that it runs beside this test and the next ones.)"""
    out = tmp_path / "out"
    jobs = make_jobs(long_configs, out)
    one_at_a_time = dataclasses.replace(OPTIONS, array_parallelism=1)  # the second pends
    first = slurm.submit(jobs, out, one_at_a_time, force=True)
    assert first.submitted == 2

    # submitting again while one task runs and one pends submits nothing twice
    states = {line.split("|")[1] for line in queue(first.job_id)}
    assert "PENDING" in states, states
    submitted_before = job_ids()
    again = slurm.submit(jobs, out, one_at_a_time, force=True)
    assert (again.job_id, again.submitted, again.queued) == (None, 0, 2)
    assert [t.slurm_id for t in again.tasks] == [t.slurm_id for t in first.tasks]
    assert job_ids() == submitted_before and len(queue(first.job_id)) == 2

    victim, other = first.tasks
    assert victim.job is jobs[0]
    wait_for(lambda: (s := summary(long_configs[0], out)) is not None and s.epochs_done >= 1,
             60, "the first checkpointed epoch")
    subprocess.run(["scancel", victim.slurm_id], check=True)
    results = {r.run: r for r in slurm.wait(first, poll_seconds=0.5)}
    stopped = summary(long_configs[0], out)
    assert results[victim.folder.name].outcome == "interrupted", results
    assert results[other.folder.name].outcome == "complete"
    assert stopped.status.value == "interrupted" and 1 <= stopped.epochs_done < 40
    assert RunDir.of(out, long_configs[0]).has_checkpoint()

    resumed = slurm.submit(jobs, out, OPTIONS, force=True)
    assert (resumed.submitted, resumed.finished, resumed.queued) == (1, 1, 0)
    assert [t.job for t in resumed.tasks] == [jobs[0]]
    [result] = slurm.wait(resumed, poll_seconds=0.5)
    assert result.outcome == "complete"
    folder = RunDir.of(out, long_configs[0])
    assert folder.read_meta()["resumed_at_epoch"] >= stopped.epochs_done
    assert logged(folder.path) == reference


def pace(progress) -> None:
    """Slows a run down without using the CPU (called at every logged step)."""
    time.sleep(0.55)


@pytest.fixture(scope="module")
def time_limited(cluster, long_configs, tmp_path_factory):
    """The first long run, paced to need more than 90 s whatever the CPU (11 s of
    training here, and 176 logged steps of 0.55 s), submitted with a 2-minute limit."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ships pace() by value
    out = tmp_path_factory.mktemp("time-limit")
    [job] = make_jobs(long_configs[:1], out)
    slow = dataclasses.replace(job, options=dataclasses.replace(job.options, on_progress=pace))
    # USR2 is asked for 30 s before the limit, and Slurm may send it up to a minute
    # earlier: 30 to 90 s into each attempt, never before the task has set its handlers
    # (with a 1-minute limit it could come at once and kill the starting task). So the
    # run needs 2 to 5 attempts; 8 requeues leave room for a slow machine
    limit = dataclasses.replace(OPTIONS, time_limit_min=2, max_requeues=8)
    started = time.perf_counter()
    submission = slurm.submit([slow], out, limit, force=True)
    yield submission, out, started
    subprocess.run(["scancel", submission.job_id], capture_output=True)
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_a_held_run_lock_counts_as_running(cluster, tmp_path) -> None:
    configs = digits_configs(tmp_path, 2, train_samples=320)
    out = tmp_path / "out"
    lock = RunDir.of(out, configs[0]).lock()  # another process writing this run
    try:
        submission = slurm.submit(make_jobs(configs[:1], out), out, OPTIONS, force=True)
    finally:
        lock.release()
    assert (submission.job_id, submission.submitted, len(submission.busy)) == (None, 0, 1)
    [result] = slurm.wait(submission)
    assert result.outcome == sweep.BUSY


@pytest.mark.slow
def test_a_failed_run_and_a_killed_task_are_failed_results(cluster, tmp_path,
                                                            long_configs) -> None:
    out = tmp_path / "out"
    tiny = digits_configs(tmp_path, 2, train_samples=320)[:1]
    [bad] = make_jobs(tiny, out)  # refused by train's own option check: the run fails
    bad = dataclasses.replace(bad, options=dataclasses.replace(bad.options, sharpness_every=7))
    [long] = make_jobs(long_configs[1:], out)
    submission = slurm.submit([bad, long], out, OPTIONS, force=True)
    failed_task, killed_task = submission.tasks
    wait_for(lambda: (s := summary(long_configs[1], out)) is not None and s.epochs_done >= 1,
             60, "the first checkpointed epoch")
    # as the OOM killer would (scancel --signal=KILL sends SIGTERM first): the run's lock
    # file names the process training it
    os.kill(int((killed_task.folder / "lock").read_text()), signal.SIGKILL)
    results = {r.run: r for r in slurm.wait(submission, poll_seconds=0.5)}
    failed, killed = results[failed_task.folder.name], results[killed_task.folder.name]
    assert failed.outcome == "failed" and "--sharpness-every 7" in failed.error
    assert killed.outcome == "failed" and killed.error.startswith(
        f"the Slurm task {killed_task.slurm_id} ended without a result")
    assert summary(long_configs[1], out).status.value == "running"  # killed: no clean-up
    again = slurm.submit([bad, long], out, OPTIONS, force=True)  # both are retried
    assert again.submitted == 2 and len(queue(again.job_id)) == 2
    slurm.cancel(again)
    wait_for(lambda: not queue(again.job_id), 30, "the cancelled job")


def refused(tmp_path, options: SlurmOptions, **kwargs) -> str:
    """The one-line refusal of a submission that must not happen (nothing queued, no
    .slurm folder)."""
    configs = digits_configs(tmp_path, 2, train_samples=320)
    out = tmp_path / "out"
    before = queue()
    with pytest.raises(ConfigError) as error:
        slurm.submit(make_jobs(configs, out), out, options, **{"force": True, **kwargs})
    message = str(error.value)
    assert "\n" not in message and queue() == before
    assert not (out / ".slurm").exists()
    return message


def test_an_unknown_partition_is_refused(cluster, tmp_path) -> None:
    message = refused(tmp_path, dataclasses.replace(OPTIONS, partition="gpu-a100"))
    assert message == "Slurm partition 'gpu-a100' is not valid; choose from: debug."


def test_a_time_limit_over_the_partitions_is_refused(cluster, tmp_path) -> None:
    message = refused(tmp_path, dataclasses.replace(OPTIONS, time_limit_min=120))
    assert message == "Slurm time limit 120 min is over partition 'debug''s limit of 60 min."


def test_what_sbatch_refuses_is_one_line(cluster, tmp_path) -> None:
    message = refused(tmp_path, dataclasses.replace(OPTIONS, extra={"constraint": "a100"}))
    assert message == "sbatch refused the array job: Invalid feature specification"


def test_missing_submitit_is_one_line(cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` fails
    message = refused(tmp_path, OPTIONS)
    assert message == "--backend slurm needs submitit: pip install 'warmup-bench[slurm]'."


def test_no_sbatch_on_path_is_one_line(cluster, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    message = refused(tmp_path, OPTIONS)
    assert message.startswith("--backend slurm needs sbatch, srun, squeue, scontrol, scancel "
                              "on PATH")


def test_a_node_local_out_is_refused_unless_forced(cluster, tmp_path) -> None:
    message = refused(tmp_path, OPTIONS, force=False)
    assert message.startswith(f"--out {tmp_path / 'out'} is node-local (under /tmp)")


@pytest.mark.slow
def test_a_time_limit_requeues_the_task_and_the_run_completes(
        cluster, time_limited, long_configs, reference) -> None:
    """submitit's USR2 before the 2-minute limit interrupts the run, checkpoint()
    requeues the task, and the requeued task resumes the run: it completes, with the
    uninterrupted run's files."""
    submission, out, started = time_limited
    [task] = submission.tasks
    [result] = slurm.wait(submission, poll_seconds=0.5)
    log = slurm.task_log(submission.log_folder, task)
    text = log.read_text() + log.with_suffix(".err").read_text()
    requeues = text.count(f"Requeued job {task.slurm_id}")
    assert requeues >= 1 and "Caught signal SIGUSR2" in text, text[-3000:]
    assert result.outcome == "complete", (result, text[-3000:])
    folder = RunDir.of(out, long_configs[0])
    assert folder.read_summary().wall_seconds > 90  # it did need more than one attempt
    assert folder.read_meta()["resumed_at_epoch"] >= 1
    assert logged(folder.path) == reference
    print(f"\ntime limit: {requeues} requeue(s), complete after "
          f"{time.perf_counter() - started:.0f} s")


# ---- without a cluster ----------------------------------------------------------------

def test_node_local_folders(tmp_path, monkeypatch) -> None:
    for path in ("/tmp/x", "/var/tmp", "/dev/shm/runs", "/run/user/0/out"):
        with pytest.raises(ConfigError, match="is node-local"):
            slurm.check_shared_folder(Path(path))
        slurm.check_shared_folder(Path(path), force=True)
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\nscratch /scratch\\040x tmpfs rw 0 0\n")
    monkeypatch.setattr(slurm.options, "MOUNTS", mounts)
    with pytest.raises(ConfigError, match=r"is on a tmpfs \(/scratch x\)"):
        slurm.check_shared_folder(Path("/scratch x/runs"))
    slurm.check_shared_folder(Path("/home/me/runs"))


def test_options_from_a_grid_files_table() -> None:
    table = {"partition": "gpu", "time_limit_min": 30, "cpus_per_task": 4, "gpus_per_task": 1,
             "mem_gb": 15.5, "account": "lab", "qos": "normal", "job_name_prefix": "wb",
             "array_parallelism": 8, "extra": {"constraint": "a100", "exclusive": True},
             "max_requeues": 0}
    assert SlurmOptions.from_table(table) == SlurmOptions(**table)
    assert SlurmOptions.from_table({}) == SlurmOptions()
    bad = [({"partitions": "gpu"}, "[slurm] key 'partitions' is not valid; choose from: "
            "partition, time_limit_min, cpus_per_task, gpus_per_task, mem_gb, account, qos, "
            "job_name_prefix, array_parallelism, extra, max_requeues."),
           ({"time_limit_min": 1.5}, "[slurm] time_limit_min 1.5 is not valid; it must be a "
            "whole number of minutes >= 2."),
           ({"time_limit_min": 1}, "[slurm] time_limit_min 1 is not valid; it must be a "
            "whole number of minutes >= 2."),
           ({"cpus_per_task": True}, "[slurm] cpus_per_task True is not valid; it must be an "
            "int >= 1."),
           ({"mem_gb": -1}, "[slurm] mem_gb -1 is not valid; it must be a positive number "
            "of GB."),
           ({"partition": "a b"}, "[slurm] partition 'a b' is not valid; it must be a "
            "partition name."),
           ({"extra": {"time": "10"}}, "[slurm] extra option 'time' is set by warmup-bench "
            "itself; use [slurm] time_limit_min."),
           ({"extra": {"array": "0-3"}}, "[slurm] extra option 'array' is set by "
            "warmup-bench itself."),
           ({"extra": {"gres": ["gpu"]}}, "[slurm] extra option 'gres' = ['gpu'] is not "
            "valid; it must be a string without spaces, a finite number or true."),
           ({"extra": {"arr": "0-3"}}, "[slurm] extra option 'arr' (sbatch reads it as "
            "--array) is set by warmup-bench itself."),
           ({"extra": {"comment": "a\nb"}}, "[slurm] extra option 'comment' = 'a\\nb' is not "
            "valid; it must be a string without spaces, a finite number or true."),
           ({"extra": {"nice": float("nan")}}, "[slurm] extra option 'nice' = nan is not "
            "valid; it must be a string without spaces, a finite number or true."),
           ([1], "[slurm] must be a table, not list.")]
    for table, message in bad:
        with pytest.raises(ConfigError) as error:
            SlurmOptions.from_table(table)
        assert str(error.value) == message
    with pytest.raises(ConfigError, match="^Slurm option array_parallelism 0 is not valid"):
        SlurmOptions(array_parallelism=0)  # built by the CLI from its flags: checked too


def test_slurm_ids_from_the_environment(monkeypatch) -> None:
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert slurm.slurm_ids() is None
    monkeypatch.setenv("SLURM_JOB_ID", "125")
    assert slurm.slurm_ids() == {"job_id": "125", "array_task_id": None}
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "123")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert slurm.slurm_ids() == {"job_id": "123", "array_task_id": 2}


def test_slurm_time_limits_read_as_minutes() -> None:
    cases = {"30": 30, "30:00": 30, "1:00:00": 60, "2-00:00:00": 2880, "1-12": 2160,
             "1-01:30": 1530, "infinite": None, "UNLIMITED": None}
    assert {text: slurm.options._minutes(text) for text in cases} == cases


# ---- through the command line ---------------------------------------------------------

SLURM_ARGS = ("--backend", "slurm", "--shared-out", "--slurm-cpus", "1", "--slurm-parallel",
              "2", "--threads", "1")


@pytest.mark.slow
def test_cli_sweep_on_slurm_waits_and_reports_as_a_local_sweep(cluster, tmp_path) -> None:
    """The digits grid (--epochs 2) through `sweep --backend slurm --wait`: every run
    complete, the same CSVs and report as a local sweep at the same thread count; run
    again, nothing is submitted."""
    grid = ROOT / "experiments" / "digits.toml"
    started = time.perf_counter()
    local = invoke("sweep", grid, "--epochs", "2", "--threads", "1", "--out", tmp_path / "local")
    timings["cli local"] = time.perf_counter() - started
    assert local.exit_code == 0, local.output
    started = time.perf_counter()
    result = invoke("sweep", grid, "--epochs", "2", "--wait", *SLURM_ARGS, "--out",
                    tmp_path / "slurm")
    timings["cli slurm"] = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert "submitted array job" in result.output and "done: no run failed" in result.output
    configs = load_experiment(grid).configs(2)
    for cfg in configs:
        ours, theirs = (RunDir.of(tmp_path / o, cfg) for o in ("slurm", "local"))
        assert ours.read_summary().status == "complete"
        assert logged(ours.path) == logged(theirs.path)
        assert ours.read_meta()["threads"] == theirs.read_meta()["threads"] == 1
        assert ours.read_meta()["slurm"]["job_id"] and theirs.read_meta()["slurm"] is None
    reports = [invoke("report", tmp_path / o, "--experiment", grid, "--epochs", "2", "--format",
                      "markdown").output for o in ("slurm", "local")]
    assert reports[0] == reports[1] and "(2)" in reports[0]
    again = invoke("sweep", grid, "--epochs", "2", "--wait", *SLURM_ARGS, "--out",
                   tmp_path / "slurm")
    assert again.exit_code == 0 and "16 already finished, 0 to run" in again.output
    print(f"\ndigits grid, 16 runs x 2 epochs, 1 thread: local sweep "
          f"{timings['cli local']:.1f} s, slurm sweep --wait {timings['cli slurm']:.1f} s")


def test_cli_sweep_on_slurm_without_wait_says_how_to_follow(cluster, tmp_path) -> None:
    grid = tmp_path / "tiny.toml"
    grid.write_text('task = "digits"\n[fixed]\nepochs = 1\ntrain_samples = 64\n')
    result = invoke("sweep", grid, *SLURM_ARGS, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    job_id = result.output.split("submitted array job ")[1].split()[0]
    assert f"squeue -j {job_id}" in result.output and str(tmp_path / "out" / ".slurm") in \
        result.output
    queued = invoke("sweep", grid, *SLURM_ARGS, "--out", tmp_path / "out")
    assert "not submitted again" in queued.output or "nothing to submit" in queued.output
    subprocess.run(["scancel", job_id], capture_output=True)


@pytest.mark.parametrize(("flags", "needle"), [
    (("--slurm-partition", "nowhere"), "Slurm partition 'nowhere' is not valid"),
    (("--slurm-time", "0"), "time_limit_min 0 is not valid"),
    (("--slurm-extra", "array=1-3"), "is set by warmup-bench itself"),
])
def test_cli_bad_slurm_input_is_one_line_and_submits_nothing(cluster, tmp_path, flags,
                                                             needle) -> None:
    grid = tmp_path / "tiny.toml"
    grid.write_text('task = "digits"\n[fixed]\nepochs = 1\ntrain_samples = 64\n')
    before = job_ids()
    result = invoke("sweep", grid, *SLURM_ARGS, *flags, "--out", tmp_path / "out")
    assert result.exit_code == 2 and needle in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and job_ids() == before
    assert not (tmp_path / "out" / ".slurm").exists()


def test_a_grid_files_slurm_table_is_checked(tmp_path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('task = "digits"\n[slurm]\npartitions = "gpu"\n')
    with pytest.raises(ConfigError, match="key 'partitions' is not valid"):
        load_experiment(grid)


def test_a_task_missing_from_squeue_for_a_moment_has_not_ended(tmp_path) -> None:
    """While Slurm requeues a task, squeue can miss it: without its result file it counts
    as ended only after REQUEUE_GAP_SECONDS unlisted; with one, at once."""
    from warmup_bench.slurm.submit import REQUEUE_GAP_SECONDS, Task, ended, result_path

    task = Task("7", 0, None, tmp_path / "run")
    assert not ended(tmp_path, task, {}, 100.0)  # still listed
    gone = {task.slurm_id: 100.0}
    assert not ended(tmp_path, task, gone, 100.0 + REQUEUE_GAP_SECONDS / 2)
    assert ended(tmp_path, task, gone, 100.0 + REQUEUE_GAP_SECONDS)
    result_path(tmp_path, task).parent.mkdir(parents=True)
    result_path(tmp_path, task).write_bytes(b"")
    assert ended(tmp_path, task, gone, 100.0)
