"""`POST /v1/logs` and `POST /v1/metrics` end to end: GenAI events sent as OTLP log records
(real `opentelemetry-proto` messages, and the SDK's own `OTLPLogExporter`) are joined to
their spans whether they arrive before or after them; metrics are accepted and discarded;
a trace without content is counted and warned about."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import set_span_in_context
from pydantic import SecretStr
from traceloop.sdk.metrics.metrics import init_metrics_exporter

from evalkeeper.http import create_app
from evalkeeper.settings import Settings
from tests.otlp_helpers import RESOURCE, Collected, protobuf_body, serve, tracer

TOKEN = "otlp-logs-token-0123456789abcdef"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
USER = "Move my 3pm to Friday, I am jane@example.com"
ANSWER = "Done: moved to Friday 3pm."
DETAILS = "gen_ai.client.inference.operation.details"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", otlp_settle_s=0.3, otlp_root_wait_s=30)


def _spans(content: bool = False) -> list[Any]:
    """An agent span and one chat span (GenAI attributes, no messages unless `content`)."""
    provider, memory = tracer()
    t = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with t.start_as_current_span("invoke_agent scheduler") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with t.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            if content:
                chat.set_attribute(
                    "gen_ai.input.messages",
                    json.dumps([{"role": "user", "parts": [{"type": "text", "content": USER}]}]),
                )
                chat.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}]}]
                    ),
                )
    return list(memory.get_finished_spans())


def _chat(spans: list[Any]) -> Any:
    return next(s for s in spans if s.name.startswith("chat"))


def _kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=_any(value))


def _any(value: Any) -> AnyValue:
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[_kv(k, v) for k, v in value.items()]))
    assert isinstance(value, list)
    out = AnyValue()
    out.array_value.values.extend(_any(v) for v in value)
    return out


def _details_record(span: Any, *, user: str = USER) -> LogRecord:
    """The `gen_ai.client.inference.operation.details` record opentelemetry-util-genai emits
    in `event_only` mode: messages as structured attributes, the span's context."""
    ctx = span.get_span_context()
    return LogRecord(
        time_unix_nano=span.end_time,
        event_name=DETAILS,
        trace_id=ctx.trace_id.to_bytes(16, "big"),
        span_id=ctx.span_id.to_bytes(8, "big"),
        attributes=[
            _kv("gen_ai.operation.name", "chat"),
            _kv(
                "gen_ai.input.messages",
                [{"role": "user", "parts": [{"type": "text", "content": user}]}],
            ),
            _kv(
                "gen_ai.output.messages",
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": ANSWER}],
                        "finish_reason": "stop",
                    }
                ],
            ),
        ],
    )


def _logs_body(*records: LogRecord) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))]),
        ]
    )


def _post(client: httpx.Client, url: str, path: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(f"{url}{path}", content=body, headers={**PROTOBUF, **headers})


def _health(client: httpx.Client, url: str) -> dict[str, Any]:
    health: dict[str, Any] = client.get(f"{url}/health").json()
    return health


@pytest.mark.parametrize("records_first", [True, False], ids=["logs-first", "spans-first"])
def test_log_records_are_joined_to_their_span_before_or_after_it(
    tmp_path: Path, records_first: bool
) -> None:
    # a settle time longer than the test: the trace completes at the shutdown flush, so the
    # join does not depend on how fast the two exports follow each other
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_settle_s=600)
    spans = _spans()
    logs = _logs_body(_details_record(_chat(spans))).SerializeToString()
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        first, second = (
            (("/v1/logs", logs), ("/v1/traces", protobuf_body(spans)))
            if records_first
            else (("/v1/traces", protobuf_body(spans)), ("/v1/logs", logs))
        )
        a = _post(client, url, *first)
        b = _post(client, url, *second)
        held = _health(client, url)
    [trace] = sink.traces
    assert a.status_code == b.status_code == 200
    answer = ExportLogsServiceResponse.FromString((a if records_first else b).content)
    assert answer.partial_success.rejected_log_records == 0
    assert held["open_traces"] == 1 and held["open_log_records"] == 1
    assert trace["inputs"] == {"messages": [{"role": "user", "content": USER}]}
    assert trace["outputs"]["reply"] == ANSWER
    assert "content_missing" not in trace["metadata"]


def test_otlp_json_and_gzip_logs(settings: Settings) -> None:
    spans = _spans()
    doc = json_format.MessageToDict(_logs_body(_details_record(_chat(spans))))
    for rl in doc["resourceLogs"]:  # OTLP JSON writes the ids as hex
        for sl in rl["scopeLogs"]:
            for r in sl["logRecords"]:
                for key in ("traceId", "spanId"):
                    r[key] = base64.b64decode(r[key]).hex()
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        r = client.post(
            f"{url}/v1/logs",
            content=gzip.compress(json.dumps(doc).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        bad = client.post(
            f"{url}/v1/logs",
            content=json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
                {"eventName": DETAILS, "traceId": "zz", "spanId": "00"}]}]}]}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        _post(client, url, "/v1/traces", protobuf_body(spans))
        [trace] = sink.wait_for(1)
    assert r.status_code == 200 and r.json() == {}
    assert bad.status_code == 400
    assert "resourceLogs[0].scopeLogs[0].logRecords[0].traceId" in bad.json()["message"]
    assert trace["inputs"]["messages"][0]["content"] == USER


def test_the_sdk_log_exporter_with_a_bearer_token(tmp_path: Path) -> None:
    """The SDK's OTLPLogExporter, as opentelemetry-util-genai's event_only mode uses it:
    the records of a span made in the same process, exported before that span."""
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        otlp_settle_s=0.3,
        otlp_tokens=SecretStr(TOKEN),
    )
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url:
        provider, memory = tracer()
        logs = LoggerProvider(resource=Resource.create(RESOURCE))
        logs.add_log_record_processor(
            SimpleLogRecordProcessor(
                OTLPLogExporter(
                    endpoint=f"{url}/v1/logs", headers={"Authorization": f"Bearer {TOKEN}"}
                )
            )
        )
        logger = logs.get_logger("opentelemetry.util.genai")
        t = provider.get_tracer("scheduler")
        with t.start_as_current_span("invoke_agent scheduler") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            with t.start_as_current_span("chat gpt-4o-mini") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                logger.emit(
                    ApiLogRecord(
                        event_name=DETAILS,
                        context=set_span_in_context(chat),
                        attributes={
                            "gen_ai.input.messages": [  # type: ignore[dict-item]
                                {"role": "user", "parts": [{"type": "text", "content": USER}]}
                            ],
                            "gen_ai.output.messages": [  # type: ignore[dict-item]
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": ANSWER}],
                                }
                            ],
                        },
                    )
                )
        logs.shutdown()
        anonymous = OTLPLogExporter(endpoint=f"{url}/v1/logs")
        refused = httpx.post(f"{url}/v1/logs", content=b"", headers=PROTOBUF)
        spans = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert spans.export(list(memory.get_finished_spans())) == SpanExportResult.SUCCESS
        [trace] = sink.wait_for(1)
        anonymous.shutdown()
        spans.shutdown()
    assert refused.status_code == 401
    assert trace["inputs"]["messages"] == [{"role": "user", "content": USER}]
    assert trace["outputs"]["reply"] == ANSWER


def test_log_export_results_of_the_sdk_exporter(tmp_path: Path) -> None:
    """A plain application log line is taken (200) and ignored; without the token, 401."""
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_tokens=SecretStr(TOKEN))
    memory = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=Resource.create(RESOURCE))
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logs.get_logger("app").emit(ApiLogRecord(body="a plain application log line"))
    records = list(memory.get_finished_logs())
    with serve(create_app(settings, trace_sink=Collected())) as url:
        good = OTLPLogExporter(
            endpoint=f"{url}/v1/logs", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        bad = OTLPLogExporter(endpoint=f"{url}/v1/logs")
        ok, no = good.export(records), bad.export(records)
        health = httpx.get(f"{url}/health").json()
        good.shutdown()
        bad.shutdown()
    assert ok == LogRecordExportResult.SUCCESS
    assert no == LogRecordExportResult.FAILURE  # 401: no token
    assert health["otlp_other"]["ignored_log_records"] == 1  # not a GenAI event
    assert health["open_log_records"] == 0


def test_records_whose_trace_never_comes_are_evicted_and_counted(tmp_path: Path) -> None:
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_settle_s=0.1, otlp_root_wait_s=0.5)
    spans = _spans()
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        r = _post(
            client, url, "/v1/logs", _logs_body(_details_record(_chat(spans))).SerializeToString()
        )
        held = _health(client, url)
        deadline = time.monotonic() + 15
        while (health := _health(client, url))["assembler"]["orphan_log_records"] == 0:
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
    assert r.status_code == 200
    assert held["open_log_records"] == 1 and held["buffer"]["open_bytes"] > 0
    assert health["open_log_records"] == 0 and health["buffer"]["open_bytes"] == 0
    assert health["assembler"]["traces_completed"] == 0 and sink.traces == []


def test_records_count_against_the_trace_buffer(tmp_path: Path) -> None:
    """Records held for open traces use the same byte budget as spans: a full buffer is 429
    with Retry-After, for logs as for spans."""
    settings = Settings(
        warehouse=tmp_path / "w.duckdb", otlp_settle_s=60, otlp_max_buffer_bytes=60_000
    )
    with serve(create_app(settings, trace_sink=Collected())) as url, httpx.Client() as client:
        answers = []
        for _ in range(40):
            spans = _spans()
            record = _details_record(_chat(spans), user=USER + " " + "x" * 2_000)
            body = _logs_body(record).SerializeToString()
            answers.append(_post(client, url, "/v1/logs", body))
            if answers[-1].status_code != 200:
                break
        health = _health(client, url)
    assert answers[0].status_code == 200
    assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) >= 1
    assert 40_000 < health["buffer"]["open_bytes"] <= 60_000
    assert health["open_log_records"] == len(answers) - 1
    assert health["assembler"]["throttled_requests"] == 1


def test_a_late_record_is_rejected_and_told(settings: Settings) -> None:
    spans = _spans(content=True)
    sink = Collected()
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        _post(client, url, "/v1/traces", protobuf_body(spans))
        sink.wait_for(1)
        late = _post(
            client, url, "/v1/logs", _logs_body(_details_record(_chat(spans))).SerializeToString()
        )
    answer = ExportLogsServiceResponse.FromString(late.content)
    assert late.status_code == 200
    assert answer.partial_success.rejected_log_records == 1
    assert "after their trace was completed" in answer.partial_success.error_message


def test_metrics_are_accepted_and_discarded(tmp_path: Path) -> None:
    """traceloop-sdk's default metrics exporter (`{api_endpoint}/v1/metrics`) gets 200."""
    settings = Settings(warehouse=tmp_path / "w.duckdb", otlp_tokens=SecretStr(TOKEN))
    reader = InMemoryMetricReader()
    meters = MeterProvider(resource=Resource.create(RESOURCE), metric_readers=[reader])
    meters.get_meter("traceloop").create_counter("gen_ai.client.generation.choices").add(2)
    data = reader.get_metrics_data()
    assert data is not None
    with serve(create_app(settings, trace_sink=Collected())) as url, httpx.Client() as client:
        exporter = init_metrics_exporter(url, {"Authorization": f"Bearer {TOKEN}"})
        result = exporter.export(data)
        exporter.shutdown()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        js = client.post(
            f"{url}/v1/metrics", content=b"{}", headers={"Content-Type": "application/json", **auth}
        )
        anonymous = client.post(f"{url}/v1/metrics", content=b"{}", headers=PROTOBUF)
        text = client.post(
            f"{url}/v1/metrics", content=b"x", headers={"Content-Type": "text/plain", **auth}
        )
        health = _health(client, url)
    assert result == MetricExportResult.SUCCESS
    assert js.status_code == 200 and js.json() == {}
    assert anonymous.status_code == 401 and text.status_code == 415
    assert health["otlp_other"]["metrics_exports_discarded"] == 2
    assert health["open_traces"] == 0


def test_traces_without_content_are_counted_and_warned_once_per_service(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Collected()
    caplog.set_level(logging.WARNING, logger="evalkeeper.traces.content")
    with serve(create_app(settings, trace_sink=sink)) as url, httpx.Client() as client:
        for _ in range(2):
            _post(client, url, "/v1/traces", protobuf_body(_spans()))
        _post(client, url, "/v1/traces", protobuf_body(_spans(content=True)))
        traces = sink.wait_for(3)
        health = _health(client, url)
    empty = [t for t in traces if t["metadata"].get("content_missing")]
    assert len(empty) == 2
    assert empty[0]["metadata"]["content_missing"] == ["inputs", "outputs"]
    assert (
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in empty[0]["metadata"]["content_hint"]
    )
    assert health["content"]["empty_traces"] == 2
    assert health["content"]["empty_by_service"] == {"scheduler-agent": 2}
    [warning] = health["content"]["warnings"]
    assert "span_only" in warning and "event_only" in warning and "/v1/logs" in warning
    logged = [r.getMessage() for r in caplog.records if "stored without" in r.getMessage()]
    assert len(logged) == 1 and "scheduler-agent" in logged[0]
