"""The assembler: spans of one trace in any order and in several adds become one trace,
with bounded memory and every span it does not keep counted. Time moves by hand."""

from __future__ import annotations

import pytest

from evalkeeper.traces.otlp import Assembler, BufferFull, Span, span_cost


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def span(trace: int, span_id: int, parent: int | None = None) -> Span:
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else "",
        name=f"s{span_id}",
        kind=1,
        start_ns=span_id,
        end_ns=span_id + 10,
        attributes={},
        resource={},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_trace_completes_after_its_root_and_the_settle_period(clock: Clock) -> None:
    a = Assembler(settle_s=2, clock=clock)
    a.add([span(1, 3, parent=1), span(1, 2, parent=1)])
    clock.now += 10
    assert a.due() == []  # no root yet: children wait
    a.add([span(1, 1)])
    clock.now += 1.9
    assert a.due() == []
    a.add([span(1, 4, parent=2)])  # a new span restarts the quiet period
    clock.now += 1.9
    assert a.due() == []
    clock.now += 0.2
    (trace,) = a.due()
    assert sorted(s.span_id for s in trace) == [f"{i:016x}" for i in (1, 2, 3, 4)]
    assert (a.open_traces, a.open_spans, a.stats.traces_completed) == (0, 0, 1)


def test_traces_complete_independently(clock: Clock) -> None:
    a = Assembler(settle_s=1, clock=clock)
    a.add([span(1, 1), span(2, 5)])
    clock.now += 0.5
    a.add([span(2, 6, parent=5)])
    clock.now += 0.6
    (first,) = a.due()
    assert first[0].trace_id == f"{1:032x}"
    clock.now += 0.5
    (second,) = a.due()
    assert len(second) == 2


def test_a_trace_whose_root_never_comes_is_completed_after_root_wait(clock: Clock) -> None:
    a = Assembler(settle_s=1, root_wait_s=30, clock=clock)
    a.add([span(1, 2, parent=1)])
    clock.now += 29
    assert a.due() == []
    clock.now += 1
    (trace,) = a.due()
    assert a.stats.traces_without_root == 1 and len(trace) == 1


def test_late_spans_are_counted_and_reported(clock: Clock) -> None:
    a = Assembler(settle_s=1, clock=clock)
    a.add([span(1, 1)])
    clock.now += 1
    assert len(a.due()) == 1
    result = a.add([span(1, 2, parent=1), span(1, 3, parent=1), span(2, 9)])
    assert (result.accepted, result.late) == (1, 2)
    assert a.stats.late_spans == 2
    assert "2 span(s) arrived after their trace was completed" in result.message(1000, 1)


def test_the_open_trace_limit_completes_the_least_recent_or_throttles(clock: Clock) -> None:
    a = Assembler(settle_s=5, max_open_traces=2, clock=clock)
    a.add([span(1, 1)])  # has its root
    a.add([span(2, 2, parent=99)])  # no root
    clock.now += 1
    a.add([span(3, 3)])  # evicts trace 1: completed early
    (early,) = a.due()
    assert early[0].trace_id == f"{1:032x}"
    # trace 2 has no root: rather than drop it, the export is told to retry (429)
    with pytest.raises(BufferFull) as full:
        a.add([span(4, 4)])
    assert full.value.retry_after_s >= 1
    assert (a.stats.evicted_early, a.stats.dropped_traces, a.stats.dropped_spans) == (1, 0, 0)
    assert a.open_traces == 2 and a.open_spans == 2
    assert a.stats.throttled_requests == 1


def test_spans_over_the_per_trace_limit_are_rejected_but_the_root_is_kept(clock: Clock) -> None:
    a = Assembler(settle_s=1, max_spans_per_trace=3, clock=clock)
    result = a.add([span(1, i, parent=1) for i in range(2, 7)])
    assert (result.accepted, result.rejected) == (3, 2)
    assert a.add([span(1, 1)]).accepted == 1  # the root, over the limit
    clock.now += 1
    (trace,) = a.due()
    assert len(trace) == 4 and any(not s.parent_span_id for s in trace)
    assert "2 span(s) over the limit of 3" in result.message(3, 1)


def test_a_span_sent_twice_is_kept_once(clock: Clock) -> None:
    a = Assembler(settle_s=1, clock=clock)
    a.add([span(1, 1), span(1, 2, parent=1)])
    a.add([span(1, 2, parent=1)])
    assert a.stats.duplicate_spans == 1
    clock.now += 1
    (trace,) = a.due()
    assert len(trace) == 2


def test_flush_completes_every_open_trace(clock: Clock) -> None:
    a = Assembler(settle_s=100, clock=clock)
    a.add([span(1, 1), span(2, 3, parent=2)])
    traces = a.flush()
    assert sorted(t[0].trace_id for t in traces) == [f"{1:032x}", f"{2:032x}"]
    assert a.open_traces == 0 and a.stats.traces_without_root == 1


def test_completed_ids_are_remembered_within_bounds(clock: Clock) -> None:
    a = Assembler(settle_s=0, completed_memory=2, clock=clock)
    for t in (1, 2, 3):
        a.add([span(t, t)])
    assert len(a.due()) == 3
    # trace 1 fell out of the memory: a span for it opens a new trace, 3 is still known
    assert a.add([span(1, 10, parent=1)]).late == 0
    assert a.add([span(3, 11, parent=3)]).late == 1


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_open_traces"):
        Assembler(max_open_traces=0)


def test_the_bytes_held_are_bounded_and_given_back_once_stored(clock: Clock) -> None:
    cost = span_cost(span(1, 1))
    a = Assembler(settle_s=1, root_wait_s=5, max_buffer_bytes=3 * cost, clock=clock)
    a.add([span(1, 1), span(2, 2, parent=9)])  # one trace with its root, one without
    assert a.held_bytes == 2 * cost
    with pytest.raises(BufferFull) as full:
        a.add([span(3, 3), span(4, 4)])  # two more do not fit: nothing of them is taken
    assert full.value.status_code == 429
    assert full.value.retry_after_s == 1  # the rooted trace settles within a second
    assert (a.open_traces, a.held_bytes, a.stats.throttled_requests) == (2, 2 * cost, 1)
    with pytest.raises(BufferFull):
        a.reserve(2 * cost)  # a request body that cannot be read now
    clock.now += 1
    (done,) = a.due()
    assert a.held_bytes == 2 * cost  # handed to the store: held until released
    a.release([done])
    assert a.held_bytes == cost
    a.add([span(3, 3), span(4, 4)])
    assert (a.open_traces, a.held_bytes) == (3, 3 * cost)
    clock.now += 5
    a.release(a.due())
    assert a.held_bytes == 0
