"""Scoring production traces with the online evaluators, like replayed examples.

`trace_as_run(trace)` turns a trace into what every evaluator takes: an `Example` (the
trace's inputs, no reference) and a `RunRecord` (its outputs, latency and error). The
trace's tool calls go into `outputs["tool_calls"]` as `{"name", "args"}` (with `"error"`
when the call failed), the shape the demo agent and `tool_call_correct` use, unless the
outputs already carry that key. A trace whose run failed has no outputs, as a target that
raised has none.

`score_traces(traces, evaluators)` scores each trace with each built evaluator
(`evalkeeper.registry.build`) and returns the scores per trace, in the evaluators' order;
`outcome(score)` says how a monitor counts one: a flag (failed), a pass, or an error (the
evaluator could not score, skipped, or gave no pass/fail). That rule is `classify`, its one
definition: a tick applies it to stored score rows too (`evalkeeper.monitor.tick`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from evalkeeper.models import Example, ExampleMetadata, RunRecord, Score
from evalkeeper.registry import BuiltEvaluator
from evalkeeper.traces.model import Trace

Outcome = Literal["flag", "pass", "error"]
DEFAULT_CONCURRENCY = 32
"""Traces scored at once when an evaluator is async (a judge)."""


def trace_as_run(trace: Trace, *, experiment_id: str = "traces") -> tuple[Example, RunRecord]:
    """The trace as an example (its inputs) and the run of it (outputs, latency, error).

    `experiment_id` names what the run belongs to (a monitoring window's id)."""
    outputs: dict[str, Any] | None = None
    if trace.error is None and (trace.outputs is not None or trace.tool_calls):
        outputs = dict(trace.outputs or {})
        if trace.tool_calls and "tool_calls" not in outputs:
            outputs["tool_calls"] = [c.model_dump(exclude_none=True) for c in trace.tool_calls]
    metadata = ExampleMetadata(promoted_from_run=trace.trace_id)
    example = Example.model_construct(
        id=trace.trace_id, inputs=trace.inputs, reference_outputs={}, metadata=metadata
    )
    run = RunRecord(
        experiment_id=experiment_id,
        example_id=trace.trace_id,
        outputs=outputs,
        latency_ms=trace.latency_ms,
        error=trace.error,
        started_at=trace.time,
    )
    return example, run


async def score_traces(
    traces: Sequence[Trace],
    evaluators: Sequence[BuiltEvaluator],
    *,
    experiment_id: str = "traces",
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[list[Score]]:
    """Each trace's scores, one per evaluator in `evaluators`' order. Never raises for an
    evaluator's failure: that is an error score."""
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency}: score at least 1 trace at a time")
    pairs = [trace_as_run(t, experiment_id=experiment_id) for t in traces]
    if not any(ev.is_async for ev in evaluators):
        return [await _score_one(ex, run, evaluators) for ex, run in pairs]
    gate = asyncio.Semaphore(concurrency)

    async def bounded(ex: Example, run: RunRecord) -> list[Score]:
        async with gate:
            return await _score_one(ex, run, evaluators)

    return list(await asyncio.gather(*(bounded(ex, run) for ex, run in pairs)))


async def _score_one(
    example: Example, run: RunRecord, evaluators: Sequence[BuiltEvaluator]
) -> list[Score]:
    kwargs = {
        "inputs": example.inputs,
        "outputs": run.outputs,
        "reference_outputs": example.reference_outputs,
        "run": run,
        "example": example,
    }
    return [await ev(**kwargs) for ev in evaluators]


def classify(passed: bool | None, errored: bool, skipped: bool) -> Outcome:
    """The monitor's counting rule: `error` when the evaluator could not score (`errored`),
    skipped (no judge endpoint) or gave no pass/fail (none of those is a pass); else `pass`,
    or `flag` when it failed."""
    if errored or skipped or passed is None:
        return "error"
    return "pass" if passed else "flag"


def outcome(score: Score) -> Outcome:
    """How the monitor counts a score: `flag` (failed), `pass`, or `error` (`classify`)."""
    return classify(score.passed, score.error is not None, score.skipped)
