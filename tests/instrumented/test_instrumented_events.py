"""The instrumentation modes that send the messages as OTLP log records (`/v1/logs`), or
none at all, exporting to a real `evalkeeper listen` (`agent_events.py`):

- OpenTelemetry openai-v2 with `event_only`: the records come before their spans;
- traceloop-sdk in events mode: the records come after their spans (batched to shutdown),
  and its default metrics exporter posts to `/v1/metrics`;
- OpenTelemetry openai-v2 with `...CAPTURE_MESSAGE_CONTENT=true` (no content in current
  versions): the traces are stored without content, marked, and warned about once.
"""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from tests.instrumented.agent import SERVICE
from tests.instrumented.expect import failed_run, normal_run
from tests.instrumented.traffic import Traffic, run_traffic

pytestmark = pytest.mark.slow

WITH_EVENTS = ["otel-openai-v2-events", "traceloop-events"]
NO_CONTENT = "otel-openai-v2-true"
HIDDEN = {  # content capture off, and the setting the stored trace's hint names
    NO_CONTENT: "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "openinference-hidden": "OPENINFERENCE_HIDE_INPUTS",
    "traceloop-no-content": "TRACELOOP_TRACE_CONTENT=true",
}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    return run_traffic(tmp_path_factory.mktemp("events"), [*WITH_EVENTS, *HIDDEN])


# the event agents run as `python -m tests.instrumented.agent_events`: the tool's module is
# tests.instrumented.agent
ERROR_TYPE = "tests.instrumented.agent.BookingUnavailable"


@pytest.mark.parametrize("instrumentation", WITH_EVENTS)
def test_messages_sent_as_log_records_make_the_trace(
    traffic: Traffic, instrumentation: str
) -> None:
    """Every field a user checks, as for the span modes (`expect.py`)."""
    normal_run(traffic.stored(instrumentation, "ok"))


@pytest.mark.parametrize("instrumentation", WITH_EVENTS)
def test_a_run_whose_tool_raises(traffic: Traffic, instrumentation: str) -> None:
    failed_run(traffic.stored(instrumentation, "tool_error"), ERROR_TYPE)


def test_no_exporter_was_refused(traffic: Traffic) -> None:
    """Spans, log records and (traceloop's default) metrics all reached listen: the SDK
    exporters log `Failed to export … batch code: 404` otherwise."""
    for name in [*WITH_EVENTS, *HIDDEN]:
        assert "Failed to export" not in traffic.agents[name].stderr, name


def test_capture_true_stores_empty_traces_marked_and_warned_once(traffic: Traffic) -> None:
    ok = traffic.stored(NO_CONTENT, "ok")
    failed = traffic.stored(NO_CONTENT, "tool_error")
    assert ok.inputs == {} and not ok.outputs
    assert ok.metadata["content_missing"] == ["inputs", "outputs"]
    assert failed.metadata["content_missing"] == ["inputs"]  # a failed run has no outputs
    hint = ok.metadata["content_hint"]
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in hint and "span_only" in hint
    # one warning for the service, however many of its traces lack content
    warnings = [ln for ln in traffic.listen_output.splitlines() if "stored without" in ln]
    assert len(warnings) == 1 and SERVICE in warnings[0], traffic.listen_output
    listed = CliRunner().invoke(
        app,
        ["traces", "list", "--format", "csv", "--limit", "50", "--warehouse",
         str(traffic.settings.warehouse)],
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    content = {r["trace_id"]: r["content"] for r in csv.DictReader(io.StringIO(listed.stdout))}
    assert content[ok.trace_id] == "no inputs, outputs"
    assert content[failed.trace_id] == "no inputs"
    assert content[traffic.trace_id("traceloop-events", "ok")] == "ok"


@pytest.mark.parametrize("instrumentation", sorted(HIDDEN))
def test_the_hint_names_the_setting_of_the_instrumentation(
    traffic: Traffic, instrumentation: str
) -> None:
    trace = traffic.stored(instrumentation, "ok")
    assert trace.metadata["content_missing"] == ["inputs", "outputs"], trace.model_dump()
    assert HIDDEN[instrumentation] in trace.metadata["content_hint"]
