"""Which traces lack content, and which instrumentation's setting is named for them."""

from __future__ import annotations

import pytest

from evalkeeper.traces.content import EmptyTraces, has_content, missing_content
from tests.traces.test_otlp_assembler import span


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, False),
        (None, False),
        ({"input": "__REDACTED__"}, False),  # OpenInference with OPENINFERENCE_HIDE_INPUTS
        ({"messages": [{"role": "__REDACTED__", "content": "__REDACTED__"}]}, False),
        ({"messages": [{"role": "user", "content": ""}]}, False),
        ({"messages": [{"role": "user", "content": "move my 3pm"}]}, True),
        (
            {"reply": "", "messages": [{"role": "assistant", "tool_calls": [{"args": {"n": 5}}]}]},
            True,
        ),
        ({"n": 0}, True),
    ],
)
def test_has_content(value: object, expected: bool) -> None:
    assert has_content(value) is expected


def test_a_failed_run_without_outputs_is_not_missing_them() -> None:
    assert missing_content({"q": "x"}, {}, "timeout") == []
    assert missing_content({}, {}, "timeout") == ["inputs"]
    assert missing_content({"q": "x"}, None, None) == ["outputs"]


def test_the_warning_is_given_once_per_service() -> None:
    empty = EmptyTraces(log_warnings=False)
    for i, service in enumerate(["a", "a", "b", None]):
        assert empty.see({"trace_id": f"t{i}", "service": service, "inputs": {}})
    assert not empty.see(
        {"trace_id": "t9", "service": "a", "inputs": {"q": 1}, "outputs": {"r": 1}}
    )
    counts = empty.counts()
    assert counts["empty_traces"] == 4
    assert counts["empty_by_service"] == {"a": 2, "b": 1, "(no service.name)": 1}
    assert len(counts["warnings"]) == 3 and "trace t0 " in counts["warnings"][0]


def test_the_instrumentation_is_told_by_its_spans() -> None:
    from evalkeeper.traces.content import instrumentation

    otel, oi, tl, other = span(1, 1), span(1, 2), span(1, 3), span(1, 4)
    otel.attributes["gen_ai.operation.name"] = "chat"
    oi.attributes["openinference.span.kind"] = "LLM"
    tl.attributes["traceloop.span.kind"] = "workflow"
    assert instrumentation([otel]) == "opentelemetry-genai"
    assert instrumentation([otel, oi]) == "openinference"
    assert instrumentation([otel, tl]) == "traceloop"
    assert instrumentation([other]) == "unknown"
