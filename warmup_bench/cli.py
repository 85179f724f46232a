"""The `warmup-bench` command line: parses, calls the library, prints with rich. The
options of `train` and `sweep` come from the settings' declarations (config.TrainConfig,
execution.RunOptions); policy (threads per run, signals, counting) lives in sweep.py."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from . import __version__
from .cli_slurm import slurm_parameters, sweep_on_slurm
from .cli_support import (
    ALLOW_PLUGINS_HELP,
    PLUGIN_HELP,
    OneLineErrors,
    PanelledCommand,
    check_choice,
    config_parameters,
    console,
    execution_parameters,
    fail,
    given,
    load_plugins,
    open_data,
    say,
    user_errors,
    with_parameters,
)
from .cli_tools import COMMANDS, data_app, list_app
from .config import DECLARED, ConfigError, UnknownName
from .execution import RunOptions
from .files import writing
from .metrics import metric_help, parse_metric
from .progress import RunBar, SweepBar
from .runs import Status, check_output_root
from .terminal import SafeTable as Table

app = typer.Typer(
    cls=OneLineErrors,
    help="Reproduce and extend the published benchmarks on learning-rate warmup.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(list_app, name="list")
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)

OUT_HELP = "Output root of run directories."
DATA_HELP = ("Train on your own data: npz:FILE.npz (x_train, y_train, x_test, y_test) or "
             "folder:DIR (train/ and test/ of class subfolders of images); or another data "
             "set by name.")


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


@app.command(cls=PanelledCommand)
@with_parameters(config_parameters(), execution_parameters("train"))
def train(
    task: str = typer.Option("cifar10-resnet20", help="Task preset (see `list tasks`)."),
    data: str = typer.Option(None, help=DATA_HELP),
    out: Path = typer.Option(Path("results"), help=OUT_HELP),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar (only on a terminal)."),
    **settings,
) -> None:
    """Train one task with any optimizer x warmup x schedule; writes a run directory."""
    from .plugins import plugin_hint
    from .tasks import redundant_warmup_note, resolve_config
    from .train import RunFailed
    from .train import train as run_training  # the command's own name is train

    load_plugins(plugin)
    source = open_data(data)
    own = source if source is not None and not isinstance(source, str) else None
    # an empty list option is what Typer gives for one not given
    overrides = given({k: v for k, v in settings.items() if k in DECLARED and v != []})
    bar = RunBar(task, progress and console.is_terminal)
    options = RunOptions(**given({k: v for k, v in settings.items() if k not in DECLARED}),
                         data=own, on_note=say, on_progress=bar.update,
                         on_hint=say if sys.stderr.isatty() else None)
    with user_errors():
        try:
            cfg = resolve_config(task, {**overrides, "dataset": source if own is None else None},
                                 own)
        except UnknownName as error:  # perhaps a plugin's name, with the plugin not loaded
            raise ConfigError(plugin_hint(out, error.value) or str(error)) from None
        check_output_root(out)
    note = redundant_warmup_note(cfg)
    if note:
        say(note)
    try:
        with user_errors(), bar:
            result = run_training(cfg, out, options)
    except KeyboardInterrupt:
        say("interrupted: the last completed epoch is checkpointed; rerun with --resume.")
        raise typer.Exit(130) from None
    except RunFailed as error:  # a disk fault, plugin code, ...: the summary says failed
        say(f"Error: the run failed ({error}); its summary says failed where it could still "
            "be written.")
        raise typer.Exit(1) from None
    except OSError as error:  # before the run started: a disk fault
        say(f"Error: the run could not start ({type(error).__name__}: {error}).")
        raise typer.Exit(1) from None
    s = result.summary
    if result.already_complete:
        missing = " It has no saved model: add --restart to train it again with " \
            "--save-model." if options.save_model and not result.run.model_path.is_file() else ""
        console.print(f"already complete, not retrained: {result.run.path}.{missing}")
    if result.status is Status.DIVERGED:
        say(f"diverged: {s.error}; files in {result.run.path}")
        raise typer.Exit(1)
    console.print(
        f"{cfg.task} {result.run.name}: {s.headline()}, {s.wall_seconds:.1f} s -> "
        f"{result.run.path}", soft_wrap=True)
    if not sys.stderr.isatty() and not result.already_complete:  # a terminal heard them
        for note in s.notes:
            say(f"note: {note} (recorded in summary.json)")


@app.command()
@with_parameters(execution_parameters("sweep"), slurm_parameters())
def sweep(
    experiment: Path = typer.Argument(..., help="Experiment grid: a TOML file, or a "
                                      "built-in grid's name (see `list experiments`)."),
    out: Path = typer.Option(Path("results"), help=OUT_HELP),
    jobs: int = typer.Option(1, help="Runs in parallel (local backend)."),
    devices: str = typer.Option("auto", help="Comma-separated devices the runs rotate over."),
    backend: str = typer.Option("local", help="local, ray or slurm."),
    ray_address: str = typer.Option(None, help="Ray cluster address (default: a local Ray)."),
    ray_cpus: float = typer.Option(1.0, help="CPUs Ray reserves per run."),
    ray_gpus: float = typer.Option(0.0, help="GPUs Ray reserves per run."),
    epochs: int = typer.Option(None, help="Override every run's epochs (smoke runs)."),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP + " Grid files list theirs."),
    allow_plugins: bool = typer.Option(False, help=ALLOW_PLUGINS_HELP),
    dry_run: bool = typer.Option(False, help="List what would run; train nothing."),
    wait: bool = typer.Option(False, help="Slurm: follow the tasks to their end (exit 1 when "
                              "a run failed); without it, submit and return."),
    shared_out: bool = typer.Option(False, help="Slurm: --out is on a file system every node "
                                    "shares, even though it looks node-local (/tmp, tmpfs)."),
    pack: str = typer.Option(None, help="Train runs that differ only in seed, LR, betas, "
                             "warmup, ... as one vectorised model: off, auto (a timed probe; "
                             "off on CPUs) or a pack size (default: the grid's pack, else "
                             "off). Local and Ray backends."),
    **execution,
) -> None:
    """Run a whole grid; finished runs are skipped and interrupted ones resumed."""
    from .experiments import PluginConsent
    from .run_grid import Backend, plan_grid, run_grid
    from .sweep import DRY_RUN_ROWS, dry_run_rows

    slurm_flags = {k: execution.pop(k) for k in list(execution) if k.startswith("slurm_")}
    load_plugins(plugin)
    with user_errors():
        plan = plan_grid(experiment, out, RunOptions(**given(execution)),
                         backend=Backend(backend, jobs, ray_address, ray_cpus, ray_gpus),
                         devices=devices, epochs=epochs, pack=pack,
                         tensorboard=execution.get("tensorboard"), plugins=tuple(plugin or ()),
                         consent=PluginConsent(allow_plugins, tuple(plugin or ())),
                         slurm_flags=slurm_flags, shared_out=shared_out)
    grid, configs = plan.grid, plan.configs
    console.print(f"{grid.title}: {len(configs)} runs, {len(plan.done)} already finished, "
                  f"{len(plan.todo)} to run")
    if grid.description:
        console.print(grid.description, style="dim")
    for note in plan.notes():
        say(note)
    if dry_run:
        table = Table("run", "task", "status")
        for row in dry_run_rows(configs, plan.done, out):
            table.add_row(*row)
        console.print(table)
        if len(configs) > DRY_RUN_ROWS:
            console.print(f"... and {len(configs) - DRY_RUN_ROWS:,} more runs.")
        if (packs := plan.describe_packs()) is not None:
            console.print(packs)
        return
    if plan.backend.slurm is not None:  # one array job; its tasks get their GPUs from Slurm
        with user_errors():
            work = plan.work(say)
        sweep_on_slurm(work, out, grid, plan.backend.slurm, wait, shared_out)
        return
    try:
        with SweepBar(len(plan.todo), jobs, console.is_terminal) as bar, user_errors():
            outcome = run_grid(plan, lambda result: bar.ended_one(result.outcome), say)
    except KeyboardInterrupt:
        say(f"interrupted: {bar.ended} of {len(plan.todo)} runs ended; runs in flight are "
            "checkpointed at their last epoch; rerun the sweep to continue.")
        raise typer.Exit(130) from None
    results = outcome.results
    if results:
        errors = any(r.error for r in results)  # a column only where there is something
        table = Table("run", "outcome", "best (test acc or loss)",
                      *(["error"] if errors else []))
        for r in sorted(results, key=lambda r: r.run):
            table.add_row(r.run, r.outcome, r.best, *([r.error or ""] if errors else []))
        console.print(table)
    final = outcome.final
    console.print(f"done: {final.get(Status.COMPLETE, 0)} complete, "
                  f"{final.get(Status.DIVERGED, 0)} diverged, {outcome.failed} failed"
                  + (f", {outcome.busy} skipped (another process is writing them)"
                     if outcome.busy else ""))
    if outcome.failed:
        raise typer.Exit(1)


@app.command()
def report(
    results_dir: Path = typer.Argument(Path("results"), help="Folder of run directories."),
    experiment: Path = typer.Option(None, help="Lay out (and restrict to) this grid."),
    metric: str = typer.Option(None, help="What the cells measure: " + metric_help() +
                               " Default: the grid's [table] metric, else loss where every "
                               "run is a text task's, else best."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv, latex or json."),
    compare: bool = typer.Option(False, help="Compare with the published numbers."),
    precise_bn: bool = typer.Option(False, "--precise-bn", help="Every number from the "
                                    "evaluations at BatchNorm statistics recomputed at the "
                                    "epoch's weights (runs trained with --precise-bn N; the "
                                    "default: the protocol's, as the papers report)."),
    out: str = typer.Option(None, help="Write the table and plots into this folder (new, "
                            "empty, or this report's own)."),
    plot_format: str = typer.Option("png", help="png, pdf or svg."),
    log_x: bool = typer.Option(False, help="Log-scale iterations in the LR plots."),
    epochs: int = typer.Option(None, help="With --experiment: the sweep's --epochs."),
    speed: bool = typer.Option(False, help="Instead: seconds per epoch, images/s, total time "
                               "and accuracy per task and device, with speed-ups."),
    run_figures: str = typer.Option(None, help="Per-run history figures with --out: "
                                    "diverged (only those runs', the default), all, or none."),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    allow_plugins: bool = typer.Option(False, help=ALLOW_PLUGINS_HELP),
) -> None:
    """Aggregate runs into the published tables and figures (mean ± std over seeds)."""
    from . import plots
    from . import report as reporting
    from .experiments import PluginConsent, load_experiment

    if metric is not None:
        with user_errors():
            parse_metric(metric)
    check_choice("--format", fmt, reporting.FORMATS)
    check_choice("--plot-format", plot_format, plots.FIGURE_FORMATS)
    if run_figures is not None:
        check_choice("--run-figures", run_figures, reporting.RUN_FIGURES)
        if out is None:
            fail(f"--run-figures {run_figures} draws figures into --out: pass --out DIR.")
    if out is not None and not out.strip():
        fail("--out '' names no folder: give the folder to write the report into.")
    out = Path(out) if out is not None else None
    with user_errors():
        reporting.check_request(results_dir, experiment is not None, compare, epochs)
    load_plugins(plugin)
    grid = None
    with user_errors():
        if experiment is not None:
            grid = load_experiment(experiment, PluginConsent(allow_plugins, tuple(plugin or ())))
            experiment = grid.path  # a built-in grid's name: its file
        if out is not None:
            check_output_root(out)
            reporting.claim_folder(out, results_dir, experiment, write=False)

    def warn(text: str) -> None:
        say(f"warning: {text}")

    if speed:
        check_choice("--format (with --speed)", fmt, reporting.SPEED_FORMATS)
        with user_errors():
            frame = reporting.speed_report(results_dir, warn)
        shown = reporting.render_speed(frame, fmt)
        console.print(shown) if fmt == "table" else typer.echo(shown)
        with user_errors(), writing(out or Path(".")):
            if out is not None:
                console.print(f"wrote {reporting.write_speed(frame, out)}")
        return
    with user_errors():
        made = reporting.make_report(results_dir, grid, metric, compare, epochs, warn, say,
                                     precise_bn)
    for table, _ in made.tables:
        if fmt == "table":
            console.print(reporting.rich_table(table, made.compare))
        else:
            typer.echo(reporting.render(table, fmt, made.compare))
    if out is not None:
        with user_errors(), writing(out):
            reporting.claim_folder(out, results_dir, experiment)
            written = reporting.write_report(made.tables, out, fmt, made.compare, plot_format,
                                             log_x, warn, made.metric,
                                             run_figures or "diverged",
                                             grid.path.read_text() if grid else None,
                                             reproducing_commands(
                                                 grid, results_dir, metric, compare, epochs,
                                                 fmt, out, plot_format, precise_bn))
        console.print(f"wrote {written}, {out / reporting.PAGE} (the whole report as one "
                      f"page) and figures in {out / 'plots'}")


def reproducing_commands(grid, results: Path, metric: str | None, compare: bool,
                         epochs: int | None, fmt: str, out: Path, plot_format: str,
                         precise_bn: bool = False) -> list[str]:
    """The commands that make this report again: the grid's sweep (when there is a grid),
    then this report's own command."""
    import shlex

    from .experiments import grids_folder

    named = grid and (grid.path.stem if grid.path.parent == grids_folder() else str(grid.path))
    words = ["warmup-bench", "report", str(results)]
    words += ["--experiment", named] if grid else []
    words += ["--epochs", str(epochs)] if epochs else []
    words += ["--metric", metric] if metric else []
    words += ["--compare"] * compare + ["--precise-bn"] * precise_bn
    words += ["--format", fmt] if fmt != "table" else []
    words += ["--plot-format", plot_format] if plot_format != "png" else []
    sweep = ["warmup-bench", "sweep", named, "--out", str(results)] + \
        (["--epochs", str(epochs)] if epochs else []) if grid else None
    return [shlex.join(command) for command in (sweep, [*words, "--out", str(out)]) if command]
