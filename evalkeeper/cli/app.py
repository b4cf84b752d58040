"""The Typer application and shared CLI helpers."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from evalkeeper.exitcodes import (  # the codes, documented in evalkeeper/exitcodes.py
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_RUN_FAILED,
)
from evalkeeper.registry import UnknownEvaluator
from evalkeeper.settings import Settings

app = typer.Typer(
    name="evalkeeper",
    help="Evaluate LLM agents: suites, judges, a DuckDB score warehouse and a merge gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_REGRESSION", "EXIT_RUN_FAILED"]

# Bad input from the user (dataset lines, target specs, evaluator names and arguments,
# experiment mismatches): reported as `error: <message>`, exit 2. All but an unknown
# evaluator name are ValueErrors.
INPUT_ERRORS = (ValueError, UnknownEvaluator)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`, with explicit CLI overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err_console.print("[bold red]error:[/]", message, highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


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
