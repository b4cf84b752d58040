"""Evaluators both ways: evalkeeper's in `langsmith.evaluate`, LangSmith's in the registry.

`to_langsmith(ref)` builds an evalkeeper evaluator (by registry name and arguments) as a
function of `(run, example)` — the form `langsmith.evaluate(..., evaluators=[…])` takes —
returning LangSmith's result shape `{"key", "score", "comment", "evaluator_info"}`. An
evaluator that errors raises `EvaluatorFailed`, so LangSmith records an error for it, never
a score; a skipped one answers `score: None` with the reason as comment.

`register_langsmith_evaluator(fn, name=, version=)` registers a LangSmith-style evaluator
function (any of `inputs, outputs, reference_outputs, run, example`; sync or async;
returning a dict `{"key", "score", "comment"}`, an `EvaluationResult`, `{"results": [one]}`,
a bool or a number) or an `openevals` evaluator (keyword-only `inputs, outputs,
reference_outputs, **kwargs`, returning such a dict or a list of one) under a name and
version in evalkeeper's registry. openevals is not needed: its callable shape is enough.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import UTC
from typing import Any

from evalkeeper import registry
from evalkeeper.errors import EvalkeeperError
from evalkeeper.models import EvaluatorRef, Example, ExampleMetadata, RunRecord, Score

OPENEVALS_KWARGS = ("inputs", "outputs", "reference_outputs")


class EvaluatorFailed(EvalkeeperError, RuntimeError):
    """An evalkeeper evaluator could not score a LangSmith run (its message is the error)."""


# -- evalkeeper -> LangSmith ---------------------------------------------------------------


def _ls_run_to_record(run: Any, example: Any) -> RunRecord:
    latency = None
    start, end = getattr(run, "start_time", None), getattr(run, "end_time", None)
    if start is not None and end is not None:
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        latency = (end - start).total_seconds() * 1000
    return RunRecord(
        experiment_id=str(getattr(run, "session_id", None) or "langsmith"),
        example_id=str(getattr(example, "id", None) or getattr(run, "id", "")),
        outputs=getattr(run, "outputs", None),
        latency_ms=latency,
        error=getattr(run, "error", None),
    )


def _ls_example(example: Any) -> Example | None:
    if example is None:
        return None
    return Example(
        id=str(example.id),
        inputs=dict(example.inputs or {}),
        reference_outputs=dict(example.outputs or {}),
        metadata=ExampleMetadata.model_validate(dict(example.metadata or {})),
    )


def to_langsmith(
    ref: EvaluatorRef | str, runtime: registry.Runtime | None = None
) -> Callable[[Any, Any], dict[str, Any]]:
    """An evalkeeper evaluator as a LangSmith evaluator `(run, example) -> result dict`."""
    built = registry.build(ref, runtime)
    if built.summary:
        raise ValueError(
            f"evaluator {built.name!r} scores a whole experiment; pass a per-example "
            "evaluator (summary evaluators are run by evalkeeper itself)"
        )

    def evaluate(run: Any, example: Any) -> dict[str, Any]:
        ex = _ls_example(example)
        score = asyncio.run(
            built(
                inputs=ex.inputs if ex else dict(getattr(run, "inputs", None) or {}),
                outputs=getattr(run, "outputs", None) or {},
                reference_outputs=ex.reference_outputs if ex else {},
                run=_ls_run_to_record(run, example),
                example=ex,
            )
        )
        if score.error is not None:
            raise EvaluatorFailed(f"{built.name} {built.version}: {score.error}")
        result: dict[str, Any] = {
            "key": built.name,
            "score": score.value,
            "comment": score.comment,
            "evaluator_info": {"version": built.version, "args_hash": built.args_hash},
        }
        if score.skipped:
            result["comment"] = f"skipped: {score.comment or 'not configured'}"
        return result

    evaluate.__name__ = built.name
    evaluate.__qualname__ = built.name
    return evaluate


# -- LangSmith / openevals -> evalkeeper -----------------------------------------------------


def from_langsmith_result(result: Any) -> Score:
    """A LangSmith or openevals evaluator's result as a Score."""
    if hasattr(result, "model_dump") and not isinstance(result, Score):
        result = result.model_dump()
    if isinstance(result, dict) and "results" in result:
        result = result["results"]
    if isinstance(result, list):
        if len(result) != 1:
            raise ValueError(
                f"the evaluator returned {len(result)} results; register one evaluator per "
                "key (evalkeeper stores one score per evaluator)"
            )
        result = result[0]
        if hasattr(result, "model_dump"):
            result = result.model_dump()
    if not isinstance(result, dict):
        return registry.to_score(result)
    raw = result.get("score")
    value = result.get("value")
    details = {
        k: v
        for k, v in result.items()
        if k not in ("score", "comment") and v is not None and not callable(v)
    }
    if isinstance(raw, bool):
        return Score(value=float(raw), passed=raw, comment=result.get("comment"), details=details)
    if isinstance(raw, int | float):
        return Score(value=float(raw), comment=result.get("comment"), details=details)
    if raw is None and isinstance(value, bool):
        return Score(value=float(value), passed=value, comment=result.get("comment"))
    raise ValueError(
        f"the evaluator returned score {raw!r} (value {value!r}); return a bool or a "
        "number as `score`"
    )


def _call_kwargs(fn: Callable[..., Any]) -> tuple[str, ...]:
    params = inspect.signature(fn).parameters
    named = tuple(n for n in registry.EXAMPLE_KWARGS if n in params)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # openevals: no run/example
        named = tuple(dict.fromkeys((*named, *OPENEVALS_KWARGS)))
    if not named:
        raise ValueError(
            f"{getattr(fn, '__name__', fn)!r}: takes none of {', '.join(registry.EXAMPLE_KWARGS)}; "
            "a LangSmith-style evaluator takes some of them by name"
        )
    return named


def register_langsmith_evaluator(
    fn: Callable[..., Any],
    *,
    name: str,
    version: str,
    kind: registry.Kind = "heuristic",
) -> Callable[..., registry.Evaluator]:
    """Register `fn` (LangSmith-style or openevals) as evaluator `name`, `version`."""
    wanted = _call_kwargs(fn)

    def pick(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: kwargs.get(k) for k in wanted}

    if inspect.iscoroutinefunction(fn):

        async def score_async(
            inputs: Any = None,
            outputs: Any = None,
            reference_outputs: Any = None,
            run: Any = None,
            example: Any = None,
        ) -> Score:
            kw = dict(
                inputs=inputs,
                outputs=outputs,
                reference_outputs=reference_outputs,
                run=run,
                example=example,
            )
            return from_langsmith_result(await fn(**pick(kw)))

        scoring: registry.Evaluator = score_async
    else:

        def score_sync(
            inputs: Any = None,
            outputs: Any = None,
            reference_outputs: Any = None,
            run: Any = None,
            example: Any = None,
        ) -> Score:
            kw = dict(
                inputs=inputs,
                outputs=outputs,
                reference_outputs=reference_outputs,
                run=run,
                example=example,
            )
            result = fn(**pick(kw))
            if inspect.isawaitable(result):
                raise TypeError(f"{name}: returned an awaitable from a sync function")
            return from_langsmith_result(result)

        scoring = score_sync

    def factory() -> registry.Evaluator:
        return scoring

    factory.__doc__ = (inspect.getdoc(fn) or f"LangSmith-style evaluator {name}").splitlines()[0]
    return registry.evaluator(name, version=version, kind=kind)(factory)
