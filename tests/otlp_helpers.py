"""Test helpers for the OTLP receiver: the app served by uvicorn on 127.0.0.1 (a free port,
in a thread), a sink that collects what it is handed, and spans made by the real
OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

RESOURCE = {
    "service.name": "scheduler-agent",
    "service.version": "2.3.1",
    "deployment.environment.name": "production",
}


class Collected:
    """A trace sink that keeps every trace it is handed (thread-safe), and can wait for some."""

    def __init__(self, *, fail: bool = False) -> None:
        self.traces: list[dict[str, Any]] = []
        self.calls = 0
        self.fail = fail
        self._cond = threading.Condition()

    async def __call__(self, traces: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0)
        with self._cond:
            self.calls += 1
            if self.fail:
                raise RuntimeError("the store is down")
            self.traces.extend(traces)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The traces once at least `n` have arrived (raises after `timeout` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.traces) >= n, timeout):
                raise AssertionError(f"{len(self.traces)} trace(s) arrived, expected {n}")
            return list(self.traces)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL.
    Leaving the block shuts the server down (running the app's shutdown: the flush)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def tracer(resource: dict[str, Any] | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    """An SDK tracer provider whose finished spans are kept in memory (to export by hand)."""
    provider = TracerProvider(resource=Resource.create(resource or RESOURCE))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def protobuf_body(spans: list[ReadableSpan]) -> bytes:
    """The body the SDK's OTLP/HTTP exporter sends for these spans."""
    return encode_spans(spans).SerializeToString()
