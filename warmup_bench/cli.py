"""The `warmup-bench` command line: parses, calls the library, prints with rich."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pandas as pd
import typer
from typer.core import TyperGroup

from . import __version__
from .terminal import SafeConsole, printable
from .trackers import check_available as check_tensorboard

# Typer may bundle its own copy of Click: take Click's exception classes from Typer's
_UsageError, _ClickException = (next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
                                for name in ("UsageError", "ClickException"))


class OneLineErrors(TyperGroup):
    """Click's own usage errors (an option that is not a number, an unknown option) in the
    tool's one-line form, exit code 2, instead of a multi-line box."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _UsageError as error:
            if error.ctx is not None and type(error).__name__ == "NoArgsIsHelpError":
                typer.echo(error.ctx.get_help())  # a bare command shows its help
                sys.exit(error.exit_code)
            message = " ".join(error.format_message().split())
            typer.echo(f"Error: {printable(message)}", err=True)
            sys.exit(2)
        except _ClickException as error:
            typer.echo(f"Error: {' '.join(error.format_message().split())}", err=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Error: aborted.", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    help="Reproduce and extend the published benchmarks on learning-rate warmup.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = SafeConsole()  # file-derived text is shown as it is, never as markup
list_app = typer.Typer(help="List tasks, optimizers, warmups or schedules.",
                       no_args_is_help=True)
data_app = typer.Typer(help="Find, download and verify data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(list_app, name="list")


def fail(message: str) -> NoReturn:
    """A user mistake: one line on stderr, exit code 2, no traceback."""
    typer.echo(f"Error: {printable(message)}", err=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turns the errors a user can cause (a bad name or value, a missing or corrupt data
    set, a run folder in the way) into one line and exit code 2."""
    from .config import ConfigError
    from .data import DataError
    from .files import OutputError
    from .runs import CheckpointError, RunBusy, RunFileError
    from .train import RunExists

    try:
        yield
    except (ConfigError, DataError, RunExists, RunBusy, CheckpointError, RunFileError,
            OutputError) as error:
        fail(str(error))


PLUGIN_HELP = ("A plugin file registering warmups, optimizers, schedules, models, tasks or "
               "data sets (repeatable; installed plugin packages load by themselves).")
ALLOW_PLUGINS_HELP = ("Run the plugin files the grid lists (Python code; only those inside "
                      "the grid's folder: others need --plugin FILE).")


def plugin_consent(allow: bool, named: list[Path] | None):
    from .experiments import PluginConsent

    return PluginConsent(allow, tuple(named or ()))


def load_plugins(files: list[Path] | None, data: str | None = None) -> str | None:
    """Installed plugin packages, the given plugin files and a --data source, before any
    name is checked; returns the data source's data-set name."""
    from .data import DATASETS
    from .plugins import load_plugins as load
    from .plugins import register_data

    with user_errors():
        load(files or ())
        if data is None or data in DATASETS:  # no --data, or a registered data set's name
            return data
        return register_data(data)


def check_choice(option: str, value: str, choices) -> str:
    from .config import check_choice as check

    with user_errors():
        check(option, value, choices)
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"warmup-bench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """warmup-bench: learning-rate warmup benchmarks for adaptive optimizers."""


@app.command("plot-periods")
def plot_periods(
    beta2_min: float = typer.Option(0.99, help="Smallest beta2 of the period figure."),
    beta2_max: float = typer.Option(0.9999, help="Largest beta2 of the period figure."),
    points: int = typer.Option(60, help="Number of beta2 values in the period figure."),
    beta2: float = typer.Option(0.999, help="beta2 of the warmup-factor figure."),
    steps: int = typer.Option(3000, help="Iterations shown in the warmup-factor figure."),
    out: Path = typer.Option(Path("results/plots"), help="Output folder."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png, pdf or svg."),
) -> None:
    """Draw the effective-warmup-period figures (and CSVs of the plotted numbers)."""
    from . import plots
    from .files import writing
    from .runs import check_output_root
    from .warmup import beta2_grid, factor_curves, period_curves

    for name, value in (("--beta2-min", beta2_min), ("--beta2-max", beta2_max),
                        ("--beta2", beta2)):
        if not 0.6 < value < 1.0:
            fail(f"{name} {value} is outside the valid range (0.6, 1).")
    if beta2_min >= beta2_max:
        fail(f"--beta2-min {beta2_min} must be smaller than --beta2-max {beta2_max}.")
    if steps < 1:
        fail(f"--steps {steps} must be at least 1.")
    if points < 2:
        fail(f"--points {points} must be at least 2.")
    check_choice("--format", fmt, plots.FIGURE_FORMATS)

    with user_errors():
        check_output_root(out)
    beta2s = beta2_grid(beta2_min, beta2_max, points)
    periods = period_curves(beta2s)
    factors = factor_curves(beta2, steps)
    with user_errors(), writing(out):
        written = [
            plots.plot_warmup_periods(beta2s, periods, out / f"warmup_periods.{fmt}", fmt),
            plots.plot_warmup_factors(factors, beta2, out / f"warmup_factors.{fmt}", fmt),
            _write_csv(pd.DataFrame({"beta2": beta2s, **periods}), out / "warmup_periods.csv"),
            _write_csv(pd.DataFrame({"t": range(1, steps + 1), **factors}),
                       out / "warmup_factors.csv"),
        ]
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    from .files import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.17g")
    return path


DATA_DIR_HELP = "Data folder (default: $WARMUP_BENCH_DATA or ./data)."


def _data_dir(data_dir: Path | None) -> Path:
    from .data import default_data_dir

    return default_data_dir() if data_dir is None else data_dir


def _dataset_name(name: str) -> str:
    from .data import DATASETS

    return check_choice("data set", name, DATASETS)


@data_app.command("list")
def data_list(data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
              plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Show every data set, where it was found, and its size on disk."""
    from rich.text import Text

    from .data import DATASETS, folder_size, locate
    from .terminal import SafeTable as Table

    load_plugins(plugin)
    table = Table("data set", "classes", "train / test", "found at", "size")
    table.columns[0].no_wrap = True
    for name, spec in DATASETS.items():
        folder = locate(name, _data_dir(data_dir))
        where = spec.layout.source if spec.layout.embedded else str(folder) if folder else \
            Text("missing", style="red")
        size = f"{folder_size(folder) / 2**20:.1f} MiB" if folder else "-"
        sizes = f"{spec.sizes[0]:,} / {spec.sizes[1]:,}" if spec.sizes else "-"
        table.add_row(name, str(spec.num_classes), sizes, where, size)
    console.print(table)


@data_app.command("download")
def data_download(
    name: str = typer.Argument(..., help="Data set: cifar10, mnist, emnist, fashion-mnist."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    mirror: str = typer.Option(None, help="Fetch the official file names from this URL instead."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Download a data set, verify its published MD5, and unpack it in torchvision's layout."""
    from .data import download, get_spec, locate

    name = _dataset_name(name)
    if get_spec(name).layout.embedded:
        fail(f"{name} is read by {get_spec(name).layout.source}; there is nothing to "
             "download.")
    existing = locate(name, _data_dir(data_dir))
    if existing is not None:
        console.print(f"{name} is already at {existing}", highlight=False)
        return
    with user_errors():
        folder = download(name, _data_dir(data_dir), mirror=mirror, show_progress=progress)
    console.print(f"{name} downloaded, verified and unpacked into {folder}", highlight=False)


@data_app.command("check")
def data_check(
    name: str = typer.Argument(..., help="Data set name."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """Verify a data set on disk: published MD5s where known, every file parses, sizes."""
    from .data import check_dataset

    with user_errors():
        data = check_dataset(_dataset_name(name), _data_dir(data_dir))
    console.print(
        f"ok: {data.name} at {data.source}: {len(data.train):,} train / {len(data.test):,} "
        f"test images of {tuple(data.input_shape)}, {data.num_classes} classes",
        highlight=False, soft_wrap=True)


@app.command()
def train(
    task: str = typer.Option("cifar10-resnet20", help="Task preset (see `list tasks`)."),
    model: str = typer.Option(None, help="Model, e.g. resnet56 (default: the task's)."),
    opt: str = typer.Option(None, help="Optimizer (see `list optimizers`)."),
    warmup: str = typer.Option(None, help="Warmup (see `list warmups`)."),
    warmup_period: int = typer.Option(None, help="Period of linear/exponential warmup, "
                                      "and the peak of inverse-sqrt."),
    schedule: str = typer.Option(None, help="LR schedule (see `list schedules`)."),
    delay_schedule: bool = typer.Option(None, "--delay-schedule/--no-delay-schedule",
                                        help="Hold the schedule until the warmup has passed."),
    milestones: list[int] = typer.Option(None, help="Multistep milestones in epochs."),
    lr: float = typer.Option(None, help="Base learning rate."),
    beta1: float = typer.Option(None, help="Adam beta1."),
    beta2: float = typer.Option(None, help="Adam beta2."),
    eps: float = typer.Option(None, help="Adam epsilon (default 1e-8)."),
    augment: str = typer.Option(None, help="Training augmentation: none, crop-flip, "
                                "rotate-translate (default: the task's)."),
    weight_decay: float = typer.Option(None, help="Weight decay."),
    epochs: int = typer.Option(None, help="Epochs."),
    batch_size: int = typer.Option(None, help="Training batch size."),
    seed: int = typer.Option(None, help="Seed (model init, batch order, augmentation)."),
    label_smoothing: float = typer.Option(None, help="Label smoothing."),
    grad_clip: float = typer.Option(None, help="Gradient-norm clipping threshold."),
    log_interval: int = typer.Option(None, help="Iterations between logged steps."),
    train_samples: int = typer.Option(None, help="Train on the first N samples only (smoke runs)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    threads: int = typer.Option(None, help="CPU threads (default: torch's, all cores). CPU "
                                "results are bit-reproducible per thread count."),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA, or on a CPU "
                             "with native bf16 (AVX512-BF16, AMX); float32 elsewhere."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="Conv nets' memory layout (default: channels_last "
                                       "on CUDA and CPU, where it is faster)."),
    fused_optimizer: bool = typer.Option(None, "--fused-optimizer/--no-fused-optimizer",
                                         help="The optimizer's fused step, where torch has "
                                         "one (default: on CPUs, where it is faster)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    data: str = typer.Option(None, help="Train on your own data: npz:FILE.npz (x_train, "
                             "y_train, x_test, y_test) or folder:DIR (train/ and test/ of "
                             "class subfolders of images); or another data set by name."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    out: Path = typer.Option(Path("results"), help="Output root of run directories."),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    tensorboard: bool = typer.Option(False, help="Also write the logged metrics as "
                                     "TensorBoard event files in the run folder."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its checkpoint."),
    save_model: bool = typer.Option(False, help="Keep the best epoch's weights in the run folder."),
    diagnostics: bool = typer.Option(True, help="Log update sizes, Adam step ratios, angular "
                                     "updates per log step (diagnostics.csv, layers.csv)."),
    sharpness_every: int = typer.Option(None, help="Estimate the top Hessian eigenvalue every "
                                        "N steps (a multiple of the log interval)."),
    progress: bool = typer.Option(True, help="Show a progress bar (only on a terminal)."),
) -> None:
    """Train one task with any optimizer x warmup x schedule; writes a run directory."""
    from .config import ConfigError, UnknownName
    from .plugins import plugin_hint
    from .runs import Status, check_output_root
    from .tasks import redundant_warmup_note, resolve_config
    from .train import RunFailed, RunOptions
    from .train import train as run_training

    data = load_plugins(plugin, data)
    overrides = dict(dataset=data, model=model, opt=opt, warmup=warmup, warmup_period=warmup_period,
                     schedule=schedule, delay_schedule=delay_schedule,
                     milestones=milestones or None, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                     augment=augment,
                     weight_decay=weight_decay, epochs=epochs, batch_size=batch_size,
                     seed=seed, label_smoothing=label_smoothing, grad_clip=grad_clip,
                     log_interval=log_interval, train_samples=train_samples, amp=amp,
                     compile=compile)
    with user_errors():
        try:
            cfg = resolve_config(task, overrides)
        except UnknownName as error:  # perhaps a plugin's name, with the plugin not loaded
            raise ConfigError(plugin_hint(out, error.value) or str(error)) from None
        check_output_root(out)
        if tensorboard:
            check_tensorboard()
    _check_devices([device])
    _check_threads(threads)
    _check_sharpness(sharpness_every, diagnostics, cfg.log_interval)
    note = redundant_warmup_note(cfg)
    if note:
        typer.echo(note, err=True)
    options = RunOptions(device=device, data_dir=data_dir, resume=resume,
                         save_model=save_model, show_progress=progress and console.is_terminal,
                         threads=threads, channels_last=channels_last,
                         fused_optimizer=fused_optimizer, diagnostics=diagnostics,
                         sharpness_every=sharpness_every, tensorboard=tensorboard,
                         on_note=lambda text: typer.echo(printable(text), err=True))
    try:
        with user_errors():
            result = run_training(cfg, out, options)
    except KeyboardInterrupt:
        typer.echo("interrupted: the last completed epoch is checkpointed; rerun with --resume.",
                   err=True)
        raise typer.Exit(130) from None
    except RunFailed as error:  # a disk fault, plugin code, ...: the summary says failed
        typer.echo(printable(f"Error: the run failed ({error}); its summary says failed where "
                             "it could still be written."), err=True)
        raise typer.Exit(1) from None
    except (OSError, torch_out_of_memory()) as error:  # before the run: disk or memory
        typer.echo(f"Error: the run could not start ({type(error).__name__}: {error}).",
                   err=True)
        raise typer.Exit(1) from None
    s = result.summary
    if result.already_complete:
        console.print(f"already complete, not retrained: {result.run.path}", highlight=False)
    if result.status is Status.DIVERGED:
        typer.echo(printable(f"diverged: {s.error}; files in {result.run.path}"), err=True)
        raise typer.Exit(1)
    console.print(
        f"{cfg.task} {result.run.name}: best test acc {100 * s.best_test_acc:.2f}% "
        f"(epoch {s.best_epoch}), final {100 * s.final_test_acc:.2f}%, "
        f"{s.wall_seconds:.1f} s -> {result.run.path}", highlight=False, soft_wrap=True)


def torch_out_of_memory() -> type[Exception]:
    import torch

    return torch.cuda.OutOfMemoryError  # raised on any device's allocator failure


def _check_devices(devices: list[str]) -> None:
    from .train import DEVICE_FORMS, resolve_device

    if not devices:
        fail(f"--devices names no device; use a comma-separated list of {DEVICE_FORMS}.")
    with user_errors():
        for device in devices:
            resolve_device(device)


def _check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        fail(f"--threads {threads} must be at least 1.")


def _check_sharpness(every: int | None, diagnostics: bool, log_interval: int) -> None:
    if every is None:
        return
    if not diagnostics:
        fail("--sharpness-every needs --diagnostics (its values go into diagnostics.csv).")
    if every < 1 or every % log_interval:
        fail(f"--sharpness-every {every} must be a positive multiple of the log interval "
             f"({log_interval}).")


@list_app.command("tasks")
def list_tasks(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Task presets with their reference hyperparameters."""
    from .plugins import describe
    from .tasks import TASK_DESCRIPTIONS, TASKS
    from .terminal import SafeTable as Table

    load_plugins(plugin)
    table = Table("task", "data", "model", "opt", "warmup", "schedule", "lr", "wd", "epochs",
                  "batch", "description", "from")
    for name, c in TASKS.items():
        table.add_row(name, c.dataset, c.model, c.opt, c.warmup, c.schedule, f"{c.lr:g}",
                      f"{c.weight_decay:g}", str(c.epochs), str(c.batch_size),
                      TASK_DESCRIPTIONS[name], describe("task", name))
    console.print(table)


def _print_registry(kind: str, plugin: list[Path] | None) -> None:
    """One registry's names, labels, descriptions and where each came from."""
    from .plugins import describe
    from .tasks import REGISTRIES
    from .terminal import SafeTable as Table

    load_plugins(plugin)
    table = Table(kind, "label", "description", "from")
    for name, entry in REGISTRIES[kind].items():
        if kind == "model":  # a factory: its class (or function) and docstring say what it is
            factory = getattr(entry, "func", entry)
            label, doc = factory.__name__, (factory.__doc__ or "").strip().split("\n")[0]
        else:
            label, doc = entry.label, entry.description
        table.add_row(name, label, doc, describe(kind, name))
    console.print(table)


@list_app.command("optimizers")
def list_optimizers(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Optimizers (Adam variants take --beta1/--beta2)."""
    _print_registry("optimizer", plugin)


@list_app.command("warmups")
def list_warmups(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Warmup schedules (linear/exponential need --warmup-period)."""
    _print_registry("warmup", plugin)


@list_app.command("schedules")
def list_schedules(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """LR schedules (combine with any warmup; --delay-schedule holds them until it ends)."""
    _print_registry("schedule", plugin)


@list_app.command("models")
def list_models(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Models (any task takes --model NAME)."""
    _print_registry("model", plugin)


@app.command()
def sweep(
    experiment: Path = typer.Argument(..., help="Experiment grid (experiments/*.toml)."),
    out: Path = typer.Option(Path("results"), help="Output root of run directories."),
    jobs: int = typer.Option(1, help="Runs in parallel (local backend)."),
    threads: int = typer.Option(None, help="CPU threads per run (default: the cores divided "
                                "by --jobs; with Ray, --ray-cpus)."),
    devices: str = typer.Option("auto", help="Comma-separated devices the runs rotate over."),
    backend: str = typer.Option("local", help="local or ray."),
    ray_address: str = typer.Option(None, help="Ray cluster address (default: a local Ray)."),
    ray_cpus: float = typer.Option(1.0, help="CPUs Ray reserves per run."),
    ray_gpus: float = typer.Option(0.0, help="GPUs Ray reserves per run."),
    epochs: int = typer.Option(None, help="Override every run's epochs (smoke runs)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    diagnostics: bool = typer.Option(True, help="Per-step diagnostics in every run."),
    sharpness_every: int = typer.Option(None, help="Top Hessian eigenvalue every N steps."),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP + " Grid files list theirs."),
    allow_plugins: bool = typer.Option(False, help=ALLOW_PLUGINS_HELP),
    tensorboard: bool = typer.Option(None, "--tensorboard/--no-tensorboard", help="TensorBoard "
                                     "event files in every run folder (default: the grid's)."),
    dry_run: bool = typer.Option(False, help="List what would run; train nothing."),
) -> None:
    """Run a whole grid; finished runs are skipped and interrupted ones resumed."""
    import os
    import signal

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .experiments import load_experiment
    from .runs import RunDir, Status, check_output_root
    from .sweep import BUSY, make_jobs, plan, run_local, run_ray
    from .terminal import SafeTable as Table

    check_choice("--backend", backend, ("local", "ray"))
    if jobs < 1:
        fail(f"--jobs {jobs} must be at least 1.")
    if epochs is not None and epochs < 1:
        fail(f"--epochs {epochs} must be at least 1.")
    _check_threads(threads)
    load_plugins(plugin)
    with user_errors():
        grid = load_experiment(experiment, plugin_consent(allow_plugins, plugin))
        configs = grid.configs(epochs)
        check_output_root(out)
        tensorboard = grid.tensorboard if tensorboard is None else tensorboard
        if tensorboard:
            check_tensorboard()
    device_list = [d.strip() for d in devices.split(",") if d.strip()]
    _check_devices(device_list)
    for log_interval in {cfg.log_interval for cfg in configs} if sharpness_every else ():
        _check_sharpness(sharpness_every, diagnostics, log_interval)
    done, todo = plan(configs, out)
    console.print(f"{grid.title}: {len(configs)} runs, {len(done)} already finished, "
                  f"{len(todo)} to run", highlight=False)
    if grid.description:
        console.print(grid.description, style="dim", highlight=False)
    if grid.duplicates:
        console.print(f"note: {grid.duplicates} grid entries repeat an earlier run; each run "
                      "is trained once.", highlight=False)
    if dry_run:
        finished = set(done)
        table = Table("run", "task", "status")
        for cfg in configs[:DRY_RUN_ROWS]:
            table.add_row(RunDir.of(out, cfg).name, cfg.task,
                          "finished (skip)" if cfg in finished else "to run")
        console.print(table)
        if len(configs) > DRY_RUN_ROWS:
            console.print(f"... and {len(configs) - DRY_RUN_ROWS:,} more runs.", highlight=False)
        return
    if threads is None:  # share the cores: concurrent runs with all threads each thrash
        threads = max(1, int(ray_cpus)) if backend == "ray" else \
            max(1, (os.cpu_count() or 1) // jobs)
    work = make_jobs(todo, out, data_dir, device_list, threads, diagnostics, sharpness_every,
                     tensorboard, (*(plugin or ()), *grid.plugins))
    results, counts = [], {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())

    def stop(signum, frame):  # SIGTERM stops a sweep the way Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with Progress(*columns, disable=not console.is_terminal) as progress:
            bar = progress.add_task("sweep", total=len(work))

            def on_result(result) -> None:
                results.append(result)
                counts[result.outcome] = counts.get(result.outcome, 0) + 1
                progress.update(bar, advance=1, description=", ".join(
                    f"{k} {v}" for k, v in counts.items()) + f", running "
                    f"{min(len(work) - len(results), jobs)}")
            with user_errors():
                if backend == "ray":
                    run_ray(work, ray_address, ray_cpus, ray_gpus, on_result)
                else:
                    run_local(work, jobs, on_result)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {len(results)} of {len(work)} runs ended; runs in flight are "
                   "checkpointed at their last epoch; rerun the sweep to continue.", err=True)
        raise typer.Exit(130) from None
    if results:
        table = Table("run", "outcome", "best test acc", "error")
        for r in sorted(results, key=lambda r: r.run):
            acc = f"{100 * r.best_test_acc:.2f}%" if r.best_test_acc is not None else "-"
            table.add_row(r.run, r.outcome, acc, r.error or "")
        console.print(table)
    final = [getattr(RunDir.of(out, c).read_summary(), "status", None) for c in configs]
    failed = counts.get(Status.FAILED.value, 0)
    console.print(f"done: {final.count(Status.COMPLETE)} complete, "
                  f"{final.count(Status.DIVERGED)} diverged, {failed} failed"
                  + (f", {counts[BUSY]} skipped (another process is writing them)"
                     if counts.get(BUSY) else ""), highlight=False)
    if failed:
        raise typer.Exit(1)


DRY_RUN_ROWS = 50  # a dry run lists this many runs, then counts the rest


def _speed_report(runs, fmt: str, out: Path | None) -> None:
    from .files import write_text_atomic, writing
    from .report import SPEED_FORMATS, render_speed, speed_frame

    check_choice("--format (with --speed)", fmt, SPEED_FORMATS)
    frame = speed_frame(runs)
    if not len(frame):
        fail("no finished runs with epoch timings to compare.")
    shown = render_speed(frame, fmt)
    if fmt == "table":
        console.print(shown)
    else:
        typer.echo(shown)
    if out is not None:
        with user_errors(), writing(out):
            write_text_atomic(out / "speed.md", render_speed(frame, "markdown"))
        console.print(f"wrote {out / 'speed.md'}", highlight=False)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="A run folder trained with --save-model."),
    images: int = typer.Option(16, help="Test images in the predictions grid."),
    out: Path = typer.Option(None, help="Figure file (default: predictions.png in the run)."),
    image: Path = typer.Option(None, help="Classify this image file instead (top-5)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    data: str = typer.Option(None, help="The npz:FILE or folder:DIR the run trained on."),
) -> None:
    """Draw the saved model's predictions on test images, or classify one image file."""
    from . import plots
    from .files import check_output_file, writing
    from .inference import classify, load_trained, predict_test_images

    if images < 1:
        fail(f"--images {images} must be at least 1.")
    load_plugins(plugin, data)
    with user_errors():
        trained = load_trained(run_dir, data_dir)
        if image is not None:
            for rank, (name, probability) in enumerate(classify(trained, image), start=1):
                console.print(f"{rank}. {name:>12}  {100 * probability:6.2f}%", highlight=False)
            return
        path = out or trained.run.predictions_path
        check_output_file(path)
    shown, labels, predicted = predict_test_images(trained, images)
    right = int((labels == predicted).sum())
    figure = plots.predictions_figure(shown.numpy(), labels.tolist(), predicted.tolist(),
                                      trained.class_names, f"{trained.cfg.task} / "
                                      f"{trained.run.name}: {right} of {len(labels)} right")
    with user_errors(), writing(path):
        plots.save_figure(figure, path, "png")
    console.print(f"{right} of {len(labels)} right; wrote {path}", highlight=False,
                  soft_wrap=True)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run folder trained with --save-model."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    out: Path = typer.Option(None, help="Output file (default: model.onnx in the run)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    data: str = typer.Option(None, help="The npz:FILE or folder:DIR the run trained on."),
) -> None:
    """Export the saved model (dynamic batch axis) and check it against PyTorch."""
    from .files import check_output_file, writing
    from .inference import EXPORT_FORMATS, export_onnx, load_trained

    check_choice("--format", fmt, EXPORT_FORMATS)
    load_plugins(plugin, data)
    with user_errors():
        trained = load_trained(run_dir, data_dir)
        path = out or trained.run.onnx_path
        check_output_file(path)
        with writing(path):
            difference = export_onnx(trained, path)
    console.print(f"wrote {path}; onnxruntime vs PyTorch on 64 test images: max |difference| "
                  f"of logits {difference:.3g}", highlight=False, soft_wrap=True)


@app.command()
def report(
    results_dir: Path = typer.Argument(Path("results"), help="Folder of run directories."),
    experiment: Path = typer.Option(None, help="Lay out (and restrict to) this grid."),
    metric: str = typer.Option(None, help="best (test accuracy over epochs), final, or "
                               "at-best-val (test accuracy of the best-validation epoch); "
                               "default: the grid's [table] metric, else best."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or latex."),
    compare: bool = typer.Option(False, help="Compare with the published numbers."),
    out: Path = typer.Option(None, help="Write the table and the plots into this folder."),
    plot_format: str = typer.Option("png", help="png, pdf or svg."),
    log_x: bool = typer.Option(False, help="Log-scale iterations in the LR plots."),
    epochs: int = typer.Option(None, help="The --epochs override the sweep ran with."),
    speed: bool = typer.Option(False, help="Instead: seconds per epoch, images/s, total time "
                               "and accuracy per task and device, with speed-ups."),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    allow_plugins: bool = typer.Option(False, help=ALLOW_PLUGINS_HELP),
) -> None:
    """Aggregate runs into the published tables (top-1 error %, mean ± std (n))."""
    from . import plots
    from .experiments import load_experiment
    from .files import write_text_atomic, writing
    from .report import (
        FORMATS,
        METRICS,
        build_tables,
        collect_runs,
        draw_figures,
        render,
        rich_table,
    )
    from .runs import check_output_root

    if metric is not None:
        check_choice("--metric", metric, METRICS)
    check_choice("--format", fmt, FORMATS)
    check_choice("--plot-format", plot_format, plots.FIGURE_FORMATS)
    if not results_dir.is_dir():
        fail(f"results folder {results_dir} does not exist.")
    if compare and experiment is None:
        fail("--compare needs --experiment FILE: the published numbers live in the grids.")
    load_plugins(plugin)
    grid = None
    if experiment is not None:
        with user_errors():
            grid = load_experiment(experiment, plugin_consent(allow_plugins, plugin))

    if out is not None:
        with user_errors():
            check_output_root(out)

    def warn(text: str) -> None:
        typer.echo(f"warning: {printable(text)}", err=True)

    metric = metric or (grid.metric if grid is not None else "best")
    runs = collect_runs(results_dir, warn)
    if speed:
        _speed_report(runs, fmt, out)
        return
    tables = build_tables(results_dir, runs, metric, grid, compare, epochs, warn)
    if not any(table_runs for _, table_runs in tables):
        fail(f"no finished runs under {results_dir}"
             + (f" belong to {experiment}" if grid else "") + ".")
    texts = []
    for table, table_runs in tables:
        if fmt == "table":
            console.print(rich_table(table, metric, compare))
            texts.append(render(table, "markdown", compare))
        else:
            texts.append(render(table, fmt, compare))
            typer.echo(texts[-1])
        if out is not None:
            with user_errors(), writing(out):
                draw_figures(table, table_runs, out / "plots", plot_format, log_x, warn)
    if out is not None:
        suffix = {"table": "md", "markdown": "md", "csv": "csv", "latex": "tex"}[fmt]
        with user_errors(), writing(out):
            write_text_atomic(out / f"report.{suffix}", "\n".join(texts))
        console.print(f"wrote {out / f'report.{suffix}'} and figures in {out / 'plots'}",
                      highlight=False)
