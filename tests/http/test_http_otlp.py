"""`POST /v1/traces` end to end: the real OpenTelemetry SDK and its OTLP/HTTP exporter send
to the app served by uvicorn on 127.0.0.1; the traces handed to the sink are checked."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Status, StatusCode

from evalkeeper.http import create_app
from evalkeeper.settings import Settings
from tests.otlp_helpers import Collected, protobuf_body, serve, tracer

TRACE_KEYS = {
    "trace_id", "time", "service", "environment", "version", "model", "inputs", "outputs",
    "latency_ms", "error", "tool_calls", "context", "conversation_id", "feedback", "metadata",
}  # fmt: skip


@pytest.fixture
def otlp_settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", otlp_settle_s=0.2, otlp_root_wait_s=30)


def _export(url: str, spans: list, **kwargs: object) -> SpanExportResult:
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", **kwargs)  # type: ignore[arg-type]
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def _genai_trace() -> list:
    provider, memory = tracer()
    t = provider.get_tracer("scheduler")
    with t.start_as_current_span("invoke_agent scheduler") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "scheduler")
        root.set_attribute("gen_ai.conversation.id", "conv-77")
        root.set_attribute(
            "gen_ai.input.messages",
            json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Cancel my 3pm"}]}]),
        )
        root.set_attribute(
            "gen_ai.output.messages",
            json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Your 3pm is cancelled."}],
                        "finish_reason": "stop",
                    }
                ]
            ),
        )
        with t.start_as_current_span("retrieval policies") as r:
            r.set_attribute("gen_ai.operation.name", "retrieval")
            r.set_attribute(
                "gen_ai.retrieval.documents",
                json.dumps([{"id": "policy-12", "score": 0.91, "content": "Free until 24h."}]),
            )
        with t.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
            chat.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            chat.set_attribute("gen_ai.usage.input_tokens", 120)
            chat.set_attribute("gen_ai.usage.output_tokens", 30)
        with t.start_as_current_span("execute_tool cancel_appointment") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "cancel_appointment")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"time": "15:00"}')
    return list(memory.get_finished_spans())


def test_genai_spans_through_the_sdk_exporter_become_one_trace(otlp_settings: Settings) -> None:
    sink = Collected()
    spans = _genai_trace()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        assert _export(url, spans) is SpanExportResult.SUCCESS
        (trace,) = sink.wait_for(1)  # completed by the settle period, not by the shutdown
    root = next(s for s in spans if s.parent is None)
    assert set(trace) == TRACE_KEYS
    assert trace["trace_id"] == f"{root.context.trace_id:032x}"
    assert trace["time"].endswith("Z") and trace["time"].startswith("20")
    assert (trace["service"], trace["environment"], trace["version"]) == (
        "scheduler-agent",
        "production",
        "2.3.1",
    )
    assert trace["model"] == "gpt-4o-2024-08-06"
    assert trace["inputs"] == {"messages": [{"role": "user", "content": "Cancel my 3pm"}]}
    assert trace["outputs"]["reply"] == "Your 3pm is cancelled."
    assert trace["tool_calls"] == [{"name": "cancel_appointment", "args": {"time": "15:00"}}]
    assert trace["context"] == [{"id": "policy-12", "text": "Free until 24h."}]
    assert trace["conversation_id"] == "conv-77"
    assert trace["latency_ms"] == pytest.approx((root.end_time - root.start_time) / 1e6)
    assert trace["error"] is None and trace["feedback"] is None
    meta = trace["metadata"]
    assert (meta["input_tokens"], meta["output_tokens"]) == (120, 30)
    assert (meta["span_count"], meta["operation"], meta["agent_name"]) == (
        4,
        "invoke_agent",
        "scheduler",
    )


def test_openinference_spans_become_one_trace(otlp_settings: Settings) -> None:
    provider, memory = tracer({"service.name": "phoenix-app", "deployment.environment": "staging"})
    t = provider.get_tracer("openinference.instrumentation.langchain")
    with t.start_as_current_span("AgentExecutor") as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("input.value", '{"question": "When do you open?"}')
        root.set_attribute("output.value", "We open at 9.")
        root.set_attribute("session.id", "sess-5")
        with t.start_as_current_span("retrieve") as r:
            r.set_attribute("openinference.span.kind", "RETRIEVER")
            r.set_attribute("retrieval.documents.0.document.id", "hours")
            r.set_attribute("retrieval.documents.0.document.content", "Open 9-17.")
            r.set_attribute("retrieval.documents.1.document.id", "holidays")
            r.set_attribute("retrieval.documents.1.document.content", "Closed Sundays.")
        with t.start_as_current_span("ChatOpenAI") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.model_name", "gpt-4o-mini-2024-07-18")
            llm.set_attribute("llm.input_messages.0.message.role", "user")
            llm.set_attribute("llm.input_messages.0.message.content", "When do you open?")
            llm.set_attribute("llm.output_messages.0.message.role", "assistant")
            llm.set_attribute("llm.output_messages.0.message.content", "We open at 9.")
            llm.set_attribute("llm.token_count.prompt", 40)
            llm.set_attribute("llm.token_count.completion", 6)
        with t.start_as_current_span("opening_hours") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "opening_hours")
            tool.set_attribute("tool.parameters", '{"day": "monday"}')
    sink = Collected()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        assert _export(url, list(memory.get_finished_spans())) is SpanExportResult.SUCCESS
        (trace,) = sink.wait_for(1)
    assert (trace["service"], trace["environment"]) == ("phoenix-app", "staging")
    assert trace["model"] == "gpt-4o-mini-2024-07-18"
    assert trace["inputs"] == {"question": "When do you open?"}
    assert trace["outputs"] == {"reply": "We open at 9."}
    assert trace["tool_calls"] == [{"name": "opening_hours", "args": {"day": "monday"}}]
    assert trace["context"] == [
        {"id": "hours", "text": "Open 9-17."},
        {"id": "holidays", "text": "Closed Sundays."},
    ]
    assert trace["conversation_id"] == "sess-5"
    assert trace["metadata"]["operation"] == "agent"
    assert (trace["metadata"]["input_tokens"], trace["metadata"]["output_tokens"]) == (40, 6)


def test_one_trace_in_two_exports_in_reverse_order(tmp_path: Path) -> None:
    """The children come first, the root a request later: one trace, all spans, at shutdown."""
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_settle_s=60)
    spans = _genai_trace()
    root = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None][::-1]
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url:
        assert _export(url, children) is SpanExportResult.SUCCESS
        assert _export(url, root) is SpanExportResult.SUCCESS
        assert sink.traces == []  # the settle period (60 s) has not passed
    (trace,) = sink.traces  # flushed at shutdown
    assert trace["metadata"]["span_count"] == 4
    assert trace["metadata"]["root_span"] == "invoke_agent scheduler"
    assert "root_missing" not in trace["metadata"]
    assert trace["tool_calls"][0]["name"] == "cancel_appointment"


def test_gzip_export_through_the_sdk(otlp_settings: Settings) -> None:
    sink = Collected()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        result = _export(url, _genai_trace(), compression=Compression.Gzip)
        assert result is SpanExportResult.SUCCESS
        (trace,) = sink.wait_for(1)
    assert trace["tool_calls"] == [{"name": "cancel_appointment", "args": {"time": "15:00"}}]


OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "json-agent"}},
                    {"key": "deployment.environment.name", "value": {"stringValue": "dev"}},
                ]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "manual"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "invoke_agent",
                            "kind": 1,
                            "startTimeUnixNano": "1764511380000000000",
                            "endTimeUnixNano": "1764511381250000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                            ],
                            "status": {"code": 2, "message": "tool timed out"},
                        },
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b175",
                            "parentSpanId": "eee19b7ec3c1b174",
                            "name": "chat",
                            "startTimeUnixNano": "1764511380100000000",
                            "endTimeUnixNano": "1764511381000000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "llama-3.1-8b"}},
                            ],
                        },
                        {
                            "traceId": "abcd0123",
                            "spanId": "eee19b7ec3c1b176",
                            "name": "short trace id",
                        },
                    ],
                }
            ],
        }
    ]
}  # fmt: skip


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_body_posted_with_httpx(otlp_settings: Settings, gzipped: bool) -> None:
    sink = Collected()
    body = json.dumps(OTLP_JSON).encode()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        r = httpx.post(f"{url}/v1/traces", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        answer = r.json()["partialSuccess"]
        assert answer["rejectedSpans"] == "1"  # int64 as a string, as OTLP JSON writes it
        assert "trace_id has 4 bytes" in answer["errorMessage"]
        (trace,) = sink.wait_for(1)
    assert trace["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert trace["time"] == "2025-11-30T14:03:00.000000Z"
    assert trace["latency_ms"] == pytest.approx(1250.0)
    assert trace["error"] == "tool timed out"
    assert (trace["service"], trace["environment"], trace["model"]) == (
        "json-agent",
        "dev",
        "llama-3.1-8b",
    )
    assert trace["metadata"]["input_tokens"] == 42


def test_a_protobuf_export_is_answered_in_protobuf(otlp_settings: Settings) -> None:
    sink = Collected()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        r = httpx.post(
            f"{url}/v1/traces",
            content=protobuf_body(_genai_trace()),
            headers={"Content-Type": "application/x-protobuf"},
        )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert not answer.HasField("partial_success")


def test_malformed_bodies_are_400_in_the_request_encoding(otlp_settings: Settings) -> None:
    sink = Collected()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        pb = httpx.post(
            f"{url}/v1/traces",
            content=b"\xff\xff\xff\xff not protobuf",
            headers={"Content-Type": "application/x-protobuf"},
        )
        js = httpx.post(
            f"{url}/v1/traces",
            content=b'{"resourceSpans": [',
            headers={"Content-Type": "application/json"},
        )
        bad_hex = json.loads(json.dumps(OTLP_JSON))
        bad_hex["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "not-hex!"
        hx = httpx.post(f"{url}/v1/traces", json=bad_hex)
        bad_gzip = httpx.post(
            f"{url}/v1/traces",
            content=b"definitely not gzip",
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert pb.status_code == 400 and pb.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(pb.content)
    assert "not a protobuf ExportTraceServiceRequest" in status.message
    assert js.status_code == 400 and "not JSON" in js.json()["message"]
    assert hx.status_code == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].spanId" in hx.json()["message"]
    assert bad_gzip.status_code == 400 and "gzip" in bad_gzip.json()["message"]
    assert sink.traces == []


def test_unsupported_content_type_and_encoding_are_415(otlp_settings: Settings) -> None:
    with serve(create_app(otlp_settings, trace_sink=Collected())) as url:
        text = httpx.post(
            f"{url}/v1/traces", content=b"hello", headers={"Content-Type": "text/plain"}
        )
        br = httpx.post(
            f"{url}/v1/traces",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        )
    assert text.status_code == 415 and "text/plain" in text.json()["message"]
    assert br.status_code == 415 and "'br'" in br.json()["message"]


def test_oversized_bodies_are_413(tmp_path: Path) -> None:
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_max_body_bytes=2_000)
    big = protobuf_body(_genai_trace() * 3)
    assert len(big) > 2_000
    bomb = gzip.compress(json.dumps({"resourceSpans": [], "pad": "x" * 50_000}).encode())
    assert len(bomb) < 2_000
    with serve(create_app(settings, trace_sink=Collected())) as url:
        r = httpx.post(
            f"{url}/v1/traces", content=big, headers={"Content-Type": "application/x-protobuf"}
        )
        z = httpx.post(
            f"{url}/v1/traces",
            content=bomb,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert r.status_code == 413
    assert "EVALKEEPER_OTLP_MAX_BODY_BYTES" in status_pb2.Status.FromString(r.content).message
    assert z.status_code == 413 and "decompressed" in z.json()["message"]


def test_late_spans_are_rejected_counted_and_reported(otlp_settings: Settings) -> None:
    spans = _genai_trace()
    root = [s for s in spans if s.parent is None]
    child = [s for s in spans if s.parent is not None][:1]
    sink = Collected()
    headers = {"Content-Type": "application/x-protobuf"}
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        assert (
            httpx.post(f"{url}/v1/traces", content=protobuf_body(root), headers=headers).status_code
            == 200
        )
        sink.wait_for(1)
        late = httpx.post(f"{url}/v1/traces", content=protobuf_body(child), headers=headers)
        health = httpx.get(f"{url}/health").json()
    answer = ExportTraceServiceResponse.FromString(late.content).partial_success
    assert answer.rejected_spans == 1
    assert "after their trace was completed" in answer.error_message
    assert health["assembler"]["late_spans"] == 1
    assert health["sink"]["delivered_traces"] == 1
    assert len(sink.traces) == 1


def test_a_failing_sink_is_counted_not_hidden(otlp_settings: Settings) -> None:
    sink = Collected(fail=True)
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        assert _export(url, _genai_trace()) is SpanExportResult.SUCCESS
        deadline = time.monotonic() + 15
        health = httpx.get(f"{url}/health").json()
        while not health["sink"]["failed_traces"] and time.monotonic() < deadline:
            time.sleep(0.05)
            health = httpx.get(f"{url}/health").json()
    assert health["sink"]["failed_traces"] == 1
    assert health["sink"]["delivered_traces"] == 0
    assert "the store is down" in health["sink"]["last_error"]
    assert sink.traces == []


def test_error_status_of_the_root_span_is_the_trace_error(otlp_settings: Settings) -> None:
    provider, memory = tracer()
    t = provider.get_tracer("x")
    with t.start_as_current_span("agent", record_exception=False) as root:
        root.set_status(Status(StatusCode.ERROR, "upstream 503"))
    sink = Collected()
    with serve(create_app(otlp_settings, trace_sink=sink)) as url:
        _export(url, list(memory.get_finished_spans()))
        (trace,) = sink.wait_for(1)
    assert trace["error"] == "upstream 503"
