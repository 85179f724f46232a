"""The CLI's tool commands: `list` (the registries), `data` (find, fetch, verify data
sets), `predict` and `export` (a trained run's saved model), `plot-periods` (the warmup
period figures). cli.py registers them on the app."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.padding import Padding
from rich.text import Text

from .cli_support import (
    PLUGIN_HELP,
    check_choice,
    console,
    fail,
    load_plugins,
    open_data,
    user_errors,
)
from .execution import DATA_DIR_HELP
from .files import atomic_path, check_output_file, writing
from .registry import Registry
from .runs import check_output_root
from .terminal import SafeTable as Table
from .terminal import printable

list_app = typer.Typer(help="List tasks, optimizers, warmups, schedules, models or "
                       "augmentations.", no_args_is_help=True)
data_app = typer.Typer(help="Find, download and verify data sets.", no_args_is_help=True)

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
            plots.save_figure(plots.warmup_periods_figure(beta2s, periods),
                              out / f"warmup_periods.{fmt}", fmt),
            plots.save_figure(plots.warmup_factors_figure(factors, beta2),
                              out / f"warmup_factors.{fmt}", fmt),
            _write_csv(pd.DataFrame({"beta2": beta2s, **periods}), out / "warmup_periods.csv"),
            _write_csv(pd.DataFrame({"t": range(1, steps + 1), **factors}),
                       out / "warmup_factors.csv"),
        ]
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)  # each float's shortest text that reads back exactly
    return path


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
    from .data import DATASETS, folder_size, locate

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


@list_app.command("tasks")
def list_tasks(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
               wide: bool = typer.Option(False, help="One table row per task, every "
                                         "setting in its own column (a wide terminal).")
               ) -> None:
    """Task presets with their reference hyperparameters."""
    from .tasks import TASKS

    load_plugins(plugin)
    if wide:
        table = Table("task", "data", "model", "opt", "warmup", "schedule", "lr", "β2", "wd",
                      "epochs", "batch", "description", "from")
        for name, entry in TASKS.items():
            c = entry.config
            table.add_row(name, c.dataset, c.model, c.opt, c.warmup, c.schedule, f"{c.lr:g}",
                          f"{c.beta2:g}", f"{c.weight_decay:g}", str(c.epochs),
                          str(c.batch_size), entry.description, TASKS.origin(name))
        console.print(table)
        return
    # a block per task: readable at 80 columns, and in a pipe
    for name, entry in TASKS.items():
        c = entry.config
        console.print(Text(name, style="bold"), f" {c.dataset} / {c.model}  ({TASKS.origin(name)})")
        warmup = "no warmup" if c.warmup == "none" else f"{c.warmup} warmup"
        recipe = (f"{c.opt}, {warmup}, {c.schedule} schedule, lr {c.lr:g}, β2 {c.beta2:g}, "
                  f"wd {c.weight_decay:g}, {c.epochs} epochs, batch {c.batch_size}")
        for text, style in ((recipe, ""), (entry.description, "dim")):
            console.print(Padding(Text(printable(text), style=style), (0, 0, 0, 2)),
                          soft_wrap=False)


def _print_registry(kind: str, plugin: list[Path] | None) -> None:
    """One registry's names, labels, descriptions and where each came from."""
    load_plugins(plugin)
    from . import tasks  # noqa: F401  (imports every registry)

    registry = Registry.by_kind[kind]
    table = Table(kind, "label", "description", "from")
    for name, entry in registry.items():
        table.add_row(name, entry.label, entry.description, registry.origin(name))
    console.print(table)


@list_app.command("experiments")
def list_experiments() -> None:
    """The grids that ship with warmup-bench: `warmup-bench sweep NAME` runs one."""
    from .experiments import ExperimentError, builtin_grids, load_experiment

    table = Table("name", "runs", "title")
    for name, path in builtin_grids().items():
        try:
            grid = load_experiment(path)
            runs, title = str(len(grid.configs())), grid.title
        except ExperimentError:  # one that needs its plugin: sweep --allow-plugins
            runs, title = "-", load_title(path)
        table.add_row(name, runs, title)
    console.print(table)
    console.print("warmup-bench sweep NAME runs one (a path to a TOML file works too); "
                  "experiments/README.md in the repository describes the format.")


def load_title(path: Path) -> str:
    """A grid file's title (its name when it has none), read without resolving its runs
    (a grid whose plugins are not allowed to load)."""
    from .experiments import tomllib

    try:
        return str(tomllib.loads(path.read_text()).get("title", path.stem))
    except (OSError, ValueError):
        return path.stem


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


def predict(
    run_dir: Path = typer.Argument(..., help="A run folder trained with --save-model."),
    images: int = typer.Option(16, help="Test images in the predictions grid."),
    out: Path = typer.Option(None, help="Figure file (default: predictions.png in the run)."),
    image: Path = typer.Option(None, help="Classify this image file instead (top-5)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    data: str = typer.Option(None, help="The npz:FILE or folder:DIR the run trained on "
                             "(default: where its meta.json says it was read)."),
) -> None:
    """Draw the saved model's predictions on test images, or classify one image file."""
    from . import plots
    from .inference import classify, load_trained, predict_test_images

    if images < 1:
        fail(f"--images {images} must be at least 1.")
    load_plugins(plugin)
    source = open_data(data)
    with user_errors():
        trained = load_trained(run_dir, data_dir, None if isinstance(source, str) else source)
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


def export(
    run_dir: Path = typer.Argument(..., help="A run folder trained with --save-model."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    out: Path = typer.Option(None, help="Output file (default: model.onnx in the run)."),
    data_dir: Path = typer.Option(None, help=DATA_DIR_HELP),
    plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP),
    data: str = typer.Option(None, help="The npz:FILE or folder:DIR the run trained on "
                             "(default: where its meta.json says it was read)."),
) -> None:
    """Export the saved model (dynamic batch axis) and check it against PyTorch."""
    from .inference import EXPORT_FORMATS, export_onnx, load_trained

    check_choice("--format", fmt, EXPORT_FORMATS)
    load_plugins(plugin)
    source = open_data(data)
    with user_errors():
        trained = load_trained(run_dir, data_dir, None if isinstance(source, str) else source)
        path = out or trained.run.onnx_path
        check_output_file(path)
        with writing(path):
            difference = export_onnx(trained, path)
    console.print(f"wrote {path}; onnxruntime vs PyTorch on 64 test images: max |difference| "
                  f"of logits {difference:.3g}", highlight=False, soft_wrap=True)



@list_app.command("augmentations")
def list_augmentations(plugin: list[Path] = typer.Option(None, help=PLUGIN_HELP)) -> None:
    """Training augmentations (--augment NAME)."""
    _print_registry("augmentation", plugin)


COMMANDS = {"plot-periods": plot_periods, "predict": predict, "export": export}
