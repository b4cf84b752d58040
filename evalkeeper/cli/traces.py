"""`evalkeeper traces ingest|list|show`: production traces into the warehouse, and back out.

`ingest` exits 0 when every line was read, 1 when some lines were bad (the good ones are
stored all the same; each bad line is printed as `path:line: problem`), 2 on an unusable
command (unknown source spec, missing path, locked warehouse, no redactor).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import polars as pl
import typer
from rich.table import Table
from rich.text import Text

from evalkeeper.cli.app import (
    EXIT_ERROR,
    EXIT_OK,
    WarehouseOpt,
    app,
    console,
    err_console,
    fail,
    load_settings,
)
from evalkeeper.report.output import emit_rows
from evalkeeper.settings import Settings
from evalkeeper.traces.batch import RedactionFailed
from evalkeeper.traces.content import missing_content
from evalkeeper.traces.ingest import IngestSummary, ingest
from evalkeeper.traces.model import Trace, iso_utc, to_utc
from evalkeeper.traces.sources import SourceError, open_source
from evalkeeper.traces.store import get_trace, list_traces
from evalkeeper.warehouse import WarehouseLocked

EXIT_BAD_LINES = 1
ERRORS_SHOWN = 5

traces_app = typer.Typer(
    name="traces",
    help="Production traces: ingest them (redacted) from a source, list and show them.",
    no_args_is_help=True,
)
app.add_typer(traces_app, name="traces")


def _progress(s: IngestSummary) -> None:
    err_console.print(
        f"[dim]{s.source}: read {s.read:,}, stored {s.stored:,}, bad lines {s.bad_lines:,} "
        f"({s.batches} batch(es))[/]",
        highlight=False,
        soft_wrap=True,
    )


def _bad_line(message: str) -> None:
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


def print_ingest_summary(s: IngestSummary) -> None:
    console.print(f"ingested [bold]{s.source}[/]", highlight=False, soft_wrap=True)
    console.print(
        f"  read {s.read:,}  stored {s.stored:,}  duplicates {s.duplicates:,}  "
        f"sampled out {s.sampled_out:,}  bad lines {s.bad_lines:,}",
        highlight=False,
    )
    if not s.read and not s.bad_lines:
        console.print(
            Text(
                f"  nothing new: {s.source} holds nothing past its cursor (where the last "
                "ingest stopped; each line is read once). Append traces to it and ingest "
                "again, or `evalkeeper traces list` shows what is stored"
            ),
            soft_wrap=True,
        )
    if s.redaction_fallbacks:
        console.print(
            f"[yellow]  {s.redaction_fallbacks} batch(es) redacted in this process: a redaction "
            "worker died (killed, or out of memory); see the log[/]"
        )
    if s.spooled:
        console.print(
            f"[yellow]  spooled {s.spooled:,}: the warehouse was locked by another process; "
            "they wait in the spool and are stored (duplicates dropped) by the next write[/]"
        )
    if s.empty_traces:
        console.print(
            f"[yellow]  {s.empty_traces:,} trace(s) without inputs or outputs "
            "(`traces list` marks them in its content column):[/]"
        )
        for w in s.warnings:
            console.print(f"  warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if s.bad_lines:
        console.print(f"[red]{s.bad_lines:,} bad line(s) skipped[/], the first:")
        for e in s.errors[:ERRORS_SHOWN]:
            console.print(f"  {e}", markup=False, highlight=False, soft_wrap=True)


@traces_app.command("ingest")
def ingest_command(
    source: Annotated[
        str,
        typer.Option(
            help="jsonl:PATH (a .jsonl file or a directory of *.jsonl files) or "
            "langsmith:PROJECT (root runs of a LangSmith project)."
        ),
    ],
    warehouse: WarehouseOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Traces per warehouse write.")] = 1000,
    output_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Read new traces from a source (from where the last ingest stopped), redact, sample
    and store them. Exit 0, 1 when some lines were bad (the rest is stored), 2 on error."""
    settings = load_settings(warehouse=warehouse)
    try:
        src = open_source(source, settings)
        summary = asyncio.run(
            ingest(
                settings,
                src,
                batch_size=batch_size,
                on_error=_bad_line,
                on_batch=_progress,
            )
        )
    except RedactionFailed as exc:  # not the user's input, but said in one line
        fail(str(exc))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("evalkeeper.traces."):
            raise
        fail(f"{exc.name} is missing, so traces cannot be redacted or sampled: nothing was stored")
    if summary.redaction_key_generated:
        err_console.print(
            "[yellow]generated a redaction key beside the warehouse (no EVALKEEPER_REDACTION_KEY "
            "set): keep it with the warehouse; tokens stay stable only while the key does[/]"
        )
    if output_json:
        print(summary.model_dump_json(indent=2))
    else:
        print_ingest_summary(summary)
    raise typer.Exit(EXIT_BAD_LINES if summary.bad_lines else EXIT_OK)


def _read_one(settings: Settings, spec: str, trace_id: str) -> Trace:
    """One trace read from a source that can read by id, redacted."""
    from evalkeeper.traces.batch import redact_trace
    from evalkeeper.traces.redaction import build_redactor

    src = open_source(spec, settings)
    read_run = getattr(src, "read_run", None)
    if read_run is None:
        raise SourceError(f"{spec}: cannot read one trace by id; use langsmith:PROJECT")
    trace = asyncio.run(read_run(trace_id))
    return redact_trace(trace, build_redactor(settings).redact_json)


# the flat columns of `list` as a table or CSV
ROW_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "trace_id": pl.String,
    "time": pl.String,
    "service": pl.String,
    "environment": pl.String,
    "version": pl.String,
    "model": pl.String,
    "latency_ms": pl.Float64,
    "tools": pl.String,
    "n_context": pl.Int64,
    "feedback": pl.Float64,
    "error": pl.String,
    "content": pl.String,  # "ok", or what the trace was stored without (capture off?)
}
TABLE_COLUMNS = (
    "trace_id", "time", "service", "version", "latency_ms", "tools", "error", "content",
)  # fmt: skip


def _row(t: Trace) -> dict[str, object]:
    return {
        "trace_id": t.trace_id,
        "time": iso_utc(t.time),
        "service": t.service,
        "environment": t.environment,
        "version": t.version,
        "model": t.model,
        "latency_ms": t.latency_ms,
        "tools": ",".join(c.name for c in t.tool_calls),
        "n_context": len(t.context),
        "feedback": None if t.feedback is None else t.feedback.score,
        "error": t.error,
        "content": _content(t),
    }


def _content(t: Trace) -> str:
    """`ok`, or `no inputs` / `no outputs` / `no inputs, outputs`: stored without them."""
    missing = missing_content(t.inputs, t.outputs, t.error)
    return f"no {', '.join(missing)}" if missing else "ok"


@traces_app.command("list")
def list_command(
    since: Annotated[
        str | None, typer.Option(help="Only traces from this time on (ISO 8601 with offset).")
    ] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    version: Annotated[str | None, typer.Option(help="Only this agent version.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    format: Annotated[str, typer.Option(help="table, csv, json or markdown.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """List stored traces, newest first (json: an array of full trace objects)."""
    if format not in ("table", "csv", "json", "markdown"):
        fail(f"--format {format!r}: use table, csv, json or markdown")
    try:
        start = None if since is None else to_utc(since)
    except ValueError as exc:
        fail(f"--since {since!r}: {exc}")
    settings = load_settings(warehouse=warehouse)
    try:
        traces = list_traces(settings, since=start, service=service, version=version, limit=limit)
    except WarehouseLocked as exc:
        fail(str(exc))
    if format == "json":
        print(json.dumps([t.to_json() for t in traces], indent=2, ensure_ascii=False))
        return
    frame = pl.DataFrame([_row(t) for t in traces], schema=ROW_SCHEMA)
    emit_rows(frame.select(TABLE_COLUMNS) if format in ("table", "markdown") else frame, format)


@traces_app.command("show")
def show_command(
    trace_id: Annotated[str, typer.Argument(help="The trace id.")],
    format: Annotated[str, typer.Option(help="json or table.")] = "json",
    warehouse: WarehouseOpt = None,
    source: Annotated[
        str | None,
        typer.Option(help="Read it from this source instead (langsmith:PROJECT), redacted."),
    ] = None,
) -> None:
    """Show one stored trace, every field (already redacted), or one run read from a
    source (`--source langsmith:PROJECT`), redacted before it is shown."""
    if format not in ("json", "table"):
        fail(f"--format {format!r}: use json or table")
    settings = load_settings(warehouse=warehouse)
    try:
        trace = (
            get_trace(settings, trace_id)
            if source is None
            else _read_one(settings, source, trace_id)
        )
    except (WarehouseLocked, SourceError) as exc:
        fail(str(exc))
    if trace is None:
        fail(
            f"unknown trace {trace_id!r} in {settings.warehouse}: `evalkeeper traces list` "
            "shows the stored ones (or ingest it with `evalkeeper traces ingest`)",
            EXIT_ERROR,
        )
    data = trace.to_json()
    if format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    t = Table(title=f"trace {trace.trace_id}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for key, value in data.items():
        shown = (
            json.dumps(value, indent=2, ensure_ascii=False)
            if isinstance(value, dict | list)
            else value
        )
        t.add_row(key, "" if shown is None else str(shown))
    console.print(t)
