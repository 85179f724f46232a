"""What every command of the CLI shares: the one-line error form, the console, plugin
loading, and the options generated from the settings' declarations (TrainConfig for what
a run computes, RunOptions for how it executes), so a setting is declared once."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from typer.core import TyperGroup

from .config import DECLARED as SETTINGS_DECLARED
from .config import FIELD_KINDS, option
from .errors import DataError, UserError
from .execution import DECLARED as OPTIONS_DECLARED
from .execution import RunOptions
from .registry import check_choice as check
from .terminal import SafeConsole, printable

# Typer may bundle its own copy of Click: take Click's exception classes from Typer's
_UsageError, _ClickException = (next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
                                for name in ("UsageError", "ClickException"))
console = SafeConsole()  # file-derived text is shown as it is, never as markup
PLUGIN_HELP = ("A plugin file registering warmups, optimizers, schedules, models, tasks or "
               "data sets (repeatable; installed plugin packages load by themselves).")
ALLOW_PLUGINS_HELP = ("Run the plugin files the grid lists (Python code; only those inside "
                      "the grid's folder: others need --plugin FILE).")


# the order `--help` lists the commands in: the README's, the order a newcomer meets them
COMMAND_ORDER = ("train", "sweep", "report", "predict", "export", "plot-periods", "list",
                 "data")


class OneLineErrors(TyperGroup):
    """Click's own usage errors (an option that is not a number, an unknown option) in the
    tool's one-line form, exit code 2, instead of a multi-line box; the commands listed in
    COMMAND_ORDER."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: (COMMAND_ORDER.index(n) if n in COMMAND_ORDER
                                            else len(COMMAND_ORDER), names.index(n)))

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


def fail(message: str) -> NoReturn:
    """A user mistake: one line on stderr, exit code 2, no traceback."""
    typer.echo(f"Error: {printable(message)}", err=True)
    raise typer.Exit(2)


def say(text: str) -> None:
    """A note or warning on stderr, shown as it is."""
    typer.echo(printable(text), err=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turns the errors a user can cause (UserError: a bad name or value, a missing or
    corrupt data set, a run folder in the way, an output that cannot be written) into one
    line and exit code 2."""
    try:
        yield
    except (UserError, DataError) as error:
        fail(str(error))


def check_choice(option: str, value: str, choices) -> str:
    with user_errors():
        check(option, value, choices)
    return value


def load_plugins(files: list[Path] | None) -> None:
    """Installed plugin packages and the given plugin files, before any name is checked."""
    from .plugins import load_plugins as load

    with user_errors():
        load(files or ())


def open_data(data: str | None):
    """--data: a registered data set's name (returned as is), or the user's own data
    (npz:PATH, folder:PATH) opened as a DataSource; None when not given."""
    from .data import DATASETS
    from .data.custom import open_data_source

    if data is None or data in DATASETS:
        return data
    with user_errors():
        return open_data_source(data)


# ---- options generated from the declarations ------------------------------------------


def _option(name: str, annotation, flag: str, help: str) -> inspect.Parameter:
    """A keyword parameter Typer reads as `flag`, default None (None: not given)."""
    optional = annotation | None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=optional,
                             default=typer.Option(None, *flag.split(" "), help=help))


def config_parameters() -> list[inspect.Parameter]:
    """One `train` option per TrainConfig setting that has one (--lr, --warmup, ...)."""
    params = []
    for name, declared in SETTINGS_DECLARED.items():
        if declared.flag == "":
            continue
        kind, _, items = FIELD_KINDS[name]
        annotation = list[items] if kind is tuple else kind
        flag = option(name)
        if kind is bool:
            flag = f"{flag}/--no-{flag[2:]}"
        params.append(_option(name, annotation, flag, declared.help))
    return params


def execution_parameters(command: str, leave_out: tuple[str, ...] = ()
                         ) -> list[inspect.Parameter]:
    """One option per RunOptions field that `command` takes (--threads, --device, ...)."""
    hints = typing.get_type_hints(RunOptions)
    params = []
    for field in dataclasses.fields(RunOptions):
        declared = OPTIONS_DECLARED.get(field.name)
        if declared is None or command not in declared.commands or field.name in leave_out:
            continue
        hint = hints[field.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        params.append(_option(field.name, base, declared.flag or
                              "--" + field.name.replace("_", "-"), declared.help))
    return params


def with_parameters(*groups: list[inspect.Parameter]) -> Callable:
    """Gives a command the generated parameters on top of its own; the command receives
    them in its **kwargs (Typer reads the signature set here)."""
    def decorate(command: Callable) -> Callable:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params = own + [p for group in groups for p in group]
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command
    return decorate


def given(values: dict) -> dict:
    """The options the user gave (None: left to the default)."""
    return {k: v for k, v in values.items() if v is not None}


# ---- `train --help` in panels -----------------------------------------------------------

# the panels `train --help` groups its options in, in this order (an option in none of them
# goes to the last, "Other")
HELP_PANELS = {
    "Task and data": ("task", "data", "data_dir", "model", "epochs", "batch_size",
                      "test_batch_size", "seed", "augment", "val_fraction", "val_split_seed",
                      "train_samples", "plugin"),
    "Optimizer": ("opt", "lr", "beta1", "beta2", "eps", "momentum", "weight_decay",
                  "weight_decay_on", "grad_clip", "label_smoothing"),
    "Warmup and schedule": ("warmup", "warmup_period", "schedule", "delay_schedule",
                            "milestones", "gamma", "eta_min", "cooldown_fraction",
                            "cooldown_shape"),
    "Language model (text tasks only)": ("context", "norm", "qk_norm", "dropout", "bias",
                                         "epoch_steps"),
    "Execution": ("device", "threads", "amp", "compile", "compile_mode", "channels_last",
                  "fused_optimizer", "deterministic", "tf32", "resume", "restart"),
    "Output": ("out", "log_interval", "precise_bn", "save_model", "diagnostics",
               "sharpness_every", "tensorboard", "wandb", "mlflow", "progress"),
}
PRESET_NOTE = ("Hyperparameters not given take the --task preset's values (`warmup-bench list "
               "tasks` shows each preset's); a grid file takes the same names.")


def _metavar(param, setting) -> str:
    """A short placeholder for an option's value: N, X, PATH, NAME or TEXT (N... for a
    list)."""
    kind = param.bare_type()
    listed = kind.startswith("list[")
    kind = kind[5:-1] if listed else kind
    word = {"int": "N", "float": "X", "Path": "PATH"}.get(
        kind, "NAME" if setting is not None and setting.names else "TEXT")
    return f"{word}..." if listed or param.multiple else word


def option_label(param) -> str:
    """How the help names an option: '--lr X', '--[no-]amp' for a flag with both forms."""
    name = max(param.opts, key=len)
    if param.is_flag:
        negative = next((o for o in param.secondary_opts if o.startswith("--no-")), None)
        return f"--[no-]{name[2:]}" if negative == f"--no-{name[2:]}" else name
    return f"{name} {_metavar(param, SETTINGS_DECLARED.get(param.name))}"


def option_help(param) -> str:
    """An option's help, with where its default comes from: the task preset for a
    hyperparameter, its own default otherwise (when it has one worth saying)."""
    text, default = param.help or "", param.default
    if isinstance(default, bool) and param.secondary_opts:
        return f"{text} [default: {'on' if default else 'off'}]"
    if default not in (None, False, (), []) and not param.is_flag:
        return f"{text} [default: {default}]"
    return text  # a hyperparameter's default is its task preset's (PRESET_NOTE)


class PanelledCommand(typer.core.TyperCommand):
    """A command whose --help groups its options in HELP_PANELS, each option's name whole
    and its description in the width that is left (80 columns: names of up to 23
    characters, descriptions of 50)."""

    def format_help(self, ctx, formatter) -> None:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        out = SafeConsole()
        params = [p for p in self.get_params(ctx) if p.param_type_name == "option"]
        by_name = {p.name: p for p in params}
        panels = {title: [by_name[n] for n in names if n in by_name]
                  for title, names in HELP_PANELS.items()}
        placed = {n for names in HELP_PANELS.values() for n in names}
        panels["Other"] = [p for p in params if p.name not in placed]
        width = max(len(option_label(p)) for p in params)
        out.print(Text(" ".join(self.get_usage(ctx).split()), style="bold"))
        out.print(Text(f"\n{(self.help or '').strip()}\n\n{PRESET_NOTE}\n"), soft_wrap=False)
        for title, members in panels.items():
            if not members:
                continue
            table = Table.grid(padding=(0, 2))
            table.add_column(no_wrap=True, width=width, style="cyan")
            table.add_column(ratio=1)
            for p in members:
                table.add_row(option_label(p), Text(option_help(p)))
            out.print(Panel(table, title=title, title_align="left", border_style="dim"))
