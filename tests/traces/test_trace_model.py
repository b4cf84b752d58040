"""The trace model's JSONL form: required fields, UTC times, and errors naming the fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from evalkeeper.traces.model import Trace, TraceError
from tests.traces.trace_lines import trace


def parse(row: object) -> Trace:
    return Trace.from_json_line(json.dumps(row), "data/traces/a.jsonl:17")


def test_a_full_line_round_trips_through_the_jsonl_form() -> None:
    row = trace(7)
    t = parse(row)
    assert t.tool_calls[0].name == "book_slot" and t.context[0].id == "kb-1"
    assert t.feedback is not None and t.feedback.score == 1
    again = Trace.from_json_line(t.to_json_line())
    assert again == t
    assert t.to_json()["time"] == row["time"]


def test_only_trace_id_time_and_inputs_are_required() -> None:
    t = parse({"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": {}})
    assert t.outputs is None and t.tool_calls == [] and t.metadata == {} and t.feedback is None


def test_an_offset_is_converted_to_utc() -> None:
    t = parse({"trace_id": "x", "time": "2026-11-30T15:03:00.250+01:00", "inputs": {}})
    assert t.time == datetime(2026, 11, 30, 14, 3, 0, 250000, tzinfo=UTC)
    assert t.to_json()["time"] == "2026-11-30T14:03:00.250Z"


def test_a_naive_time_is_rejected_naming_the_fix() -> None:
    with pytest.raises(TraceError) as err:
        parse({"trace_id": "x", "time": "2026-11-30T14:03:00", "inputs": {}})
    assert str(err.value).startswith('data/traces/a.jsonl:17: field "time": no UTC offset')
    assert "write e.g. 2026-11-30T14:03:00Z" in str(err.value)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"trace_id": "x", "time": "yesterday", "inputs": {}},
            'field "time": not ISO 8601; write e.g. 2026-11-30T14:03:00Z',
        ),
        ({"trace_id": "x", "time": 1764511380, "inputs": {}}, 'field "time": not an ISO 8601'),
        ({"trace_id": "x", "time": "2026-11-30T14:03:00Z"}, 'missing field "inputs"'),
        (
            {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": "hi"},
            'field "inputs": Input should be an object; write a JSON object',
        ),
        (
            {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": {}, "user": "bob"},
            "field 4 is unknown; allowed: trace_id, time,",
        ),
        (
            {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": {}, "tool_calls": [{}]},
            'missing field "tool_calls[0].name"; write a list of {"name"',
        ),
        (
            {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": {}, "latency_ms": -3},
            'field "latency_ms": Input should be greater than or equal to 0; write a number',
        ),
        ([1, 2], "not a JSON object"),
    ],
)
def test_a_bad_line_says_where_what_and_how_to_fix_it(row: object, expected: str) -> None:
    with pytest.raises(TraceError) as err:
        parse(row)
    assert str(err.value).startswith("data/traces/a.jsonl:17: ")
    assert expected in str(err.value)


def test_invalid_json_and_bytes_that_are_not_utf8() -> None:
    with pytest.raises(TraceError, match=r"^a:1: not valid JSON \(.* at column 12\)"):
        Trace.from_json_line('{"trace_id"', "a:1")
    with pytest.raises(TraceError, match=r"^a:2: not UTF-8"):
        Trace.from_json_line(b'{"trace_id": "\xff"}', "a:2")


def test_errors_never_quote_the_values_of_the_line() -> None:
    secret = "jane.doe@example.com"
    for row in (
        {"trace_id": "x", "time": secret, "inputs": {}},
        {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": secret},
        {"trace_id": "x", "time": "2026-11-30T14:03:00Z", "inputs": {}, "latency_ms": secret},
    ):
        with pytest.raises(TraceError) as err:
            parse(row)
        assert secret not in str(err.value)
