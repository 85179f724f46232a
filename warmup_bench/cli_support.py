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
