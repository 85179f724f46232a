"""A grid's sweep as a library: `plan_grid` reads and checks everything a sweep needs
(the grid file, the options, the devices, the backend) and says what is finished and what
is to run; `run_grid` trains what is to run, locally or on Ray, and counts how the runs
ended. The `sweep` command parses its flags, calls these two and prints; a notebook or a
test calls them the same way:

    plan = plan_grid(Path("experiments/digits.toml"), Path("results"))
    outcome = run_grid(plan)
    outcome.failed  # runs that ended failed

The Slurm backend submits `plan.work` as one array job (warmup_bench.slurm.submit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import sweep
from .config import ConfigError, TrainConfig, check_choice
from .execution import RunOptions
from .experiments import Experiment, PluginConsent, load_experiment
from .jobs import BUSY, Job, JobResult, PackJob
from .runs import RunDir, Status, check_output_root
from .slurm.options import SlurmOptions, cluster_options
from .sweep_packs import describe_packs, parse_pack, plan_jobs
from .tasks import long_warmups_note
from .train import DEVICE_FORMS, resolve_device

BACKENDS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class Backend:
    """Where a sweep's runs execute, and how many at once."""

    name: str = "local"  # local, ray or slurm
    jobs: int = 1  # runs in parallel (local)
    ray_address: str | None = None  # None: a local Ray
    ray_cpus: float = 1.0  # CPUs Ray reserves per run
    ray_gpus: float = 0.0  # GPUs Ray reserves per run
    slurm: SlurmOptions | None = None  # the grid's [slurm] with the --slurm-* options on top

    def check(self) -> None:
        check_choice("--backend", self.name, BACKENDS)
        if self.jobs < 1:
            raise ConfigError(f"--jobs {self.jobs} must be at least 1.")

    @property
    def cpus_per_run(self) -> float | None:
        """The CPUs the cluster reserves for each run (None: the machine's, shared)."""
        if self.name == "ray":
            return self.ray_cpus
        return self.slurm.cpus_per_task if self.slurm is not None else None


@dataclass
class GridPlan:
    """What a sweep of a grid would do: every run, those already finished, those to run,
    the pack size, and the work (jobs) that trains them."""

    grid: Experiment
    out: Path
    options: RunOptions
    backend: Backend
    configs: list[TrainConfig]
    done: list[TrainConfig]
    todo: list[TrainConfig]
    pack: int | str  # 1: one run per process; a size; "auto"
    devices: list[str]
    plugins: tuple[Path, ...] = ()

    def notes(self) -> list[str]:
        """What the grid's text does not show (repeated runs, [fixed] settings left out,
        long warmups), one line each."""
        long = long_warmups_note(self.configs)
        return self.grid.notes() + [note for note in (long, self.reused_note())
                                    if note is not None]

    def reused_note(self) -> str | None:
        """Finished CPU runs this sweep reuses that trained with another thread count than
        its own runs get: their numbers are right, but not the ones a fresh run here
        would give (CPU sums are reproducible per thread count)."""
        if self.backend.name != "local" or \
                any(resolve_device(d).type != "cpu" for d in self.devices):
            return None
        threads = sweep.threads_per_run(self.backend.jobs, self.options.threads,
                                        self.backend.cpus_per_run)
        others: dict[int, int] = {}
        for cfg in self.done:
            meta = RunDir.of(self.out, cfg).read_meta()
            used = meta.get("threads")
            if meta.get("device") == "cpu" and isinstance(used, int) and used != threads:
                others[used] = others.get(used, 0) + 1
        if not others:
            return None
        count = sum(others.values())
        how = " and ".join(f"{n} with {t} threads" for t, n in sorted(others.items()))
        return (f"note: {count} finished run{'s' * (count > 1)} reused as trained ({how}), "
                f"where this sweep's runs get {threads}: CPU results are reproducible per "
                "thread count, so their cells may differ in rounding from a fresh run's.")

    def describe_packs(self) -> str | None:
        """One line on how the runs still to train are packed (None: not packed)."""
        return describe_packs(self.configs, self.todo, self.pack) if self.pack != 1 else None

    def work(self, on_note: Callable[[str], None] = print) -> list[Job | PackJob]:
        """The jobs that train the runs still to run: one per run, or one per pack (--pack
        auto sizes packs here, with a timed probe, and says so through `on_note`)."""
        options = dataclasses.replace(self.options, threads=sweep.threads_per_run(
            self.backend.jobs, self.options.threads, self.backend.cpus_per_run))
        return plan_jobs(self.configs, self.todo, self.out, options, self.devices,
                         self.plugins, self.pack, on_note)


def plan_grid(experiment: Path | Experiment, out: Path, options: RunOptions | None = None, *,
              backend: Backend = Backend(), devices: str = "auto", epochs: int | None = None,
              pack: str | None = None, tensorboard: bool | None = None,
              plugins: tuple[Path, ...] = (), consent: PluginConsent = PluginConsent(),
              slurm_flags: dict | None = None, shared_out: bool = False) -> GridPlan:
    """Reads the grid (unless given loaded) and checks everything a sweep needs before any
    run starts: ConfigError (one line) for a bad value. `pack` overrides the grid's pack,
    `tensorboard` its tensorboard, `epochs` every run's epochs; `plugins` are the plugin
    files the runs load (the grid's own are added). The Slurm backend takes the grid's
    [slurm] with `slurm_flags` (the --slurm-* options) on top, checked against the
    cluster (`shared_out`: --out is shared by the nodes though it looks node-local)."""
    options = options or RunOptions()
    backend.check()
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs} must be at least 1.")
    device_list = [d.strip() for d in devices.split(",") if d.strip()]
    if not device_list:
        raise ConfigError(f"--devices names no device; use a comma-separated list of "
                          f"{DEVICE_FORMS}.")
    grid = experiment if isinstance(experiment, Experiment) else \
        load_experiment(experiment, consent)
    configs = grid.configs(epochs)
    pack_size = parse_pack(pack) if pack is not None else grid.pack
    if backend.name == "slurm" and pack_size != 1:
        named = f"--pack {pack}" if pack is not None else f"the grid's pack {grid.pack}"
        raise ConfigError(f"{named} needs --backend local or ray: a Slurm task trains one "
                          "run (pass --pack off).")
    check_output_root(out)
    if tensorboard is None:
        options = dataclasses.replace(options, tensorboard=grid.tensorboard)
    for device in device_list:
        resolve_device(device)
    if backend.name == "ray" and backend.ray_address is not None:
        sweep.check_ray_address(backend.ray_address)
    if backend.name == "slurm":
        backend = dataclasses.replace(backend, slurm=cluster_options(
            grid.slurm, slurm_flags or {}, out, shared_out))
    options.check({cfg.log_interval for cfg in configs})
    done, todo = sweep.plan(configs, out)
    return GridPlan(grid, Path(out), options, backend, configs, done, todo, pack_size,
                    device_list, (*plugins, *grid.plugins))


@dataclass
class GridOutcome:
    """How a sweep's runs ended: each trained run's JobResult, and the whole grid's runs
    counted by their final status."""

    results: list[JobResult] = field(default_factory=list)
    final: dict[Status | None, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(r.outcome == Status.FAILED.value for r in self.results)

    @property
    def busy(self) -> int:
        """Runs skipped: another process is writing them."""
        return sum(r.outcome == BUSY for r in self.results)


def run_grid(plan: GridPlan, on_result: Callable[[JobResult], None] | None = None,
             on_note: Callable[[str], None] = print) -> GridOutcome:
    """Trains the runs still to run, locally (`backend.jobs` at a time) or on Ray, each
    result handed to `on_result` as it ends; KeyboardInterrupt (Ctrl-C or SIGTERM) leaves
    the runs in flight interrupted and starts no other. Not for the Slurm backend, whose
    tasks run on the cluster: submit `plan.work()` with warmup_bench.slurm.submit."""
    if plan.backend.name == "slurm":
        raise ConfigError("run_grid trains locally or on Ray: submit a Slurm sweep with "
                          "warmup_bench.slurm.submit(plan.work(), ...).")
    outcome = GridOutcome()

    def ended(result: JobResult) -> None:
        outcome.results.append(result)
        if on_result is not None:
            on_result(result)

    work = plan.work(on_note)
    with sweep.sigterm_as_interrupt():
        if plan.backend.name == "ray":
            b = plan.backend
            sweep.run_ray(work, b.ray_address, b.ray_cpus, b.ray_gpus, ended)
        else:
            sweep.run_local(work, plan.backend.jobs, ended)
    outcome.final = sweep.final_statuses(plan.configs, plan.out)
    return outcome
