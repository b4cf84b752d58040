"""Traces scored like replayed examples: `trace_as_run`, `score_traces`, the `tool_error`
evaluator, and how a tool call carries its error (JSONL, OTLP, redaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from evalkeeper import registry
from evalkeeper.models import EvaluatorRef, Score
from evalkeeper.monitor.scoring import outcome, score_traces, trace_as_run
from evalkeeper.registry import Runtime, build
from evalkeeper.settings import Settings
from evalkeeper.traces.batch import redact_trace
from evalkeeper.traces.model import Trace
from evalkeeper.traces.otlp import Span, map_trace
from evalkeeper.traces.otlp_decode import STATUS_ERROR


def trace(**fields: Any) -> Trace:
    base: dict[str, Any] = {"trace_id": "t-1", "time": "2026-11-30T14:03:00Z", "inputs": {"q": 1}}
    return Trace.model_validate(base | fields)


FAILED_CALL = {"name": "book_slot", "args": {"slot": 3}, "error": "HTTP 503"}
GOOD_CALL = {"name": "lookup", "args": {}}


def test_trace_as_run_is_an_example_and_its_run() -> None:
    t = trace(outputs={"reply": "ok"}, latency_ms=812.5, tool_calls=[GOOD_CALL, FAILED_CALL])
    example, run = trace_as_run(t, experiment_id="win-1")
    assert example.id == run.example_id == "t-1" and example.inputs == {"q": 1}
    assert run.experiment_id == "win-1" and run.latency_ms == 812.5 and run.error is None
    assert run.outputs == {"reply": "ok", "tool_calls": [GOOD_CALL, FAILED_CALL]}
    assert run.started_at == t.time
    # a failed run has no outputs, as a target that raised has none
    _, failed = trace_as_run(trace(error="Timeout", tool_calls=[GOOD_CALL]))
    assert failed.outputs is None and failed.error == "Timeout"
    # outputs that carry their own tool calls keep them
    _, own = trace_as_run(trace(outputs={"tool_calls": []}, tool_calls=[FAILED_CALL]))
    assert own.outputs == {"tool_calls": []}


@pytest.mark.parametrize(
    ("fields", "passed", "value", "words"),
    [
        ({"outputs": {"reply": "ok"}, "tool_calls": [GOOD_CALL]}, True, 0.0, "none failed"),
        ({"outputs": {}, "tool_calls": [GOOD_CALL, FAILED_CALL]}, False, 1.0, "1 of 2"),
        ({"error": "ValueError: boom"}, False, 1.0, "the run ended with an error"),
        ({"tool_calls": [FAILED_CALL]}, False, 1.0, "book_slot"),
        ({"outputs": {"reply": "ok"}}, True, 0.0, "0 tool call(s)"),
    ],
)
def test_tool_error_flags_failed_tools_and_failed_runs(
    fields: dict[str, Any], passed: bool, value: float, words: str
) -> None:
    ev = build("tool_error")
    (scores,) = asyncio.run(score_traces([trace(**fields)], [ev]))
    (s,) = scores
    assert s.name == "tool_error" and s.error is None
    assert s.passed is passed and s.value == value
    assert words in (s.comment or "")


def test_tool_error_without_outputs_or_error_cannot_judge() -> None:
    (scores,) = asyncio.run(score_traces([trace()], [build("tool_error")]))
    assert scores[0].error is not None and outcome(scores[0]) == "error"


def test_score_traces_keeps_the_evaluators_order_and_counts_outcomes(settings: Settings) -> None:
    evs = [
        build(EvaluatorRef(name=n), Runtime(settings=settings))
        for n in ("latency_ok", "tool_error")
    ]
    traces = [
        trace(trace_id="fast", outputs={}, latency_ms=100.0, tool_calls=[GOOD_CALL]),
        trace(trace_id="slow", outputs={}, latency_ms=5000.0, tool_calls=[FAILED_CALL]),
        trace(trace_id="failed", error="boom", latency_ms=10.0),
    ]
    scores = asyncio.run(score_traces(traces, evs))
    assert [[s.name for s in row] for row in scores] == [["latency_ok", "tool_error"]] * 3
    assert [[outcome(s) for s in row] for row in scores] == [
        ["pass", "pass"],
        ["flag", "flag"],
        ["error", "flag"],  # latency_ok cannot time a failed run; tool_error flags it
    ]


def test_async_evaluators_are_scored_concurrently_in_order(restore_registry: None) -> None:
    running = 0
    peak = 0

    @registry.evaluator("slow_async_check", version="1")
    def factory() -> Callable[..., Any]:
        async def score(run: Any = None) -> Score:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            return Score(passed=run.example_id != "t-3", value=1.0)

        return score

    traces = [trace(trace_id=f"t-{i}", outputs={}) for i in range(8)]
    scores = asyncio.run(score_traces(traces, [build("slow_async_check")], concurrency=4))
    assert [outcome(row[0]) for row in scores] == ["pass"] * 3 + ["flag"] + ["pass"] * 4
    assert 1 < peak <= 4


def test_outcome_counts_skips_and_missing_verdicts_as_errors() -> None:
    assert outcome(Score(passed=False)) == "flag"
    assert outcome(Score(passed=True)) == "pass"
    assert outcome(Score(error="judge down")) == "error"
    assert outcome(Score(skipped=True)) == "error"
    assert outcome(Score(value=0.3)) == "error"


def test_a_tool_error_survives_jsonl_and_is_redacted() -> None:
    t = Trace.from_json_line(
        '{"trace_id": "t", "time": "2026-11-30T14:03:00Z", "inputs": {}, '
        '"tool_calls": [{"name": "mail", "args": {}, "error": "bounced: ann@example.com"}]}'
    )
    assert t.tool_calls[0].error == "bounced: ann@example.com"
    assert Trace.from_json_line(t.to_json_line()) == t
    clean = redact_trace(
        t, lambda v: v.replace("ann@example.com", "<EMAIL>") if isinstance(v, str) else v
    )
    assert clean.tool_calls[0].error == "bounced: <EMAIL>"


def test_an_otlp_tool_span_with_error_status_carries_the_error() -> None:
    def span(
        i: int, parent: int | None, attributes: dict[str, Any] | None = None, **kw: Any
    ) -> Span:
        return Span(
            attributes=attributes or {}, resource={}, events=[],
            trace_id="0af7651916cd43dd8448eb211c80319c", span_id=f"{i:016x}",
            parent_span_id=f"{parent:016x}" if parent else "", name=f"s{i}", kind=1,
            start_ns=1_764_511_380_000_000_000, end_ns=1_764_511_380_100_000_000, **kw,
        )  # fmt: skip

    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "book"}
    mapped = map_trace(
        [span(1, None), span(2, 1, attributes=tool, status_code=STATUS_ERROR,
                             status_message="slot taken"), span(3, 1, attributes=tool)]
    )  # fmt: skip
    assert mapped["tool_calls"] == [
        {"name": "book", "args": {}, "error": "slot taken"},
        {"name": "book", "args": {}},
    ]
