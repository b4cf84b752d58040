"""What one span says (`otlp_spans`), on the shapes the instrumented tests do not reach:
a schema-looking `tool.parameters`, positional Traceloop arguments, errors without an
exception event, a long error, a model asked for but never answered."""

from __future__ import annotations

import json

from evalkeeper.traces.otlp import SpanEvent, map_trace
from evalkeeper.traces.otlp_decode import STATUS_ERROR
from evalkeeper.traces.otlp_spans import ERROR_MAX_CHARS, entity_inputs, span_error, tool_args
from tests.traces.test_otlp_map import START, span

SCHEMA = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}


def test_tool_parameters_is_the_arguments_only_when_it_is_not_a_schema() -> None:
    oi = {"openinference.span.kind": "TOOL", "tool.name": "hours"}
    schema_only = span(2, 1, attrs={**oi, "tool.parameters": json.dumps(SCHEMA)})
    assert tool_args(schema_only) is None
    with_input = span(2, 1, attrs={**oi, "tool.parameters": json.dumps(SCHEMA), "input.value": '{"day": "mon"}'})  # fmt: skip
    assert map_trace([span(1), with_input])["tool_calls"] == [{"name": "hours", "args": {"day": "mon"}}]  # fmt: skip
    hand_written = span(2, 1, attrs={**oi, "tool.parameters": '{"day": "tue"}'})
    assert tool_args(hand_written) == '{"day": "tue"}'


def test_traceloop_entity_input_positional_and_keyword_arguments() -> None:
    def entity(args: list[object], kwargs: dict[str, object]) -> dict[str, object] | None:
        value = json.dumps({"args": args, "kwargs": kwargs})
        return entity_inputs(span(1, attrs={"traceloop.entity.input": value}))

    assert entity(["Move my 2pm"], {}) == {"input": "Move my 2pm"}
    assert entity([{"question": "q"}], {}) == {"question": "q"}
    assert entity([], {"day": "mon"}) == {"day": "mon"}
    assert entity(["a", "b"], {"day": "mon"}) == {"args": ["a", "b"], "day": "mon"}
    assert entity([], {}) is None


def test_error_type_attribute_and_status_without_an_exception_event() -> None:
    s = span(
        1, attrs={"error.type": "TimeoutError"}, status_code=STATUS_ERROR, status_message="30 s"
    )
    error = span_error(s, "root span")
    assert error is not None
    assert (error.text, error.type, error.detail) == ("TimeoutError: 30 s", "TimeoutError", None)
    assert span_error(span(1, status_code=1), "root span") is None


def test_a_long_error_is_cut_and_kept_whole_in_metadata() -> None:
    status = "ValueError: " + "x" * 2000
    root = span(1, status_code=STATUS_ERROR, status_message=status)
    trace = map_trace([root])
    assert len(trace["error"]) == ERROR_MAX_CHARS and trace["error"].endswith("…")
    assert trace["metadata"]["error_detail"] == status
    assert trace["outputs"] is None


def test_a_traceback_status_gives_way_to_the_exception_event() -> None:
    tb = "Traceback (most recent call last):\n  File 'a.py', line 1\nKeyError: 'slot'"
    event = SpanEvent("exception", START, {"exception.type": "KeyError", "exception.message": "'slot'"})  # fmt: skip
    root = span(1, events=[event], status_code=STATUS_ERROR, status_message=tb)
    trace = map_trace([root])
    assert trace["error"] == "KeyError: 'slot'"
    assert trace["metadata"]["error_type"] == "KeyError"
    assert trace["metadata"]["error_detail"] == tb


def test_the_answered_model_wins_over_the_requested_ones() -> None:
    agent = span(1, attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"})  # fmt: skip
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
    first = span(2, 1, attrs={**chat, "gen_ai.response.model": "gpt-4o-2024-08-06"}, start_ms=1)
    second = span(3, 1, attrs={**chat, "gen_ai.response.model": "gpt-4o-2024-11-20"}, start_ms=2)
    trace = map_trace([agent, second, first])
    assert trace["model"] == "gpt-4o-2024-08-06"
    assert trace["metadata"]["models"] == ["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"]
    # nothing answered (the call failed before): the name asked for
    assert map_trace([agent])["model"] == "gpt-4o"


def test_flattened_openllmetry_tool_calls_of_a_chat_span() -> None:
    chat = span(
        2,
        1,
        attrs={
            "llm.request.type": "chat",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Move A-1",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.tool_calls.0.id": "call_1",
            "gen_ai.completion.0.tool_calls.0.name": "move",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"id": "A-1"}',
        },
    )
    trace = map_trace([span(1), chat])
    assert trace["inputs"] == {"messages": [{"role": "user", "content": "Move A-1"}]}
    assert trace["tool_calls"] == [{"name": "move", "args": {"id": "A-1"}}]
