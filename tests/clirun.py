"""The one way tests run `warmup-bench` in-process: Typer's CliRunner on the real app.

Click's runner keeps stdout and stderr apart (`result.stdout`, `result.stderr`) and shows
both, interleaved, as `result.output`. Every call gets the same wide terminal, so what a
test reads never depends on the terminal that runs pytest; `env` adds to it (or overrides
it), and any other keyword (`input`, `catch_exceptions`) goes to the runner."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from warmup_bench.cli import app

COLUMNS = 400  # wide enough that no table, path or message of the tests wraps


def invoke(*args: object, clean: bool = False, env: dict[str, str] | None = None,
           **kwargs) -> Result:
    """`warmup-bench ARGS...` (each argument str()-ed), run in this process. `clean`: also
    assert that the command ended by exiting (its message, any code), never by an uncaught
    exception."""
    result = CliRunner().invoke(app, [str(a) for a in args],
                                env={"COLUMNS": str(COLUMNS), **(env or {})}, **kwargs)
    if clean:
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{args}: {result.exception!r}"
    return result
