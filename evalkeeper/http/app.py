"""The FastAPI app of `evalkeeper listen`: `POST /v1/traces`, `POST /v1/logs` (the GenAI
events sent as log records, joined to their spans) and `POST /v1/metrics` (accepted and
discarded) over OTLP/HTTP, the deploy
webhooks `POST /hooks/deploy` and `POST /hooks/github` (`evalkeeper.http.webhooks`, the
deploys they accept kept by `evalkeeper.monitor.intake`), and `GET /health`.

`create_app(settings, trace_sink=...)` answers like an OpenTelemetry collector: 200 with an
`ExportTraceServiceResponse` (a partial success naming how many spans were rejected and
why), 400 for a body that cannot be read, 413 over `settings.otlp.max_body_bytes`, 415 for
a content type or encoding other than protobuf/JSON and gzip, 401 without one of the
bearer tokens of `EVALKEEPER_OTLP_TOKENS` when set (`evalkeeper.http.security`), 429 with
`Retry-After` when the trace buffer (`settings.otlp.max_buffer_bytes`) is full; errors carry a
`google.rpc.Status`, in the request's encoding. Spans go to an `Assembler`; a background
task hands each completed trace, mapped to the trace JSONL form, to the injected
`trace_sink(traces)`, and at shutdown every open trace is flushed to it. A sink that fails
is logged and counted (`GET /health`: `sink.failed_traces`), never passed over in silence;
so is a trace mapped without inputs or outputs (`GET /health`: `content`; one warning per
service naming the instrumentation setting that turns content capture on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, Request, Response

from evalkeeper.http.asgi import ASGIApp, Receive, Scope, Send, read_body
from evalkeeper.http.security import OtlpAuth
from evalkeeper.http.webhooks import DEPLOY_PATH, DeployWebhooks
from evalkeeper.models import utcnow
from evalkeeper.monitor.intake import DeployIntake
from evalkeeper.monitor.rollback import EventEmitter
from evalkeeper.settings import Settings
from evalkeeper.traces.content import EmptyTraces, mark_empty
from evalkeeper.traces.otlp import (
    JSON,
    Assembler,
    BodyTooLarge,
    BufferFull,
    DecodedExport,
    DecodedLogs,
    ExportError,
    Span,
    UnsupportedMediaType,
    decode_export,
    decode_logs,
    encode_logs_response,
    encode_response,
    encode_status,
    map_trace,
    media_type,
    span_cost,
)

__all__ = ["TraceSink", "create_app"]

TraceSink = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Receives completed traces (trace JSONL form dicts), a batch at a time."""

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# google.rpc.Code values used in error answers
_RPC_CODE = {400: 3, 413: 8, 415: 3, 429: 8}  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED


def create_app(
    settings: Settings,
    *,
    trace_sink: TraceSink,
    clock: Callable[[], float] = time.monotonic,
    tick_s: float | None = None,
    emitter: EventEmitter | Literal["auto"] | None = "auto",
    first_tick: bool = True,
    tick_clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The ASGI app; `trace_sink` receives every completed trace. The deploy webhooks
    (`evalkeeper.http.webhooks`) emit their events with `emitter` (by default to the
    configured Prefect API, if any); without one a new window's first tick runs here, as of
    `tick_clock()`, unless `first_tick` is False."""
    assembler = Assembler(
        settle_s=settings.otlp.settle_s,
        root_wait_s=settings.otlp.root_wait_s,
        max_open_traces=settings.otlp.max_open_traces,
        max_spans_per_trace=settings.otlp.max_spans_per_trace,
        max_buffer_bytes=settings.otlp.max_buffer_bytes,
        clock=clock,
    )
    delivery = _Delivery(trace_sink, assembler)
    other = _OtherCounts()
    tick = tick_s if tick_s is not None else min(0.5, max(0.05, settings.otlp.settle_s / 4))
    max_bytes = settings.otlp.max_body_bytes

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        delivering: list[asyncio.Future[None]] = []

        async def completing() -> None:
            while True:
                await asyncio.sleep(tick)
                if ready := assembler.due():
                    # shielded: a shutdown lets it finish (traces handed out are stored)
                    delivering[:] = [asyncio.ensure_future(delivery.deliver(ready))]
                    await asyncio.shield(delivering[0])

        task = asyncio.create_task(completing(), name="otlp-complete-traces")
        if settings.monitor.webhook_secret is not None:
            try:  # recover the deploy journal and load the webhooks' index now
                await intake.start()
            except Exception:
                log.exception("deploy webhooks: start failed; the first request retries it")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for under_way in delivering:
                await under_way
            if rest := assembler.flush():
                log.info("OTLP: flushing %d open trace(s) at shutdown", len(rest))
                await delivery.deliver(rest)
            if (close := getattr(trace_sink, "aclose", None)) is not None:
                await close()  # the sink's own resources (the trace store's redaction workers)
            await intake.aclose()

    app = _App(title="evalkeeper", lifespan=lifespan)
    app.state.assembler = assembler
    app.state.delivery = delivery
    if emitter == "auto":
        from tasks.events import prefect_emitter  # the Prefect side, imported by the faces

        emitter = prefect_emitter(settings)
    intake = DeployIntake(settings, emitter=emitter, first_tick=first_tick, tick_clock=tick_clock)
    hooks = DeployWebhooks(settings, intake)
    hooks.add_routes(app)
    app.bare_routes[DEPLOY_PATH] = hooks.deploy
    app.state.webhooks = hooks
    otlp_auth = OtlpAuth(settings.otlp.tokens)

    async def receive_export(
        request: Request,
        decode: Callable[[bytes, str | None, str | None, int], _T],
        take: Callable[[str, _T], Response],
    ) -> Response:
        """One OTLP/HTTP export, the same for every signal: bearer token, media type, the
        body read within the byte limits (held in the trace buffer while it is read and
        decoded), then `take(kind, decoded)`; an `ExportError` is answered as such."""
        intake.busy()
        if (refused := otlp_auth.refusal(request.headers)) is not None:
            return refused  # before the body is read: nothing of it is kept
        try:
            kind = media_type(request.headers.get("content-type"))
        except UnsupportedMediaType as exc:
            return _error(JSON, exc)
        declared = request.headers.get("content-length") or ""
        reserved = min(int(declared), max_bytes) if declared.isdigit() else max_bytes
        try:
            assembler.reserve(reserved)  # BufferFull (429) when the trace buffer is full
            try:
                decoded = decode(
                    await read_body(
                        declared,
                        request.stream(),
                        max_bytes,
                        lambda size: _too_large(size, max_bytes),
                    ),
                    request.headers.get("content-type"),
                    request.headers.get("content-encoding"),
                    max_bytes,
                )
            finally:
                assembler.unreserve(reserved)
            return take(kind, decoded)  # BufferFull: nothing of it taken
        except ExportError as exc:
            return _error(kind, exc)

    @app.post("/v1/traces")
    async def export_traces(request: Request) -> Response:
        return await receive_export(
            request,
            lambda body, ctype, enc, limit: decode_export(body, ctype, enc, max_bytes=limit),
            take_spans,
        )

    def take_spans(kind: str, export: DecodedExport) -> Response:
        added = assembler.add(export.spans)
        rejected = export.rejected + added.rejected + added.late
        messages = []
        if export.rejected:
            messages.append(
                f"{export.rejected} span(s) without a valid trace or span id were rejected "
                f"({'; '.join(export.reasons)})"
            )
        if extra := added.message(assembler.max_spans_per_trace, assembler.settle_s):
            messages.append(extra)
        return Response(
            encode_response(kind, rejected, "; ".join(messages)), media_type=kind, status_code=200
        )

    @app.post("/v1/logs")
    async def export_logs(request: Request) -> Response:
        return await receive_export(
            request,
            lambda body, ctype, enc, limit: decode_logs(body, ctype, enc, max_bytes=limit),
            take_records,
        )

    def take_records(kind: str, export: DecodedLogs) -> Response:
        added = assembler.add_records(export.records)
        other.ignored_log_records += export.ignored
        other.rejected_log_records += export.rejected
        rejected = export.rejected + added.rejected + added.late
        messages = []
        if export.rejected:
            messages.append(
                f"{export.rejected} GenAI log record(s) without a valid trace or span id were "
                f"rejected: they cannot be joined to a span ({'; '.join(export.reasons)})"
            )
        if extra := added.message(assembler.max_records_per_trace, assembler.settle_s):
            messages.append(extra)
        return Response(
            encode_logs_response(kind, rejected, "; ".join(messages)),
            media_type=kind,
            status_code=200,
        )

    @app.post("/v1/metrics")
    async def export_metrics(request: Request) -> Response:
        """Accepted and discarded (instrumentations export metrics by default; evalkeeper
        keeps none): an empty `ExportMetricsServiceResponse` (no body in protobuf, `{}`)."""

        def take(kind: str, _: None) -> Response:
            other.metrics_exports_discarded += 1
            return Response(b"" if kind != JSON else b"{}", media_type=kind, status_code=200)

        return await receive_export(request, lambda *_: None, take)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        intake.busy()
        return {
            "status": "ok",
            "open_traces": assembler.open_traces,
            "open_spans": assembler.open_spans,
            "buffer": assembler.buffer_counts(),
            "assembler": assembler.stats.as_dict(),
            "open_log_records": assembler.open_log_records,
            "otlp_other": other.as_dict(),
            "sink": delivery.counts(),
            "content": delivery.empty.counts(),
            # a sink that keeps its own counters (the trace store's: stored, invalid, …)
            **({"store": stats.model_dump()} if (stats := _sink_stats(trace_sink)) else {}),
            "webhooks": hooks.counts(),
        }

    return app


class _App(FastAPI):
    """FastAPI, with `bare_routes`: path -> an ASGI app answering every request to that
    path before the framework's middleware and router (the deploy webhook, sent in bursts)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bare_routes: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bare = self.bare_routes.get(scope["path"])
            if bare is not None:
                await bare(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _sink_stats(sink: TraceSink) -> Any:
    stats = getattr(sink, "stats", None)
    return stats if hasattr(stats, "model_dump") else None


def _too_large(size: int, max_bytes: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"the body is over {max_bytes:,} bytes ({size:,} or more); export smaller batches "
        "or raise EVALKEEPER_OTLP_MAX_BODY_BYTES"
    )


def _error(kind: str, exc: ExportError) -> Response:
    log.info("OTLP export refused (%d): %s", exc.status_code, exc)
    code = _RPC_CODE.get(exc.status_code, 3)
    # OTLP/HTTP throttling: 429 with the seconds to wait, which exporters honour
    retry = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, BufferFull) else None
    return Response(
        encode_status(kind, code, str(exc)),
        status_code=exc.status_code,
        media_type=kind,
        headers=retry,
    )


@dataclass(slots=True)
class _OtherCounts:
    """What the logs and metrics paths took in besides the assembler's counts."""

    ignored_log_records: int = 0  # log records that are not GenAI events (application logs)
    rejected_log_records: int = 0  # GenAI events without a valid trace or span id
    metrics_exports_discarded: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Delivery:
    """Maps completed traces and hands them to the sink, a part of the trace buffer at a
    time (so the copies made on the way stay small), counting what could not be; the
    assembler's memory of each part is released once the sink is done with it."""

    def __init__(self, sink: TraceSink, assembler: Assembler) -> None:
        self.sink = sink
        self.assembler = assembler
        self.part_bytes = max(1, assembler.max_buffer_bytes // 8)
        self.delivered = 0
        self.failed_traces = 0
        self.map_errors = 0
        self.last_error: str | None = None
        self.empty = EmptyTraces()

    async def deliver(self, ready: list[list[Span]]) -> None:
        part: list[list[Span]] = []
        size = 0
        for spans in ready:
            part.append(spans)
            size += sum(span_cost(s) for s in spans)
            if size >= self.part_bytes:
                await self._deliver_part(part)
                part, size = [], 0
        if part:
            await self._deliver_part(part)

    async def _deliver_part(self, ready: list[list[Span]]) -> None:
        try:
            await self._map_and_sink(ready)
        finally:
            self.assembler.release(ready)

    async def _map_and_sink(self, ready: list[list[Span]]) -> None:
        traces = []
        for spans in ready:
            try:
                trace = map_trace(spans)
                mark_empty(trace, spans)
                self.empty.see(trace)
                traces.append(trace)
            except Exception as exc:  # a mapping bug must not stop the receiver
                self.map_errors += 1
                self.last_error = f"trace {spans[0].trace_id if spans else '?'}: {exc!r}"
                log.exception("OTLP: could not map trace %s", spans[0].trace_id if spans else "?")
        if not traces:
            return
        try:
            await self.sink(traces)
        except Exception as exc:
            self.failed_traces += len(traces)
            self.last_error = f"sink: {exc!r}"
            log.exception("OTLP: the trace sink failed; %d trace(s) not stored", len(traces))
        else:
            self.delivered += len(traces)

    def counts(self) -> dict[str, Any]:
        return {
            "delivered_traces": self.delivered,
            "failed_traces": self.failed_traces,
            "map_errors": self.map_errors,
            "last_error": self.last_error,
        }
