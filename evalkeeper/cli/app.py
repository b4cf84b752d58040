"""The Typer application and shared CLI helpers."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text
from typer.core import TyperGroup

from evalkeeper.errors import InputError
from evalkeeper.exitcodes import (  # the codes, documented in evalkeeper/exitcodes.py
    EXIT_BUG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_RUN_FAILED,
)
from evalkeeper.report.output import FormatError, check_format, make_console
from evalkeeper.settings import Settings
from evalkeeper.settings_errors import SettingsInvalid, validated_settings


class Commands(TyperGroup):
    """The command group: whose fault an error is, said in this one place for every command.

    An `InputError` (the user's to fix) prints `error: <message>` and exits 2. Any other
    exception is a bug: its traceback goes to stderr and the exit code is `EXIT_BUG` (70),
    never 1 (a regression). `typer.Exit` codes, usage errors, Ctrl-C (130), end of input and
    a closed pipe pass through unchanged."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, EOFError, BrokenPipeError):
            raise  # exit codes, usage errors, end of input and a closed pipe: typer's way
        except InputError as exc:
            report_input_error(exc)
        except Exception as exc:
            report_bug(exc)


app = typer.Typer(
    name="evalkeeper",
    cls=Commands,
    help="Evaluate LLM agents: suites, judges, a DuckDB score warehouse and a merge gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: it wraps at word boundaries and never cuts an option's name
    # (rich's boxed help printed `--inconclusive-f…` on a narrow terminal or a pipe)
    rich_markup_mode=None,
)
# the terminal's width on a terminal; never a wrapped or cut line when piped (CI, scripts)
console = make_console()
err_console = make_console(stderr=True)

__all__ = [
    "EXIT_BUG",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "EXIT_RUN_FAILED",
]


def _package_version() -> str:
    try:
        return version("evalkeeper")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"evalkeeper {_package_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print evalkeeper's version and exit.",
        ),
    ] = False,
) -> None:
    """Evaluate LLM agents: suites, judges, a DuckDB score warehouse and a merge gate."""


WarehouseOpt = Annotated[
    Path | None, typer.Option("--warehouse", help="DuckDB file (default data/warehouse.duckdb).")
]
"""The `--warehouse` option every command that reads or writes the warehouse takes."""


def cli_option(field: str) -> str:
    """The command-line option a settings override came from (`baseline_branch` ->
    `--baseline-branch`)."""
    return "--" + field.replace("_", "-")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`, with explicit CLI overrides on top. A bad
    value exits 2 with one line per problem: `error: EVALKEEPER_CONCURRENCY=0: must be at
    least 1 (…)`, or `error: --lock-wait-s=…` for an option."""
    try:
        return validated_settings(overrides, cli_option)
    except SettingsInvalid as exc:
        for line in exc.problems:
            _print_error(line)
        raise typer.Exit(EXIT_ERROR) from None


def _print_error(message: str) -> None:
    # the message is text, never markup: `[[evaluators]]` or `[1, 2]` print as written
    err_console.print(Text("error:", style="bold red"), Text(message), soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def output_format(value: str, allowed: Sequence[str]) -> str:
    """The `--format` value, or exit 2: `error: --format 'x': use table, csv or json`."""
    try:
        return check_format(value, allowed)
    except FormatError as exc:
        fail(str(exc))


def message_of(exc: BaseException) -> str:
    """The message an exception was raised with (KeyError's str() adds quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def report_input_error(exc: InputError) -> NoReturn:
    """The user's mistake: `error: <message>` (one line per settings problem), exit 2."""
    if isinstance(exc, SettingsInvalid):
        for line in exc.problems:
            _print_error(line)
        raise typer.Exit(EXIT_ERROR)
    fail(message_of(exc))


def report_bug(exc: Exception) -> NoReturn:
    """A bug (in evalkeeper, or in a target or evaluator it ran): the traceback on stderr,
    then one line that says so; exit `EXIT_BUG`, never 1 (a regression)."""
    traceback.print_exception(exc)
    _print_error(
        f"{type(exc).__name__} is not an input error but a bug (in evalkeeper, or in the code "
        f"it ran): please report it with the traceback above (exit {EXIT_BUG})"
    )
    raise typer.Exit(EXIT_BUG)


def interrupted(experiment_id: str) -> NoReturn:
    fail(
        f"interrupted: the rows already written are kept; run the same command with "
        f"--experiment {experiment_id} to finish it",
        EXIT_INTERRUPTED,
    )


def main() -> None:
    app()
