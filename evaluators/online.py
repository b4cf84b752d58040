"""Online evaluators: reference-free checks of one production trace, for monitoring.

`tool_error` flags a trace in which a tool call returned an error, or the agent's run
itself ended with one. A trace is scored like a replayed example
(`evalkeeper.monitor.scoring.trace_as_run`): its tool calls are `outputs["tool_calls"]`,
each `{"name", "args"}` with an `"error"` when the call failed (the `ToolCall.error` of the
trace model; from OTLP, a tool span whose status is ERROR), and the agent's error is
`run.error`. `latency_ok` (in `evaluators.heuristic`) is the other bundled online evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evalkeeper.models import Example, RunRecord, Score
from evalkeeper.registry import Evaluator, evaluator
from evaluators.reference import NO_OUTPUTS, short

__all__ = ["tool_error"]


def _field(run: Any, name: str) -> Any:
    return run.get(name) if isinstance(run, Mapping) else getattr(run, name, None)


@evaluator("tool_error", version="1", kind="heuristic")
def tool_error(key: str = "tool_calls") -> Evaluator:
    """Fails when a tool call returned an error (`outputs[key][i]["error"]`) or the run did.

    value is the number of failed tool calls (1 for an agent error without tool
    calls). A run without outputs and without an error cannot be judged: an error score.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"key={key!r}: expected a non-empty string, e.g. 'tool_calls'")

    def score(
        *,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        reference_outputs: dict[str, Any] | None = None,
        run: RunRecord | None = None,
        example: Example | None = None,
    ) -> Score:
        agent_error = _field(run, "error") if run is not None else None
        if outputs is None and run is not None:
            outputs = _field(run, "outputs")
        calls = outputs.get(key, []) if isinstance(outputs, Mapping) else []
        if not isinstance(calls, list):
            return Score(error=f"outputs[{key!r}] is {type(calls).__name__}, not a list of calls")
        failed = [
            (str(c.get("name", "?")), str(c["error"]))
            for c in calls
            if isinstance(c, Mapping) and c.get("error")
        ]
        if agent_error:
            return Score(
                value=float(max(len(failed), 1)),
                passed=False,
                comment=f"the run ended with an error: {short(str(agent_error), 200)}"
                + (f"; {len(failed)} tool call(s) failed" if failed else ""),
                details={"agent_error": True, "failed_tools": [n for n, _ in failed]},
            )
        if outputs is None:
            return Score(error=f"{NO_OUTPUTS}: tool_error needs outputs or the run's error")
        if failed:
            name, message = failed[0]
            return Score(
                value=float(len(failed)),
                passed=False,
                comment=f"{len(failed)} of {len(calls)} tool call(s) failed, first "
                f"{name}: {short(message, 200)}",
                details={"agent_error": False, "failed_tools": [n for n, _ in failed]},
            )
        return Score(value=0.0, passed=True, comment=f"{len(calls)} tool call(s), none failed")

    return score
