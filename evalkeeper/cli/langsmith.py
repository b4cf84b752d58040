"""LangSmith commands: `datasets pull|push|list` and `upload EXPERIMENT`; the `--upload` of
`run` and `gate` calls `upload_or_report`. Optional: without LangSmith settings they say
what to set and exit 2.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import polars as pl
import typer
from rich.text import Text

from evalkeeper.cli.app import (
    EXIT_ERROR,
    WarehouseOpt,
    app,
    console,
    err_console,
    fail,
    load_settings,
)
from evalkeeper.exitcodes import EXIT_UPLOAD_FAILED
from evalkeeper.integrations.langsmith.client import LangSmithError
from evalkeeper.integrations.langsmith.datasets import (
    SyncConflict,
    SyncReport,
    list_datasets,
    pull,
    push,
)
from evalkeeper.integrations.langsmith.experiments import UploadSummary, upload
from evalkeeper.report.output import ROW_FORMATS, emit_rows
from evalkeeper.settings import Settings

datasets_app = typer.Typer(
    name="datasets",
    help="Datasets: list local and LangSmith ones; pull and push them (LangSmith sync).",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")

ForceOpt = Annotated[
    bool, typer.Option("--force", help="Overwrite edits on the written side not synced yet.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
SHOWN_IDS = 10


def _ids(ids: list[str]) -> str:
    more = f" … and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(ids[:SHOWN_IDS]) + more


def print_sync(report: SyncReport) -> None:
    where = report.path if report.direction == "pull" else f"LangSmith {report.remote_id}"
    console.print(
        f"{report.direction}ed [bold]{report.dataset}[/] -> {where}"
        + (" (created)" if report.created else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"  added {len(report.added)}  changed {len(report.changed)}  removed "
        f"{len(report.removed)}  moved {report.moved}  unchanged {report.unchanged}  version {report.version}",
        highlight=False,
    )
    for label, ids in (("added", report.added), ("changed", report.changed)):
        if ids:
            console.print(f"  {label}: {_ids(ids)}", markup=False, highlight=False)
    if report.removed:
        console.print(f"  removed: {_ids(report.removed)}", markup=False, highlight=False)


def _sync(direction: str, name: str, force: bool, output_json: bool) -> None:
    settings = load_settings()
    action = pull if direction == "pull" else push
    try:
        report = asyncio.run(action(settings, name, force=force))
    except SyncConflict as exc:
        fail(str(exc), EXIT_ERROR)
    except LangSmithError as exc:
        fail(str(exc))
    if output_json:
        print(report.model_dump_json(indent=2))
    else:
        print_sync(report)


@datasets_app.command("pull")
def pull_command(
    name: Annotated[str, typer.Argument(help="The LangSmith dataset (and local file) name.")],
    force: ForceOpt = False,
    output_json: JsonOpt = False,
) -> None:
    """Write LangSmith dataset NAME to data/datasets/NAME.jsonl (ids and metadata kept).

    Refuses to overwrite local edits not pushed yet, unless --force. Exit 0, 2 on error."""
    _sync("pull", name, force, output_json)


@datasets_app.command("push")
def push_command(
    name: Annotated[str, typer.Argument(help="The local dataset (and LangSmith) name.")],
    force: ForceOpt = False,
    output_json: JsonOpt = False,
) -> None:
    """Make LangSmith dataset NAME hold data/datasets/NAME.jsonl (created when missing).

    Refuses to overwrite LangSmith edits not pulled yet, unless --force. Exit 0, 2 on error."""
    _sync("push", name, force, output_json)


@datasets_app.command("list")
def list_command(
    local: Annotated[
        bool, typer.Option("--local", help="Only the local datasets (no LangSmith call).")
    ] = False,
    format: Annotated[str, typer.Option(help="table, csv, json or markdown.")] = "table",
) -> None:
    """Local datasets and, when LangSmith is configured, the remote ones, with sync state."""
    if format not in ROW_FORMATS:
        fail(f"--format {format!r}: use table, csv, json or markdown")
    settings = load_settings()
    from evalkeeper.integrations.langsmith.client import configured

    remote = not local and configured(settings)
    try:
        rows = asyncio.run(list_datasets(settings, remote=remote))
    except LangSmithError as exc:
        fail(str(exc))
    frame = pl.DataFrame(
        [r.model_dump(mode="json") for r in rows],
        schema={
            "name": pl.String,
            "local_examples": pl.Int64,
            "local_version": pl.String,
            "remote_examples": pl.Int64,
            "remote_id": pl.String,
            "synced_at": pl.String,
            "status": pl.String,
        },
    )
    emit_rows(frame, format, title=f"datasets in {settings.datasets_dir}", console=console)
    if not remote and not local and format == "table":
        err_console.print(
            "[dim]LangSmith not configured (EVALKEEPER_LANGSMITH_API_KEY): local datasets only[/]"
        )


# -- experiment upload -------------------------------------------------------------------------


def print_upload(s: UploadSummary) -> None:
    err_console.print(
        f"LangSmith experiment [bold]{s.project}[/] ({s.project_id}): runs sent "
        f"{s.runs_created} (held {s.runs_existing}), feedback sent {s.feedback_created} "
        f"(held {s.feedback_existing}; {s.errors_as_feedback} evaluator errors, "
        f"{s.skipped_scores} skipped not sent)"
        + ("; dataset created in LangSmith" if s.dataset_created else ""),
        highlight=False,
        soft_wrap=True,
    )


def upload_or_report(settings: Settings, experiment_id: str) -> bool:
    """Upload after a run; print what happened on stderr; False when it failed."""
    try:
        summary = asyncio.run(upload(settings, experiment_id))
    except LangSmithError as exc:
        err_console.print(Text("upload failed:", style="bold red"), Text(str(exc)), soft_wrap=True)
        return False
    print_upload(summary)
    return True


@app.command("upload")
def upload_command(
    experiment: Annotated[str, typer.Argument(help="The experiment id to upload.")],
    warehouse: WarehouseOpt = None,
    output_json: JsonOpt = False,
) -> None:
    """Record an experiment in LangSmith: an experiment on its dataset, one run per example
    and repetition, one feedback entry per score. Idempotent. Exit 0, 4 when it failed."""
    settings = load_settings(warehouse=warehouse)
    try:
        summary = asyncio.run(upload(settings, experiment))
    except LangSmithError as exc:
        fail(str(exc), EXIT_UPLOAD_FAILED)
    if output_json:
        print(summary.model_dump_json(indent=2))
    else:
        print_upload(summary)
