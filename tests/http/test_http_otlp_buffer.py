"""The trace buffer's byte limit: an export that does not fit is told to retry (429 with
`Retry-After`, OTLP/HTTP throttling), nothing of it is taken, and every export accepted is
stored; retried once the buffer has room, it is stored too."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from evalkeeper.http import create_app
from evalkeeper.settings import Settings
from tests.otlp_helpers import Collected, serve


def rootless_export(n_traces: int, text_bytes: int) -> bytes:
    """`n_traces` traces of one span each, whose parent never comes, with a large text."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for _ in range(n_traces):
        span = spans.add()
        span.trace_id, span.span_id, span.parent_span_id = (
            os.urandom(16),
            os.urandom(8),
            os.urandom(8),
        )
        span.name = "chat"
        span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns(), time.time_ns() + 1
        attr = span.attributes.add()
        attr.key = "gen_ai.input.messages"
        attr.value.string_value = "x" * text_bytes
    return request.SerializeToString()


def test_a_full_buffer_answers_429_with_retry_after_and_loses_nothing(tmp_path: Path) -> None:
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        otlp_settle_s=0.1,
        otlp_root_wait_s=1.0,
        otlp_max_buffer_bytes=300_000,
    )
    sink = Collected()
    body = rootless_export(4, 25_000)  # about 2 × 100 KB of memory, estimated
    headers = {"content-type": "application/x-protobuf"}
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        first = client.post(f"{url}/v1/traces", content=body, headers=headers)
        assert first.status_code == 200
        second = client.post(
            f"{url}/v1/traces", content=rootless_export(4, 25_000), headers=headers
        )
        assert second.status_code == 429
        assert 1 <= int(second.headers["retry-after"]) <= 2
        assert b"trace buffer is full" in second.content
        health = client.get(f"{url}/health").json()
        assert health["assembler"]["throttled_requests"] == 1
        assert health["open_traces"] == 4  # nothing of the refused export was taken
        # the exporter waits as told and sends the same export again: now it fits
        time.sleep(int(second.headers["retry-after"]))
        deadline = time.monotonic() + 10
        while (
            again := client.post(
                f"{url}/v1/traces", content=second.request.content, headers=headers
            )
        ).status_code == 429:
            assert time.monotonic() < deadline
            time.sleep(int(again.headers["retry-after"]))
        assert again.status_code == 200
        traces = sink.wait_for(8)
        assert client.get(f"{url}/health").json()["buffer"]["open_bytes"] == 0
    assert len({t["trace_id"] for t in traces}) == 8


def test_an_export_larger_than_the_whole_buffer_is_413(tmp_path: Path) -> None:
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_max_buffer_bytes=100_000)
    sink = Collected()
    headers = {"content-type": "application/x-protobuf"}
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        big = client.post(f"{url}/v1/traces", content=rootless_export(1, 60_000), headers=headers)
        assert big.status_code == 413
        assert b"EVALKEEPER_OTLP_MAX_BUFFER_BYTES" in big.content
        assert client.get(f"{url}/health").json()["open_traces"] == 0
