"""`evalkeeper listen`: the HTTP app (OTLP/HTTP traces on `POST /v1/traces`) under uvicorn.

Before it serves, it exits 2 with one line per problem (`evalkeeper.http.security`): a
configured secret that cannot be a key (webhook, rollback, redaction key, OTLP tokens), or a
non-loopback `--host` without `EVALKEEPER_OTLP_TOKENS` unless `--insecure-no-otlp-auth`
(then a warning is logged at start).

Completed traces go to a sink: by default the trace store, through
`evalkeeper.traces.ingest.make_trace_sink(settings)` (imported when the command starts; if
that module or function is not there, the command stops with a message saying so), or,
with `--jsonl PATH`, appended to a JSONL file in the trace JSONL form.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from evalkeeper.cli.app import WarehouseOpt, app, console, err_console, fail, load_settings
from evalkeeper.errors import InputError
from evalkeeper.http.app import TraceSink, create_app
from evalkeeper.http.security import exposure_problem, secret_problems
from evalkeeper.settings import Settings

INGEST_MODULE = "evalkeeper.traces.ingest"

log = logging.getLogger(__name__)


class SinkUnavailable(InputError, RuntimeError):
    """The default trace sink (the trace store) cannot be had; the message says what to do."""


def store_sink(settings: Settings) -> TraceSink:
    """The trace store's sink: `evalkeeper.traces.ingest.make_trace_sink(settings)`."""
    try:
        ingest = importlib.import_module(INGEST_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (INGEST_MODULE, "evalkeeper.traces"):
            raise
        raise SinkUnavailable(
            f"the trace store is not available ({INGEST_MODULE} is not installed); "
            "pass --jsonl PATH to append the traces to a JSONL file instead"
        ) from None
    make = getattr(ingest, "make_trace_sink", None)
    if make is None:
        raise SinkUnavailable(
            f"{INGEST_MODULE} has no make_trace_sink(settings) to store OTLP traces with; "
            "pass --jsonl PATH to append the traces to a JSONL file instead"
        )
    sink: TraceSink = make(settings)
    return sink


def jsonl_sink(path: Path) -> TraceSink:
    """Appends each trace as one JSON line to `path` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def append(lines: str) -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(lines)

    async def sink(traces: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(t, ensure_ascii=False, default=str) + "\n" for t in traces)
        await asyncio.to_thread(append, text)

    return sink


@app.command()
def listen(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (4318 is OTLP/HTTP's).")] = 4318,
    jsonl: Annotated[
        Path | None,
        typer.Option("--jsonl", help="Append completed traces to this JSONL file, not the store."),
    ] = None,
    warehouse: WarehouseOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    insecure_no_otlp_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-otlp-auth",
            help="Serve OTLP without tokens on a non-loopback address (anyone who reaches "
            "the port can send traces).",
        ),
    ] = False,
) -> None:
    """Receive OpenTelemetry traces (OTLP/HTTP, protobuf or JSON) on POST /v1/traces, the
    GenAI events sent as log records on POST /v1/logs (joined to their spans); POST
    /v1/metrics is accepted and discarded."""
    import uvicorn

    settings = load_settings(warehouse=warehouse)
    problems = secret_problems(settings)
    if not insecure_no_otlp_auth and (exposed := exposure_problem(host, settings)):
        problems.append(exposed)
    if problems:
        fail("\n".join(problems))
    if exposure_problem(host, settings) is not None:
        warning = (
            f"--insecure-no-otlp-auth: OTLP on {host}:{port} takes traces from anyone who "
            "reaches the port (set EVALKEEPER_OTLP_TOKENS)"
        )
        log.warning(warning)
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    try:
        sink = jsonl_sink(jsonl) if jsonl is not None else store_sink(settings)
    except SinkUnavailable as exc:
        fail(f"evalkeeper listen: {exc}")
    where = f"JSONL file {jsonl}" if jsonl is not None else f"trace store ({settings.warehouse})"
    console.print(
        f"[bold]evalkeeper listen[/]: OTLP/HTTP traces on http://{host}:{port}/v1/traces "
        f"(GenAI events on /v1/logs; /v1/metrics discarded) -> {where}; settle {settings.otlp.settle_s:g} s; "
        + ("bearer tokens required" if settings.otlp.tokens else "no token asked for"),
        highlight=False,
    )
    http_app = create_app(settings, trace_sink=sink)
    # what is loaded by now lives as long as the process: kept out of the garbage
    # collector's full passes, which then stay short under a burst of requests
    gc.collect()
    gc.freeze()
    # httptools parses HTTP/1.1 in C: a fraction of h11's cost per request (deploy bursts)
    uvicorn.run(http_app, host=host, port=port, log_level=log_level, http="httptools")
