"""Replay a trace: run the current target on its inputs N times, score each, and say
whether the failure reproduces (the seed's triage rule).

    report = await replay(settings, trace, target_spec="evalkeeper.demo.agent:v2", repeat=5)
    report.verdict      # deterministic | intermittent | not_reproduced | undetermined

The target is loaded and called exactly as a suite run does (`load_target`, the runner's
`call_target`: its timeout, retries of transient errors, latency timing), and each answer
is scored by registry evaluators through the runner's `score`. The original trace is
scored by the same evaluators (its outputs, latency and error as recorded), to show both
side by side.

What counts (the definitions the verdict rests on):
- an attempt **fails** when the target errored (an exception, an HTTP error, a timeout),
  or when at least one evaluator scored it and did not pass it;
- it **passes** when the target answered and every evaluator that scored it passed it,
  at least one having scored;
- it is **unscored** when the target answered but no evaluator could score it (all
  errored or were skipped): neither a pass nor a failure.

The verdict over N attempts: `deterministic` when every attempt failed; `intermittent`
when some failed and some passed (k of N: a non-determinism problem: sampling
temperature, retrieval drift, a flaky tool); `not_reproduced` when every attempt passed;
`undetermined` when some were unscored and the rest do not settle it, or when every
attempt passed but no evaluator that can judge the complaint scored them.

An evaluator **can judge the complaint** when it reads the answer's content against
something: the example's reference (kind ``reference``, or one promote checks the
reference for: `REFERENCE_NEEDS`, e.g. `tool_call_correct`) or an LLM judge (kinds
``judge`` and ``groundedness``). Heuristics (`latency_ok`, `tool_error`) and reference-free
structural checks (`json_schema`) cannot: a wrong answer passes them. Their failures still
count (a target error or a slow answer is a failure), but their passes alone never make
`not_reproduced`: the replay is `undetermined`, and says how to give it a judge (promote
the trace with a reference, or configure a judge).

Evaluators: the ones named; else, when the trace was promoted into a dataset (an example
with `promoted_from_run` = the trace id in `settings.datasets_dir`), that dataset's
evaluators with the example's reference; else the reference-free ones (`latency_ok`, and
the reference-free judges when a judge is configured). Summary evaluators (a whole
experiment's p95) do not score single runs and are left out.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

from evalkeeper import registry
from evalkeeper.datasets import DatasetError, load_dataset
from evalkeeper.errors import InputError
from evalkeeper.models import (
    Dataset,
    EvaluatorRef,
    Example,
    Experiment,
    RunRecord,
    Score,
    TargetPin,
    utcnow,
)
from evalkeeper.run.runner import Runner
from evalkeeper.run.targets import load_target
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace
from evalkeeper.traces.promote import REFERENCE_NEEDS, find_promoted
from evalkeeper.warehouse import Warehouse

__all__ = [
    "Attempt",
    "ReplayReport",
    "can_judge",
    "default_evaluators",
    "promoted_example",
    "replay",
    "verdict_of",
]

Outcome = Literal["failed", "passed", "unscored"]
Verdict = Literal["deterministic", "intermittent", "not_reproduced", "undetermined"]
REFERENCE_FREE = ("latency_ok",)


class ReplayError(InputError, ValueError):
    """A replay that cannot run as asked (`--repeat`, `--evaluators`); the message says
    how to ask."""


class ReplayScore(BaseModel):
    """One evaluator's score of one attempt."""

    name: str = Field(description="Evaluator name.")
    passed: bool | None = Field(description="Pass/fail; None when it errored or was skipped.")
    value: float | None = Field(description="Numeric score, when any.")
    comment: str | None = Field(description="Why, in words.")
    error: str | None = Field(description="Why it could not score, when it could not.")
    skipped: bool = Field(description="Not configured for this run (e.g. a judge).")


class Attempt(BaseModel):
    """The original run, or one replay of it."""

    repetition: int | None = Field(description="0..N-1; None for the original trace.")
    outputs: dict[str, Any] | None = Field(description="What the target answered.")
    error: str | None = Field(description="The target's error, when it had one.")
    latency_ms: float | None = Field(description="How long the call took.")
    scores: list[ReplayScore] = Field(description="The evaluators' scores.")
    outcome: Outcome = Field(description="failed, passed or unscored (see the module doc).")
    reasons: list[str] = Field(description="Why it failed: the target error, failing checks.")


class ReplayReport(BaseModel):
    """What a replay found."""

    trace_id: str = Field(description="The trace replayed.")
    target: TargetPin = Field(description="The target run, pinned.")
    repeat: int = Field(description="How many times it ran.")
    evaluators: list[str] = Field(description="The evaluators that scored each attempt.")
    evaluators_from: str = Field(
        description="Where they came from: `--evaluators`, `dataset NAME`, `reference-free`."
    )
    example_id: str | None = Field(
        None, description="The dataset example the trace was promoted into, when it was."
    )
    original: Attempt = Field(description="The trace as recorded, scored the same way.")
    attempts: list[Attempt] = Field(description="The replays, in order.")
    failures: int = Field(description="Attempts that failed.")
    passes: int = Field(description="Attempts that passed.")
    unscored: int = Field(description="Attempts no evaluator could score.")
    verdict: Verdict = Field(
        description="deterministic, intermittent, not_reproduced, undetermined."
    )
    message: str = Field(description="The verdict in one sentence.")


def verdict_of(failures: int, passes: int, unscored: int) -> tuple[Verdict, str]:
    """The verdict and its sentence from the attempts' outcomes."""
    n = failures + passes + unscored
    if unscored:
        if failures and passes:
            return "intermittent", (
                f"fails sometimes ({failures} of {n}; {unscored} could not be scored): a "
                "non-determinism problem (sampling temperature, retrieval drift, a flaky tool)"
            )
        return "undetermined", (
            f"{unscored} of {n} attempt(s) could not be scored ({failures} failed, {passes} "
            "passed): fix the evaluators' errors (below) or name others with --evaluators"
        )
    if failures == n:
        return "deterministic", f"fails every time ({n} of {n}): a deterministic failure"
    if failures:
        return "intermittent", (
            f"fails sometimes ({failures} of {n}): a non-determinism problem (sampling "
            "temperature, retrieval drift, a flaky tool)"
        )
    return "not_reproduced", (
        f"does not fail (0 of {n}): not reproduced by this target; if the original failed, "
        "the cause was elsewhere (a fixed bug, the environment, the data of that day)"
    )


def can_judge(name: str) -> bool:
    """Whether the evaluator `name` can judge a trace's complaint (see the module doc)."""
    reg = registry.available().get(name)
    kind = reg.kind if reg is not None else None
    return name in REFERENCE_NEEDS or kind in ("reference", "judge", "groundedness")


def no_judge_message(trace_id: str, n: int, scored: list[str]) -> str:
    """The `undetermined` sentence of attempts that passed only evaluators that cannot
    judge the complaint."""
    return (
        f"passed {n} of {n}, but only {', '.join(scored) or 'no evaluator'} scored them, "
        "which cannot tell a wrong answer from a right one: cannot tell whether the failure "
        "reproduces. Give it a reference: `evalkeeper promote "
        f"{trace_id} --dataset NAME --reference '{{…}}' --incident INC-… --category …`, then "
        "replay again (its dataset's evaluators score it), or --evaluators NAME with one "
        "that uses that reference (e.g. tool_call_correct, contains); or configure a judge "
        "(EVALKEEPER_JUDGE_BASE_URL, EVALKEEPER_JUDGE_MODEL) for the reference-free judges"
    )


def _outcome(error: str | None, scores: list[Score]) -> tuple[Outcome, list[str]]:
    reasons = []
    if error is not None:
        reasons.append(f"target error: {error}")
    reasons += [f"{s.name}: {s.comment or 'failed'}" for s in scores if s.passed is False]
    if reasons:
        return "failed", reasons
    if any(s.passed is True for s in scores):
        return "passed", []
    return "unscored", []


def _attempt(repetition: int | None, run: RunRecord, scores: list[Score]) -> Attempt:
    outcome, reasons = _outcome(run.error, scores)
    return Attempt(
        repetition=repetition,
        outputs=run.outputs,
        error=run.error,
        latency_ms=run.latency_ms,
        scores=[
            ReplayScore(
                name=s.name,
                passed=s.passed,
                value=s.value,
                comment=s.comment,
                error=s.error,
                skipped=s.skipped,
            )
            for s in scores
        ],
        outcome=outcome,
        reasons=reasons,
    )


def promoted_example(settings: Settings, trace_id: str) -> tuple[Dataset, Example] | None:
    """The dataset and example the trace was promoted into (datasets that cannot be read
    are passed over: replaying must not depend on an unrelated broken file)."""
    directory = settings.datasets_dir
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.jsonl")):
        try:
            dataset = load_dataset(path, directory)
        except DatasetError:
            continue
        example = find_promoted(dataset, trace_id)
        if example is not None:
            return dataset, example
    return None


def default_evaluators(settings: Settings) -> list[EvaluatorRef]:
    """The reference-free evaluators for a trace that is in no dataset."""
    refs = [EvaluatorRef(name=n) for n in REFERENCE_FREE]
    if settings.judge.base_url and settings.judge.model:
        for name, reg in sorted(registry.available().items()):
            if reg.kind == "judge" and not reg.summary and name not in REFERENCE_NEEDS:
                refs.append(EvaluatorRef(name=name))
    return refs


def original_outputs(trace: Trace) -> dict[str, Any] | None:
    """The trace's outputs, with its tool calls under `tool_calls` when the outputs do not
    hold them (the trace model keeps them apart; evaluators read them from the outputs)."""
    if trace.outputs is None:
        return None
    outputs = dict(trace.outputs)
    if "tool_calls" not in outputs and trace.tool_calls:
        outputs["tool_calls"] = [c.model_dump() for c in trace.tool_calls]
    return outputs


async def replay(
    settings: Settings,
    trace: Trace,
    *,
    target_spec: str,
    repeat: int = 5,
    evaluators: list[str] | None = None,
) -> ReplayReport:
    """Run `target_spec` on the trace's inputs `repeat` times and score each attempt."""
    if repeat < 1:
        raise ReplayError(f"--repeat {repeat}: run the target at least once (e.g. --repeat 5)")
    found = promoted_example(settings, trace.trace_id)
    configured = {r.name: r for r in found[0].config.evaluators} if found else {}
    if evaluators is not None:
        refs = [configured.get(n, EvaluatorRef(name=n)) for n in evaluators]
        source = "--evaluators"
    elif found is not None and configured:
        refs, source = list(configured.values()), f"dataset {found[0].name}"
    else:
        refs, source = default_evaluators(settings), "reference-free"
    runtime = registry.Runtime(settings=settings, experiment_id=f"replay-{trace.trace_id}")
    built = [registry.build(r, runtime) for r in refs]
    built = [e for e in built if not e.summary]
    if not built:
        raise ReplayError(
            "no evaluator scores single runs here (summary evaluators such as latency_p95 "
            "score whole experiments): name some with --evaluators, e.g. latency_ok"
        )
    example = Example(
        id=found[1].id if found else trace.trace_id,
        inputs=trace.inputs,
        reference_outputs=found[1].reference_outputs if found else {},
    )
    target = load_target(
        target_spec,
        timeout_s=settings.runner.timeout_s,
        git_commit=settings.git_commit,
        git_branch=settings.git_branch,
    )
    experiment = Experiment(
        experiment_id=runtime.experiment_id or "replay",
        suite="full",
        dataset=found[0].name if found else "trace",
        dataset_version="replay",
        target=target.pin,
        evaluators=refs,
        repetitions=repeat,
    )
    runner = Runner(
        settings=settings,
        experiment=experiment,
        target=target,
        evaluators=built,
        warehouse=Warehouse.from_settings(settings),  # never written: a replay stores nothing
        concurrency=1,
    )
    limit = asyncio.Semaphore(settings.runner.concurrency)

    async def one(rep: int) -> Attempt:
        async with limit:
            run, _ = await runner.call_target(example, rep)
        return _attempt(rep, run, await runner.score(example, run))

    try:
        attempts = list(await asyncio.gather(*(one(r) for r in range(repeat))))
    finally:
        await target.aclose()
    recorded = RunRecord(
        experiment_id=experiment.experiment_id,
        example_id=example.id,
        outputs=original_outputs(trace),
        latency_ms=trace.latency_ms,
        error=trace.error,
        started_at=trace.time if trace.time else utcnow(),
    )
    original = _attempt(None, recorded, await runner.score(example, recorded))
    counts = {o: sum(a.outcome == o for a in attempts) for o in ("failed", "passed", "unscored")}
    verdict, message = verdict_of(counts["failed"], counts["passed"], counts["unscored"])
    scored = sorted({s.name for a in attempts for s in a.scores if s.passed is not None})
    if verdict == "not_reproduced" and not any(can_judge(n) for n in scored):
        verdict, message = "undetermined", no_judge_message(trace.trace_id, repeat, scored)
    return ReplayReport(
        trace_id=trace.trace_id,
        target=target.pin,
        repeat=repeat,
        evaluators=[e.name for e in runner.scored_by],
        evaluators_from=source,
        example_id=found[1].id if found else None,
        original=original,
        attempts=attempts,
        failures=counts["failed"],
        passes=counts["passed"],
        unscored=counts["unscored"],
        verdict=verdict,
        message=message,
    )
