"""The agent of `agent.py` under the instrumentation modes that send the messages as OTLP
log records (`/v1/logs`), or none at all:

    python -m tests.instrumented.agent_events --instrumentation otel-openai-v2-events \
        --llm-url http://127.0.0.1:PORT --otlp http://127.0.0.1:4318

- `otel-openai-v2-events`: OpenTelemetry's openai-v2 instrumentor with
  `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only`: each model call's
  messages are one `gen_ai.client.inference.operation.details` log record, exported by the
  SDK's `OTLPLogExporter` as it is emitted (before its span ends: the records arrive
  before their spans). The exporters find the server through `OTEL_EXPORTER_OTLP_ENDPOINT`
  (set to `--otlp`), as the docs say.
- `otel-openai-v2-true`: the same with the value that looks right but is not:
  `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (current versions read it as no
  content): the trace has no inputs or outputs.
- `traceloop-events`: traceloop-sdk in events mode (`Traceloop.init(use_attributes=False)`;
  the deprecated `use_legacy_attributes=False` is the same), its messages `gen_ai.*.message`
  / `gen_ai.choice` log records through the global LoggerProvider (which the application
  sets; traceloop-sdk makes none for them), exported in a batch at shutdown: after their
  spans. Its default metrics exporter sends to `--otlp`/v1/metrics.
- `openinference-hidden`, `traceloop-no-content`: `agent.py`'s OpenInference openai and
  traceloop modes with content capture off (`OPENINFERENCE_HIDE_INPUTS/OUTPUTS=true`,
  `TRACELOOP_TRACE_CONTENT=false`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from tests.instrumented import agent
from tests.instrumented.agent import (
    MODEL,
    SESSION,
    TOOL_DESCRIPTION,
    TOOL_NAME,
    USER_REQUEST,
    Runner,
    chat_loop,
    openai_client,
    reschedule,
    resource_attributes,
)


def _otel_openai_v2(capture: str, llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = capture
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.util.genai.handler import get_telemetry_handler

    resource = Resource.create(resource_attributes())
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))  # from the env
    provider.add_span_processor(agent.root_noter())
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))  # from the env
    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logs)
    handler = get_telemetry_handler(tracer_provider=provider, logger_provider=logs)
    client = openai_client(llm_url)

    def run(fail: bool) -> None:
        def reschedule_appointment(appointment_id: str, new_time: str) -> dict[str, str]:
            with handler.tool(TOOL_NAME, tool_description=TOOL_DESCRIPTION) as inv:
                args = {"appointment_id": appointment_id, "new_time": new_time}
                if inv.should_capture_content_on_span:
                    inv.arguments = args
                return reschedule(appointment_id, new_time, fail=fail)

        with handler.invoke_local_agent(request_model=MODEL, agent_name="scheduler") as inv:
            inv.conversation_id = SESSION
            chat_loop(client, USER_REQUEST, reschedule_appointment)

    def shutdown() -> None:
        provider.shutdown()
        logs.shutdown()

    return run, shutdown


def otel_openai_v2_events(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    return _otel_openai_v2("event_only", llm_url, otlp)


def otel_openai_v2_true(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    return _otel_openai_v2("true", llm_url, otlp)


def traceloop_events(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    attrs = resource_attributes()
    logs = LoggerProvider(resource=Resource.create(attrs))
    # a delay longer than the run: the records go at shutdown, after their spans
    logs.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{otlp}/v1/logs"), schedule_delay_millis=600_000
        )
    )
    set_logger_provider(logs)
    run, flush_spans = agent.traceloop(llm_url, otlp, use_attributes=False)

    def shutdown() -> None:
        from opentelemetry import metrics

        flush_spans()
        logs.shutdown()  # the batched records, after the spans
        meters: Any = metrics.get_meter_provider()
        meters.shutdown()  # traceloop's default metrics exporter: to --otlp/v1/metrics

    return run, shutdown


def openinference_hidden(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    """OpenInference's openai instrumentor with inputs and outputs hidden."""
    os.environ["OPENINFERENCE_HIDE_INPUTS"] = "true"
    os.environ["OPENINFERENCE_HIDE_OUTPUTS"] = "true"
    return agent.openinference_openai(llm_url, otlp)


def traceloop_no_content(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    """traceloop-sdk (attributes mode) with `TRACELOOP_TRACE_CONTENT=false`."""
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
    return agent.traceloop(llm_url, otlp)


EVENT_INSTRUMENTATIONS: dict[str, Callable[[str, str], tuple[Runner, Callable[[], None]]]] = {
    "otel-openai-v2-events": otel_openai_v2_events,
    "otel-openai-v2-true": otel_openai_v2_true,
    "traceloop-events": traceloop_events,
    "openinference-hidden": openinference_hidden,
    "traceloop-no-content": traceloop_no_content,
}

if __name__ == "__main__":
    agent.INSTRUMENTATIONS.update(EVENT_INSTRUMENTATIONS)
    sys.exit(agent.main())
