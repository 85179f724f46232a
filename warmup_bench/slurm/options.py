"""The options of a Slurm submission, and the checks made before anything is submitted."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..errors import UserError

SLURM_FOLDER = ".slurm"  # under --out: submitit's files, the logs and the queue record
RECORD = "queue.json"
# squeue states of a task that still holds its place: it will run, or it is running
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED",
                           "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                           "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT",
                           "RESV_DEL_HOLD"})
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")
MEMORY_FILE_SYSTEMS = ("tmpfs", "ramfs")
MOUNTS = Path("/proc/mounts")
SQUEUE_SECONDS = 60  # a squeue or sinfo that does not answer in this long has failed
SQUEUE_FAILURES = 5  # wait() gives up after this many failed squeue calls in a row


class SlurmError(UserError):
    """Slurm did not answer (squeue, scontrol): a one-line message naming the command."""

# ---- options --------------------------------------------------------------------------

@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks Slurm for. `extra`: further sbatch options, passed
    through as `--key=value` (True: a bare `--key`), e.g. {"constraint": "a100"}."""

    partition: str | None = None  # None: the cluster's default partition
    time_limit_min: int = 60  # per task
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem_gb: float | None = None  # None: the partition's default
    account: str | None = None
    qos: str | None = None
    job_name_prefix: str = "warmup-bench"
    array_parallelism: int = 16  # array tasks running at the same time, at most
    extra: dict[str, Any] = field(default_factory=dict)
    max_requeues: int = 3  # time limits a task is requeued after (submitit's max_num_timeout)

    def __post_init__(self):
        _check_options(dataclasses.asdict(self), "Slurm option")

    @classmethod
    def from_table(cls, table: dict, where: str = "[slurm]") -> SlurmOptions:
        """From a grid file's [slurm] table: every key and value checked; ConfigError (one
        line, naming `where`, the key and the valid choices) otherwise."""
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table, not {type(table).__name__}.")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in table:
            if key not in names:
                raise ConfigError(f"{where} key {key!r} is not valid; choose from: "
                                  f"{', '.join(names)}.")
        _check_options(table, where)
        return cls(**{**table, "extra": dict(table.get("extra", {}))})


OPTIONAL = ("partition", "mem_gb", "account", "qos")  # None: the cluster's default
# `sweep --slurm-FLAG` of each option where it differs from its key, and its help
FLAGS = {"time_limit_min": "time", "cpus_per_task": "cpus", "gpus_per_task": "gpus",
         "job_name_prefix": "job-name", "array_parallelism": "parallel",
         "max_requeues": "requeues"}
HELP = {"partition": "Slurm partition (default: the cluster's).",
        "time_limit_min": "Time limit per run, minutes (default 60).",
        "cpus_per_task": "CPUs per run (default 1; also its torch threads).",
        "gpus_per_task": "GPUs per run (default 0).",
        "mem_gb": "Memory per run, GB (default: the partition's).",
        "account": "Slurm account.", "qos": "Slurm QOS.",
        "job_name_prefix": "Job name prefix (default warmup-bench).",
        "array_parallelism": "Array tasks running at once, at most (default 16).",
        "max_requeues": "Time limits a run is requeued after (default 3).",
        "extra": "A further sbatch option KEY=VALUE (or KEY), passed through (repeatable)."}


def _check_options(values: dict, where: str) -> None:
    for key, value in values.items():
        if not (value is None and key in OPTIONAL):
            _check_option(f"{where} {key}", key, value)


_RESERVED = {  # sbatch options that `extra` may not set: the backend sets them itself
    "array": None, "output": None, "error": None, "open-mode": None, "signal": None,
    "hold": None, "requeue": None, "wrap": None, "partition": "partition",
    "time": "time_limit_min", "cpus-per-task": "cpus_per_task",
    "gpus-per-task": "gpus_per_task", "mem": "mem_gb", "account": "account", "qos": "qos",
    "job-name": "job_name_prefix"}


# sbatch options a grid file's [slurm] extra may set by itself: where and when its tasks
# run, never what they run. Any other (export, chdir, container, prolog, ...) could choose
# the code a task executes (PYTHONPATH to a folder shipped with the grid), so a grid sets
# it only with the user's consent (--allow-plugins); --slurm-extra is the user's own.
GRID_EXTRA = frozenset({
    "constraint", "cluster-constraint", "gres", "gpus", "gpus-per-node", "cpus-per-gpu",
    "mem-per-cpu", "mem-per-gpu", "tmp", "exclusive", "nodelist", "exclude", "reservation",
    "licenses", "hint", "nice", "comment", "time-min", "wckey", "switches",
    "threads-per-core", "cores-per-socket", "sockets-per-node"})


def grid_extras_needing_consent(table: dict) -> list[str]:
    """The keys of a grid's [slurm] extra that are not in GRID_EXTRA (compared as sbatch
    reads them: underscores for hyphens, no abbreviation admitted), as the grid wrote
    them."""
    extra = table.get("extra", {}) if isinstance(table, dict) else {}
    return [str(k) for k in extra
            if not isinstance(k, str) or k.replace("_", "-") not in GRID_EXTRA]


def _check_option(name: str, key: str, value) -> None:
    def text(v) -> bool:
        return isinstance(v, str) and v.strip() != "" and not any(c.isspace() for c in v)

    rules = {  # key -> (valid, what a valid value is)
        "partition": (text(value), "a partition name"),
        # under 2 minutes, submitit's signal may come as the task starts, before it can
        # be caught, and kill it
        "time_limit_min": (is_int(value) and value >= 2, "a whole number of minutes >= 2"),
        "cpus_per_task": (is_int(value) and value >= 1, "an int >= 1"),
        "gpus_per_task": (is_int(value) and value >= 0, "an int >= 0"),
        "mem_gb": ((is_int(value) or isinstance(value, float)) and 0 < value < float("inf"),
                   "a positive number of GB"),
        "account": (text(value), "an account name"),
        "qos": (text(value), "a QOS name"),
        "job_name_prefix": (text(value), "a name without spaces"),
        "array_parallelism": (is_int(value) and value >= 1, "an int >= 1"),
        "max_requeues": (is_int(value) and value >= 0, "an int >= 0"),
        "extra": (isinstance(value, dict), "a table of sbatch options"),
    }
    valid, expected = rules[key]
    if not valid:
        raise ConfigError(f"{name} {value!r} is not valid; it must be {expected}.")
    for option, setting in (value.items() if key == "extra" else ()):
        flag = option.replace("_", "-") if isinstance(option, str) else ""
        if not re.fullmatch(r"[a-z][a-z0-9-]*", flag):
            raise ConfigError(f"{name} option {option!r} is not an sbatch option name.")
        # sbatch takes any unambiguous prefix of a long option: --arr is --array
        reserved = next((r for r in _RESERVED if r.startswith(flag)), None)
        if reserved is not None:
            instead = _RESERVED[reserved]
            alias = f" (sbatch reads it as --{reserved})" if reserved != flag else ""
            raise ConfigError(f"{name} option {option!r}{alias} is set by warmup-bench itself" +
                              (f"; use [slurm] {instead}." if instead else "."))
        if not (is_int(setting) or setting is True or isinstance(setting, (str, float))) \
                or isinstance(setting, float) and not math.isfinite(setting) \
                or isinstance(setting, str) and not text(setting):  # one line of the script
            raise ConfigError(f"{name} option {option!r} = {setting!r} is not valid; it must "
                              "be a string without spaces, a finite number or true.")


def with_flags(grid: SlurmOptions, given: dict) -> SlurmOptions:
    """The grid's [slurm] options with the --slurm-* options given on top (`given`: their
    parameter names, slurm_partition, ..., to values; None or [] not given); --slurm-extra
    KEY=VALUE items add to the grid's extra. ConfigError for a bad key or value."""
    table = {f.name: getattr(grid, f.name) for f in dataclasses.fields(grid)
             if not (getattr(grid, f.name) is None and f.name in OPTIONAL)}
    for key, value in given.items():
        name = key.removeprefix("slurm_")
        if value is None or value == []:
            continue
        if name == "extra":
            extra = dict(table.get("extra", {}))
            for item in value:
                option, sep, setting = item.partition("=")
                if not option:
                    raise ConfigError(f"--slurm-extra {item!r} must be KEY=VALUE or KEY.")
                extra[option] = setting if sep else True
            value = extra
        table[name] = value
    return SlurmOptions.from_table(table)


def cluster_options(grid: SlurmOptions, given: dict, out: Path, shared: bool) -> SlurmOptions:
    """`with_flags`, checked against the cluster before anything is submitted: ConfigError
    for a missing submitit or sbatch, an unknown partition or too long a time limit, a
    node-local --out (one line)."""
    options = with_flags(grid, given)
    require_submitit()
    require_slurm_commands()
    check_shared_folder(Path(out).expanduser().absolute(), shared)
    check_cluster(options)
    return options


# ---- checks before anything is submitted ------------------------------------------------

def require_submitit():
    """The submitit module; ConfigError when it is not installed."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("--backend slurm needs submitit: pip install "
                          "'warmup-bench[slurm]'.") from None
    return submitit


def require_slurm_commands() -> None:
    """ConfigError unless Slurm's commands are on PATH (a login node's tools)."""
    missing = [tool for tool in ("sbatch", "srun", "squeue", "scontrol", "scancel")
               if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"--backend slurm needs {', '.join(missing)} on PATH: run the "
                          "sweep on a Slurm login node.")


def check_shared_folder(out: Path, force: bool = False) -> None:
    """ConfigError for an --out that is surely node-local (under /tmp, /var/tmp, /dev/shm,
    /run, or on a tmpfs/ramfs mount): the tasks run on other nodes, which must see the
    run folders. `force`: the user says every node sees it."""
    if force:
        return
    path = Path(os.path.realpath(Path(out).expanduser().absolute()))
    for local in NODE_LOCAL:
        if path == Path(local) or Path(local) in path.parents:
            raise ConfigError(f"--out {out} is node-local (under {local}): every Slurm node "
                              "must see the run folders; choose a shared folder (or pass "
                              "--shared-out if all nodes do share it).")
    mount, kind = _mount_of(path)
    if kind in MEMORY_FILE_SYSTEMS:
        raise ConfigError(f"--out {out} is on a {kind} ({mount}), which is node-local: every "
                          "Slurm node must see the run folders; choose a shared folder (or "
                          "pass --shared-out if all nodes do share it).")


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) of the deepest /proc/mounts entry holding `path`."""
    best = ("/", "")
    try:
        lines = MOUNTS.read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        # /proc/mounts escapes spaces and the like as octal (\040)
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
        inside = path == Path(point) or Path(point) in path.parents
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def check_cluster(options: SlurmOptions) -> None:
    """ConfigError for a partition `sinfo` does not list, or a time limit over the
    partition's MaxTime. Where sinfo does not answer, sbatch's own refusal tells."""
    partitions = _partitions()
    if partitions is None:
        return
    default = next((name for name, (is_default, _) in partitions.items() if is_default), None)
    asked = options.partition.split(",") if options.partition else [default]
    for name in asked:
        if name is None:
            return  # no default partition: sbatch will say what it wants
        if name not in partitions:
            raise ConfigError(f"Slurm partition {name!r} is not valid; choose from: "
                              f"{', '.join(partitions)}.")
        limit = partitions[name][1]
        if limit is not None and options.time_limit_min > limit:
            raise ConfigError(f"Slurm time limit {options.time_limit_min} min is over "
                              f"partition {name!r}'s limit of {limit} min.")


def _partitions() -> dict[str, tuple[bool, int | None]] | None:
    """{partition: (is the default, time limit in minutes or None)} from sinfo, or None
    when sinfo fails."""
    try:
        listing = subprocess.run(["sinfo", "-h", "-o", "%P|%l"], capture_output=True,
                                 text=True, timeout=SQUEUE_SECONDS, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    partitions = {}
    for line in listing.splitlines():
        name, _, limit = line.strip().partition("|")
        if name:
            partitions[name.rstrip("*")] = (name.endswith("*"), _minutes(limit))
    return partitions


def _minutes(limit: str) -> int | None:
    """Slurm's [days-][hours:]minutes:seconds (or minutes) as whole minutes; None for
    infinite or what cannot be read."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", limit.strip())
    if match is None:
        return None
    days, *clock = match.groups()
    numbers = [int(n) for n in clock if n is not None]
    if days is not None and len(numbers) == 1:
        numbers += [0, 0]  # days-hours
    elif days is not None and len(numbers) == 2:
        numbers += [0]  # days-hours:minutes
    seconds = {1: lambda m: m * 60, 2: lambda m, s: m * 60 + s,
               3: lambda h, m, s: (h * 60 + m) * 60 + s}[len(numbers)](*numbers)
    return int(days or 0) * 24 * 60 + seconds // 60


def one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
