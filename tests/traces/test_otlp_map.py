"""Mapping spans to the trace JSONL form: the older GenAI shapes (prompt/completion
attributes, span events), tool calls from messages, usage, errors, a missing root."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evalkeeper.traces.otlp import Span, SpanEvent, find_root, map_trace
from evalkeeper.traces.otlp_decode import STATUS_ERROR

TRACE = "0af7651916cd43dd8448eb211c80319c"
START = 1_764_511_380_000_000_000  # 2025-11-30T14:03:00Z


def span(
    span_id: int,
    parent: int | None = None,
    *,
    attrs: dict[str, Any] | None = None,
    events: list[SpanEvent] | None = None,
    resource: dict[str, Any] | None = None,
    start_ms: int = 0,
    end_ms: int = 100,
    **kw: Any,
) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else "",
        name=f"span-{span_id}",
        kind=1,
        start_ns=START + start_ms * 1_000_000,
        end_ns=START + end_ms * 1_000_000,
        attributes=attrs or {},
        resource=resource or {},
        events=events or [],
        **kw,
    )


def test_old_gen_ai_prompt_and_completion_attributes() -> None:
    chat = span(
        2,
        1,
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-sonnet-20241022",
            "gen_ai.prompt": json.dumps([{"role": "user", "content": "hi"}]),
            "gen_ai.completion": json.dumps(
                [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {"function": {"name": "lookup", "arguments": '{"q": "hours"}'}}
                        ],
                    }
                ]
            ),
            "gen_ai.usage.prompt_tokens": 11,
            "gen_ai.usage.completion_tokens": 3,
        },
    )
    trace = map_trace([span(1), chat])
    assert trace["inputs"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert trace["outputs"]["messages"][0]["tool_calls"] == [
        {"name": "lookup", "args": {"q": "hours"}}
    ]
    # no tool span: the tool calls come from the model's messages
    assert trace["tool_calls"] == [{"name": "lookup", "args": {"q": "hours"}}]
    assert trace["model"] == "claude-3-5-sonnet-20241022"
    assert (trace["metadata"]["input_tokens"], trace["metadata"]["output_tokens"]) == (11, 3)


def test_flattened_prompt_and_completion_attributes() -> None:
    chat = span(
        2,
        1,
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "Be brief.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Book me Tuesday",
            "gen_ai.prompt.name": "not a message",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Booked.",
        },
    )
    trace = map_trace([span(1), chat])
    # issue 18: the inputs are the user's request; the model call's system prompt is not
    assert [m["role"] for m in trace["inputs"]["messages"]] == ["user"]
    assert trace["inputs"]["messages"][0]["content"] == "Book me Tuesday"
    assert trace["outputs"]["reply"] == "Booked."


def test_span_events_user_message_and_choice() -> None:
    events = [
        SpanEvent("gen_ai.system.message", START, {"content": "You schedule."}),
        SpanEvent("gen_ai.user.message", START, {"content": "Move my 2pm"}),
        SpanEvent(
            "gen_ai.choice",
            START,
            {
                "gen_ai.event.content": json.dumps(
                    {"index": 0, "message": {"role": "assistant", "content": "Moved to 4pm."}}
                )
            },
        ),
    ]
    trace = map_trace([span(1, attrs={"gen_ai.operation.name": "chat"}, events=events)])
    assert trace["inputs"]["messages"] == [
        {"role": "system", "content": "You schedule."},
        {"role": "user", "content": "Move my 2pm"},
    ]
    assert trace["outputs"]["reply"] == "Moved to 4pm."


def test_content_events_of_the_first_conventions() -> None:
    events = [
        SpanEvent("gen_ai.content.prompt", START, {"gen_ai.prompt": "plain prompt text"}),
        SpanEvent("gen_ai.content.completion", START, {"gen_ai.completion": "plain answer"}),
    ]
    trace = map_trace([span(1, events=events)])
    assert trace["inputs"] == {"messages": [{"role": "user", "content": "plain prompt text"}]}
    assert trace["outputs"]["reply"] == "plain answer"


def test_genai_parts_with_tool_calls_and_system_instructions() -> None:
    root = span(
        1,
        attrs={
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be kind."}]),
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "user", "parts": [{"type": "text", "content": "weather?"}]},
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
                        ],
                    },
                    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "rain"}]},
                ]
            ),
        },
    )  # fmt: skip
    messages = map_trace([root])["inputs"]["messages"]
    assert messages[0] == {"role": "system", "content": "Be kind."}
    assert messages[2]["tool_calls"] == [{"name": "weather", "args": {"city": "Paris"}}]
    assert messages[3] == {"role": "tool", "content": "rain"}


def test_usage_is_summed_over_children_not_counted_twice_with_the_root() -> None:
    root = span(1, attrs={"gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 40})
    chats = [
        span(i, 1, attrs={"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20})
        for i in (2, 3)
    ]
    meta = map_trace([root, *chats])["metadata"]
    assert (meta["input_tokens"], meta["output_tokens"]) == (200, 40)
    alone = map_trace([root])["metadata"]
    assert (alone["input_tokens"], alone["output_tokens"]) == (300, 40)


def test_error_from_the_exception_event_when_the_status_has_no_message() -> None:
    events = [
        SpanEvent(
            "exception", START, {"exception.type": "TimeoutError", "exception.message": "30 s"}
        )
    ]
    root = span(1, events=events, status_code=STATUS_ERROR)
    child = span(2, 1, status_code=STATUS_ERROR, status_message="x")
    trace = map_trace([root, child])
    assert trace["error"] == "TimeoutError: 30 s"
    assert trace["metadata"]["error_spans"] == 1
    assert map_trace([span(1, status_code=1)])["error"] is None


def test_missing_root_the_topmost_span_stands_in_and_says_so() -> None:
    spans = [span(3, 2, start_ms=10), span(2, 1, start_ms=5), span(4, 3, start_ms=20)]
    assert find_root(spans).span_id == f"{2:016x}"
    meta = map_trace(spans)["metadata"]
    assert meta["root_missing"] is True and meta["root_parent_span_id"] == f"{1:016x}"


def test_resource_environment_fallback_and_time() -> None:
    trace = map_trace(
        [span(1, resource={"deployment.environment": "qa"}, start_ms=1500, end_ms=1750)]
    )
    assert trace["environment"] == "qa" and trace["service"] is None
    assert trace["time"] == "2025-11-30T14:03:01.500000Z"
    assert trace["latency_ms"] == pytest.approx(250.0)
    assert trace["inputs"] == {} and trace["outputs"] == {} and trace["tool_calls"] == []


def test_tool_arguments_that_are_not_an_object_are_kept_raw() -> None:
    tool = span(2, 1, attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t",
                             "gen_ai.tool.call.arguments": "not json"})  # fmt: skip
    assert map_trace([span(1), tool])["tool_calls"] == [{"name": "t", "args": {"_raw": "not json"}}]


def test_no_spans_is_an_error() -> None:
    with pytest.raises(ValueError, match="no spans"):
        map_trace([])
