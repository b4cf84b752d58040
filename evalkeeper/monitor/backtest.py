"""Backtest a monitoring window on recorded traffic: the same decision, no action.

`backtest(settings, spec, config)` reads every trace of a source (`jsonl:PATH`, …), keeps
the service's traces, samples them as the live monitor does (keyed hash of the trace id,
`evalkeeper.traces.sampling.sampled`), scores the baseline (the `baseline_hours` before the
deploy) and the window (the `window_hours` after it) with the online evaluators, then
replays the window tick by tick: at each tick the cumulative counts of the traces seen
before it go through `evalkeeper.monitor.decision.decide`, the same code the live ticks
run. The replay stops at the first rollback (a window acts once), at the window's end, or
at the last tick the recorded traffic reaches: a recording that ends before the window
does gives no final decision, and says so.

Nothing is written: no warehouse rows, no rollback, no event. (With a sample rate below 1
the redaction key is read, or generated beside the warehouse as ingest would, so that the
sample is the one the live monitor draws.)
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from evalkeeper.errors import InputError
from evalkeeper.models import EvaluatorRef
from evalkeeper.monitor.decision import (
    Decision,
    EvaluatorCounts,
    EvaluatorDecision,
    MonitorPolicy,
    decide,
)
from evalkeeper.monitor.scoring import Outcome, outcome, score_traces
from evalkeeper.registry import Runtime, build
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace, iso_utc
from evalkeeper.traces.sources import open_source

DEFAULT_EVALUATORS = ("latency_ok", "tool_error")
READ_BATCH = 5000
BAD_LINES_KEPT = 20


class BacktestError(InputError, ValueError):
    """A backtest that cannot run as asked (its configuration, or no traffic to replay);
    the message names the value or the source and the fix."""


@dataclass(frozen=True)
class BacktestConfig:
    """What to replay and how the window decides.

    service: the service whose traces count (`Trace.service`).
    deploy_at: the deploy's time (aware); the baseline ends and the window starts there.
    evaluators: the online evaluators, by registry name and arguments.
    baseline_hours, window_hours, tick_minutes: the periods, as the live monitor's.
    sample_rate: share of traces kept (keyed hash of the trace id), 0 < rate <= 1.
    policy: alpha, tolerance, minimum samples, error limit.
    """

    service: str
    deploy_at: datetime
    evaluators: tuple[EvaluatorRef, ...] = tuple(EvaluatorRef(name=n) for n in DEFAULT_EVALUATORS)
    baseline_hours: float = 168.0
    window_hours: float = 24.0
    tick_minutes: float = 15.0
    sample_rate: float = 1.0
    policy: MonitorPolicy = field(default_factory=MonitorPolicy)

    def __post_init__(self) -> None:
        if self.deploy_at.tzinfo is None:
            raise BacktestError("deploy_at has no UTC offset; write e.g. 2026-11-30T14:03:00Z")
        if not self.evaluators:
            raise BacktestError("no evaluators: name at least one, e.g. tool_error")
        if self.baseline_hours <= 0 or self.window_hours <= 0 or self.tick_minutes <= 0:
            raise BacktestError(
                f"baseline_hours={self.baseline_hours}, window_hours={self.window_hours}, "
                f"tick_minutes={self.tick_minutes}: every period must be positive"
            )
        if self.window_hours > 48:
            raise BacktestError(
                f"window_hours={self.window_hours}: a window lasts 48 hours at most"
            )
        if self.tick_minutes > self.window_hours * 60:
            raise BacktestError(
                f"tick_minutes={self.tick_minutes}: longer than the {self.window_hours} h window"
            )
        if not 0.0 < self.sample_rate <= 1.0:
            raise BacktestError(f"sample_rate={self.sample_rate}: use a share in (0, 1], e.g. 0.1")


@dataclass(frozen=True)
class Tick:
    """One replayed tick: its time, the window's traces so far, and the decision."""

    at: datetime
    window_traces: int
    decision: Decision
    evaluators: list[EvaluatorDecision]


@dataclass(frozen=True)
class BacktestResult:
    """The replayed window.

    decision: the last tick's window decision (`continue` when the recording ended first).
    decided_at: the tick that rolled back, or the window's end; None if neither came.
    evaluator: the evaluator behind a rollback or an inconclusive end (else None).
    baseline_traces, window_traces: sampled traces of the service on each side (the
    window's up to the last replayed tick).
    """

    service: str
    deploy_at: datetime
    decision: Decision
    decided_at: datetime | None
    evaluator: str | None
    baseline_traces: int
    window_traces: int
    ticks: list[Tick]
    reasons: list[str]
    notes: list[str]
    bad_lines: int
    bad_line_examples: list[str]

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the summary keys first, then the timeline."""
        return {
            "decision": self.decision,
            "decided_at": None if self.decided_at is None else iso_utc(self.decided_at),
            "evaluator": self.evaluator,
            "baseline_traces": self.baseline_traces,
            "window_traces": self.window_traces,
            "service": self.service,
            "deploy_at": iso_utc(self.deploy_at),
            "reasons": self.reasons,
            "notes": self.notes,
            "bad_lines": self.bad_lines,
            "bad_line_examples": self.bad_line_examples,
            "timeline": [
                {
                    "at": iso_utc(t.at),
                    "window_traces": t.window_traces,
                    "decision": t.decision,
                    "evaluators": [_evaluator_json(e) for e in t.evaluators],
                }
                for t in self.ticks
            ],
        }


def _evaluator_json(e: EvaluatorDecision) -> dict[str, Any]:
    return dataclasses.asdict(e)


async def backtest(settings: Settings, spec: str, config: BacktestConfig) -> BacktestResult:
    """Replay the window of `config` on the traces of source `spec` (see the module)."""
    evaluators = [build(ref, Runtime(settings=settings)) for ref in config.evaluators]
    names = [e.name for e in evaluators]
    if len(set(names)) != len(names):
        raise BacktestError(f"evaluators {names}: name each evaluator once")
    start = config.deploy_at - timedelta(hours=config.baseline_hours)
    end = config.deploy_at + timedelta(hours=config.window_hours)
    keep = _sampler(settings, config.sample_rate)

    source = open_source(spec, settings)
    cursor = None
    kept: list[Trace] = []
    services: set[str] = set()
    bad: list[str] = []
    n_bad = 0
    last_time: datetime | None = None
    while True:
        traces, errors, new_cursor = await source.read(cursor, max_traces=READ_BATCH)
        n_bad += len(errors)
        bad.extend(errors[: max(0, BAD_LINES_KEPT - len(bad))])
        for t in traces:
            last_time = t.time if last_time is None else max(last_time, t.time)
            if t.service != config.service:
                services.add(str(t.service))
                continue
            if start <= t.time < end and keep(t.trace_id):
                kept.append(t)
        if not traces and not errors and new_cursor == cursor:
            break
        cursor = new_cursor
    if last_time is None:
        raise BacktestError(f"{source.spec}: no traces to replay; check the path")
    if not kept:
        others = ", ".join(sorted(services)) or "none"
        raise BacktestError(
            f"{source.spec}: no trace of service {config.service!r} between {iso_utc(start)} "
            f"and {iso_utc(end)} (other services: {others}); check --service and --deploy-at"
        )

    kept.sort(key=lambda t: t.time)
    scores = await score_traces(kept, evaluators, experiment_id=f"backtest:{config.service}")
    times = [t.time for t in kept]
    split = bisect_left(times, config.deploy_at)
    outcomes = [[outcome(s) for s in row] for row in scores]
    base = [_count(outcomes[:split], j) for j in range(len(evaluators))]

    n_ticks = math.ceil(config.window_hours * 60 / config.tick_minutes - 1e-9)
    step = timedelta(minutes=config.tick_minutes)
    ticks: list[Tick] = []
    notes: list[str] = []
    result_decision: Decision = "continue"
    decided_at: datetime | None = None
    reasons: list[str] = []
    prefix = [(0, 0, 0)] * len(evaluators)
    history: dict[str, list[tuple[float, EvaluatorCounts]]] = {}
    seen_until = split
    for i in range(1, n_ticks + 1):
        at = min(config.deploy_at + i * step, end)
        if at - step > last_time:
            notes.append(
                f"the recorded traffic ends at {iso_utc(last_time)}, before the window's end "
                f"{iso_utc(end)}: no final decision"
            )
            break
        upto = bisect_left(times, at)
        new = outcomes[seen_until:upto]
        prefix = [_add(prefix[j], _count(new, j)) for j in range(len(evaluators))]
        seen_until = upto
        counts = [EvaluatorCounts(names[j], *base[j], *prefix[j]) for j in range(len(evaluators))]
        final = i == n_ticks
        elapsed = min((at - config.deploy_at) / (end - config.deploy_at), 1.0)
        d = decide(counts, config.policy, final=final, elapsed=elapsed, history=history)
        for c in counts:
            history.setdefault(c.evaluator, []).append((elapsed, c))
        ticks.append(Tick(at, upto - split, d.decision, d.evaluators))
        result_decision, reasons = d.decision, d.reasons
        if d.decision == "rollback" or final:
            decided_at = at
            break
    evaluator = _deciding_evaluator(ticks[-1].evaluators, result_decision) if ticks else None
    return BacktestResult(
        service=config.service,
        deploy_at=config.deploy_at,
        decision=result_decision,
        decided_at=decided_at,
        evaluator=evaluator,
        baseline_traces=split,
        window_traces=ticks[-1].window_traces if ticks else 0,
        ticks=ticks,
        reasons=reasons,
        notes=notes,
        bad_lines=n_bad,
        bad_line_examples=bad,
    )


def _sampler(settings: Settings, rate: float) -> Any:
    if rate >= 1.0:
        return lambda trace_id: True
    from evalkeeper.traces.keys import resolve_key
    from evalkeeper.traces.sampling import sampled

    key = resolve_key(settings).secret
    return lambda trace_id: sampled(trace_id, rate, key)


def _count(rows: list[list[Outcome]], j: int) -> tuple[int, int, int]:
    """(scored, flags, errors) of evaluator `j` over `rows`."""
    flags = sum(1 for r in rows if r[j] == "flag")
    errors = sum(1 for r in rows if r[j] == "error")
    return len(rows) - errors, flags, errors


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _deciding_evaluator(decisions: list[EvaluatorDecision], window: Decision) -> str | None:
    """The evaluator behind a rollback (the strongest evidence) or an inconclusive window."""
    if window == "rollback":
        hits = [e for e in decisions if e.decision == "rollback"]
        return max(hits, key=lambda e: (e.statistic or 0.0) - (e.threshold or 0.0)).evaluator
    if window == "inconclusive":
        return next(e.evaluator for e in decisions if e.decision == "inconclusive")
    return None
