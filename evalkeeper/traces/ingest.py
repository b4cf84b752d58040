"""Ingest: source -> sample -> redact -> store, in batches, from the stored cursor on.

Every text a trace carries that a user or the agent wrote (inputs, outputs, tool call
arguments, context texts, metadata, the feedback comment, the error) goes through the
redaction function before the trace is written anywhere: the warehouse, the spool, a log
line or the terminal. Sampling keeps a trace by a keyed hash of its id alone, so it is
applied first: a trace sampled out is never redacted, stored or shown. Bad lines are
counted, handed to `on_error` one by one, and the first few kept in the summary; they
never stop the good lines around them from being stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from evalkeeper.settings import Settings
from evalkeeper.traces.batch import Redact, batch_redaction
from evalkeeper.traces.content import EmptyTraces
from evalkeeper.traces.model import Trace, describe
from evalkeeper.traces.sources import TraceSource
from evalkeeper.traces.store import load_cursor, write_traces
from evalkeeper.warehouse import Warehouse

Sample = Callable[[str], bool]
"""Takes a trace id; True keeps the trace."""

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
ERRORS_KEPT = 20


class IngestSummary(BaseModel):
    """What one ingest did."""

    source: str = Field(description="The source spec (its cursor's key).")
    read: int = Field(0, description="Traces parsed from the source.")
    stored: int = Field(0, description="Traces new in the warehouse.")
    duplicates: int = Field(0, description="Traces already stored (same trace_id): ignored.")
    sampled_out: int = Field(0, description="Traces left out by sampling.")
    spooled: int = Field(
        0, description="Traces written to the spool (warehouse locked); counted there later."
    )
    bad_lines: int = Field(0, description="Lines that could not be read (see `errors`).")
    errors: list[str] = Field(
        default_factory=list, description=f"The first {ERRORS_KEPT} bad lines, `path:line: …`."
    )
    batches: int = Field(0, description="Warehouse writes (one per batch, cursor included).")
    redaction_key_generated: bool = Field(
        False, description="This ingest generated the redaction key (none was configured)."
    )
    redaction_fallbacks: int = Field(
        0,
        description="Batches redacted in the ingesting process because a redaction worker "
        "process died (see EVALKEEPER_REDACTION_WORKERS).",
    )
    empty_traces: int = Field(
        0,
        description="Traces taken in without inputs, or without outputs on a run that did "
        "not fail (content capture off in the instrumentation?).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="One per service with empty traces: the likely cause and the setting "
        "that fixes it.",
    )


def default_sample(settings: Settings) -> Sample | None:
    """Keyed-hash sampling at `trace_sample_rate` under the redaction key (configured, or
    generated beside the warehouse); None (keep every trace) at 1.0."""
    rate = settings.redaction.sample_rate
    if rate >= 1.0:
        return None
    from evalkeeper.traces.keys import resolve_key
    from evalkeeper.traces.sampling import sampled

    key = resolve_key(settings).secret
    return lambda trace_id: sampled(trace_id, rate, key)


async def ingest(
    settings: Settings,
    source: TraceSource,
    *,
    redact: Redact | None = None,
    sample: Sample | None = None,
    batch_size: int = BATCH_SIZE,
    on_error: Callable[[str], None] | None = None,
    on_batch: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Read `source` from its stored cursor to its end, storing redacted traces in batches
    of `batch_size` (each with the cursor after it). `redact` defaults to the configured
    redactor, in worker processes for long ingests (`evalkeeper.traces.batch`), `sample`
    to keyed-hash sampling at `settings.redaction.sample_rate` (none at 1.0)."""
    summary = IngestSummary(source=source.spec)
    redaction = batch_redaction(settings, redact)
    summary.redaction_key_generated = redaction.notice is not None
    empty = EmptyTraces("ingest", log_warnings=False)
    try:
        sample = sample or default_sample(settings)
        wh = Warehouse.from_settings(settings)
        cursor = await asyncio.to_thread(load_cursor, wh, source.spec)
        wait = True  # once a batch found the warehouse locked, the next ones spool at once
        while True:
            traces, errors, new_cursor = await source.read(cursor, max_traces=batch_size)
            summary.read += len(traces)
            summary.bad_lines += len(errors)
            for e in errors:
                if len(summary.errors) < ERRORS_KEPT:
                    summary.errors.append(e)
                if on_error:
                    on_error(e)
            if not traces and not errors and new_cursor == cursor:
                break
            kept = [t for t in traces if sample(t.trace_id)] if sample else traces
            summary.sampled_out += len(traces) - len(kept)
            for t in kept:
                empty.see(
                    {"trace_id": t.trace_id, "service": t.service, "inputs": t.inputs,
                     "outputs": t.outputs, "error": t.error, "metadata": t.metadata}
                )  # fmt: skip
            summary.empty_traces = empty.total
            summary.warnings = list(empty.warnings.values())
            clean = await redaction.aredact(kept)
            summary.redaction_fallbacks = redaction.fallbacks
            written = await asyncio.to_thread(
                write_traces, wh, clean, source.spec, new_cursor, wait=wait
            )
            summary.batches += 1
            summary.stored += written.stored
            summary.duplicates += written.duplicates
            summary.spooled += written.spooled
            wait = wait and not written.locked
            cursor = new_cursor
            if on_batch:
                on_batch(summary)
            if not traces and not errors:  # only the cursor moved (a new empty file, blanks)
                break
    finally:
        redaction.close()
    return summary


# -- the OTLP sink of `evalkeeper listen` ------------------------------------------------

OTLP_SOURCE = "otlp"
"""The `source` column (and cursor key) of traces received over OTLP/HTTP."""


class SinkStats(BaseModel):
    """What the trace-store sink did since the app started."""

    received: int = Field(0, description="Traces handed to the sink by the receiver.")
    stored: int = Field(0, description="Traces new in the warehouse.")
    duplicates: int = Field(0, description="Traces already stored (same trace_id): ignored.")
    sampled_out: int = Field(0, description="Traces left out by sampling.")
    invalid: int = Field(0, description="Traces that are not valid trace JSONL form: counted.")
    spooled: int = Field(0, description="Traces spooled while the warehouse was locked.")
    batches: int = Field(0, description="Warehouse writes.")
    redaction_fallbacks: int = Field(
        0, description="Batches redacted in this process because a redaction worker died."
    )
    errors: list[str] = Field(
        default_factory=list, description=f"The first {ERRORS_KEPT} invalid traces, why."
    )


class TraceStoreSink:
    """An async trace sink (`TraceSink`) into the trace store: each batch of trace dicts is
    validated into `Trace`s, sampled, redacted and written in one warehouse batch (under
    source `otlp`, with a cursor counting what was received). Invalid traces are counted
    (`stats.invalid`) and logged by id and field, never by value; a failed write raises, and
    the receiver counts those traces as failed. The CPU work and the write run in a thread,
    so the receiver keeps answering exports meanwhile."""

    def __init__(
        self,
        settings: Settings,
        *,
        redact: Redact | None = None,
        sample: Sample | None = None,
        batch_size: int = BATCH_SIZE,
        source: str = OTLP_SOURCE,
    ) -> None:
        self.settings = settings
        self.source = source
        self.batch_size = batch_size
        self.redaction = batch_redaction(settings, redact)
        if notice := self.redaction.notice:
            log.warning("%s", notice)
        self.sample = sample or default_sample(settings)
        self.wh = Warehouse.from_settings(settings)
        self.stats = SinkStats()
        self._wait = True
        self._lock = asyncio.Lock()  # one write at a time, in order

    async def __call__(self, traces: list[dict[str, Any]]) -> None:
        async with self._lock:
            await asyncio.to_thread(self._store, traces)

    async def aclose(self) -> None:
        """Stop the redaction workers (the app calls this at shutdown)."""
        await asyncio.to_thread(self.redaction.close)

    def _store(self, raw: list[dict[str, Any]]) -> None:
        stats = self.stats
        stats.received += len(raw)
        valid: list[Trace] = []
        for data in raw:
            try:
                valid.append(Trace.model_validate(data))
            except ValidationError as exc:
                stats.invalid += 1
                tid = data.get("trace_id") if isinstance(data, dict) else None
                message = f"{self.source} trace {tid!s:.64}: {describe(exc)}"
                if len(stats.errors) < ERRORS_KEPT:
                    stats.errors.append(message)
                log.warning("trace sink: not stored: %s", message)
        kept = [t for t in valid if self.sample(t.trace_id)] if self.sample else valid
        stats.sampled_out += len(valid) - len(kept)
        for start in range(0, len(kept), self.batch_size):
            clean = self.redaction.redact(kept[start : start + self.batch_size])
            stats.redaction_fallbacks = self.redaction.fallbacks
            cursor = {"received": stats.received}
            written = write_traces(self.wh, clean, self.source, cursor, wait=self._wait)
            stats.batches += 1
            stats.stored += written.stored
            stats.duplicates += written.duplicates
            stats.spooled += written.spooled
            self._wait = not written.locked  # after a spooled batch, try once without waiting


def make_trace_sink(settings: Settings, **options: Any) -> TraceStoreSink:
    """The default sink of `evalkeeper listen`: received traces into the trace store,
    validated, sampled, redacted (see `TraceStoreSink`; `options` are its keywords)."""
    return TraceStoreSink(settings, **options)
