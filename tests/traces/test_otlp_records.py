"""The assembler with GenAI log records: joined to their span as span events whether they
come before or after it, in the same byte budget as spans, every record it does not join
counted. Time moves by hand."""

from __future__ import annotations

import pytest

from evalkeeper.traces.otlp import (
    Assembler,
    BufferFull,
    LogRecord,
    Span,
    map_trace,
    record_cost,
    span_cost,
)
from tests.traces.test_otlp_assembler import Clock, span

DETAILS = "gen_ai.client.inference.operation.details"


def record(
    trace: int, span_id: int, *, at: int = 5, text: str = "hello", size: int = 300
) -> LogRecord:
    return LogRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        name=DETAILS,
        time_ns=at,
        attributes={
            "gen_ai.input.messages": [
                {"role": "user", "parts": [{"type": "text", "content": text}]}
            ],
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "answer " + text}]}
            ],
        },
        size=size,
    )


def chat(trace: int, span_id: int, parent: int) -> Span:
    s = span(trace, span_id, parent)
    s.attributes["gen_ai.operation.name"] = "chat"
    s.size = 500
    return s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.parametrize("records_first", [True, False])
def test_records_join_their_span_in_either_order(clock: Clock, records_first: bool) -> None:
    a = Assembler(settle_s=2, clock=clock)
    spans = [span(1, 1), chat(1, 2, parent=1)]
    records = [record(1, 2, at=7, text="second"), record(1, 2, at=3, text="first")]
    if records_first:
        a.add_records(records)
        clock.now += 1
        a.add(spans)
    else:
        a.add(spans)
        clock.now += 1
        a.add_records(records)
    held = a.held_bytes
    assert held == sum(span_cost(s) for s in spans) + sum(record_cost(r) for r in records)
    clock.now += 2.1
    (trace,) = a.due()
    chat_span = next(s for s in trace if s.span_id == f"{2:016x}")
    assert [e.name for e in chat_span.events] == [DETAILS, DETAILS]
    assert chat_span.events[0].time_ns == 3  # in time order
    assert a.held_bytes == held  # the records' memory moved with them, to the handed-out trace
    a.release([trace])
    assert a.held_bytes == 0
    assert a.stats.joined_log_records == 2 and a.open_log_records == 0
    mapped = map_trace(trace)
    assert mapped["inputs"]["messages"][0]["content"] == "first"


def test_records_without_their_trace_are_orphans_counted_and_dropped(clock: Clock) -> None:
    a = Assembler(settle_s=1, root_wait_s=10, clock=clock)
    a.add_records([record(7, 2), record(7, 3)])
    clock.now += 5
    assert a.due() == [] and a.open_log_records == 2
    clock.now += 6
    assert a.due() == []  # no trace is made of records alone
    assert a.stats.orphan_log_records == 2 and a.stats.traces_completed == 0
    assert a.held_bytes == 0 and a.open_traces == 0
    a.add([span(7, 1)])  # a span after the orphans were evicted starts the trace afresh
    assert a.stats.late_spans == 0 and a.open_traces == 1


def test_a_record_naming_a_span_not_in_its_trace_is_counted(clock: Clock) -> None:
    a = Assembler(settle_s=1, clock=clock)
    a.add([span(1, 1)])
    a.add_records([record(1, 9)])
    clock.now += 2
    (trace,) = a.due()
    assert trace[0].events == []
    assert a.stats.unmatched_log_records == 1
    a.release([trace])
    assert a.held_bytes == 0


def test_duplicates_late_records_and_the_per_trace_limit(clock: Clock) -> None:
    a = Assembler(settle_s=1, max_spans_per_trace=2, max_records_per_trace=3, clock=clock)
    result = a.add_records([record(1, 1, at=i) for i in range(5)] + [record(1, 1, at=0)])
    assert (result.accepted, result.rejected, result.duplicates) == (3, 2, 1)
    assert "over the limit of 3 per trace" in result.message(3, 1)
    a.add([span(1, 1)])
    clock.now += 2
    (trace,) = a.due()
    late = a.add_records([record(1, 1, at=99)])
    assert late.late == 1 and a.stats.late_log_records == 1
    assert "after their trace was completed" in late.message(3, 1)
    a.release([trace])
    assert a.held_bytes == 0


def test_records_count_against_the_byte_budget(clock: Clock) -> None:
    a = Assembler(settle_s=1, max_buffer_bytes=3 * record_cost(record(1, 1)), clock=clock)
    a.add_records([record(1, 1, at=1), record(2, 1, at=1), record(3, 1, at=1)])
    with pytest.raises(BufferFull) as full:
        a.add_records([record(4, 1)])
    assert full.value.retry_after_s >= 1 and a.stats.throttled_requests == 1
    with pytest.raises(BufferFull):
        a.add([span(1, 1)])  # spans and records share the budget
    assert a.open_log_records == 3 and a.open_spans == 0
