"""The Typer application and shared CLI helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import typer
from rich.text import Text

from evalkeeper.exitcodes import (  # the codes, documented in evalkeeper/exitcodes.py
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_RUN_FAILED,
)
from evalkeeper.registry import UnknownEvaluator
from evalkeeper.report.output import FormatError, check_format, make_console
from evalkeeper.settings import Settings
from evalkeeper.settings_errors import SettingsInvalid, validated_settings

app = typer.Typer(
    name="evalkeeper",
    help="Evaluate LLM agents: suites, judges, a DuckDB score warehouse and a merge gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# the terminal's width on a terminal; never a wrapped or cut line when piped (CI, scripts)
console = make_console()
err_console = make_console(stderr=True)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_REGRESSION", "EXIT_RUN_FAILED"]

# Bad input from the user (dataset lines, target specs, evaluator names and arguments,
# experiment mismatches): reported as `error: <message>`, exit 2. All but an unknown
# evaluator name are ValueErrors.
INPUT_ERRORS = (ValueError, UnknownEvaluator)


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


def interrupted(experiment_id: str) -> NoReturn:
    fail(
        f"interrupted: the rows already written are kept; run the same command with "
        f"--experiment {experiment_id} to finish it",
        EXIT_INTERRUPTED,
    )


def main() -> None:
    app()
