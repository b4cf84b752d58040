"""One trace by id, redacted: from the trace store, or read from a source and redacted.

`promote` and `replay` start from a trace id. The stored trace was redacted when it was
ingested; a trace read straight from a source (`--source jsonl:PATH`, or another
registered kind) is redacted here with the configured redactor before anyone sees it.
"""

from __future__ import annotations

import asyncio

from evalkeeper.errors import InputError
from evalkeeper.settings import Settings
from evalkeeper.traces.batch import redact_trace
from evalkeeper.traces.model import Trace
from evalkeeper.traces.sources import TraceSource, open_source
from evalkeeper.traces.store import get_trace

__all__ = ["TraceNotFound", "find_in_source", "load_trace"]

SCAN_BATCH = 5000


class TraceNotFound(InputError, LookupError):
    """No trace with that id where it was looked for; the message says where to look."""


async def find_in_source(source: TraceSource, trace_id: str) -> Trace | None:
    """The first trace with `trace_id` in `source`, read from its start (raw: not redacted).
    Bad lines on the way are skipped: they cannot be the trace asked for."""
    cursor = None
    while True:
        traces, errors, new_cursor = await source.read(cursor, max_traces=SCAN_BATCH)
        for trace in traces:
            if trace.trace_id == trace_id:
                return trace
        if (not traces and not errors) or new_cursor == cursor:
            return None
        cursor = new_cursor


async def load_trace(settings: Settings, trace_id: str, source: str | None = None) -> Trace:
    """The redacted trace `trace_id`: from the store, or (with `source`, a spec) from that
    source, redacted with `build_redactor(settings)`."""
    if source is None:
        stored = await asyncio.to_thread(get_trace, settings, trace_id)
        if stored is None:
            raise TraceNotFound(
                f"unknown trace {trace_id!r} in {settings.warehouse}: `evalkeeper traces list` "
                "shows the stored ones; ingest it first (`evalkeeper traces ingest --source "
                "jsonl:PATH`) or read it from its source with --source SPEC"
            )
        return stored
    raw = await find_in_source(open_source(source, settings), trace_id)
    if raw is None:
        raise TraceNotFound(
            f"no trace {trace_id!r} in {source}: check the id (`evalkeeper traces list`) "
            "or the source"
        )
    from evalkeeper.traces.redaction import build_redactor

    return redact_trace(raw, build_redactor(settings).redact_json)
