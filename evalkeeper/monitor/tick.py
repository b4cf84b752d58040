"""A tick: advance every open monitoring window as of a time, then deliver pending rollbacks.

One tick:
1. ingests the new traces from the configured source (`EVALKEEPER_TRACES`) through the
   trace store, from its stored cursor (redacted, sampled and deduplicated there);
2. for each open window, finds the traces not yet scored for it: the new version's, from
   the deploy to the tick's as-of time, and the baseline's (the previous version's traces
   of the baseline period), keeps the window's sample (a keyed hash of the trace id, at
   the config's `sample_rate`), scores them with the window's online evaluators;
3. recounts each evaluator's flags, errors and traces on both sides from the stored scores
   plus the new ones (by one rule, `evalkeeper.monitor.scoring.classify`), decides
   (`evalkeeper.monitor.decision.decide`), and writes the scores, the tick, its counts,
   the window's new state and (on `rollback`) the rollback decision in one transaction
   (a window that cannot be decided raises `WindowUndecidable`: the tick names it among
   its problems and goes on);
4. delivers every rollback decision not yet delivered that it can claim
   (`evalkeeper.monitor.rollback`; a claim is taken in the warehouse, so concurrent ticks
   deliver a decision once; a locked warehouse skips delivery until the next tick).

Crash-safe and idempotent: the scores are keyed (window, trace, evaluator) and a trace is
scored only when it has no score for the window, the counts are recomputed from the
stored scores rather than added to, and a tick's writes are one transaction. A tick that
dies anywhere leaves either all of its writes or none; the next tick (or the same one
rerun) resumes from the warehouse and counts every trace once.

`now` is injected (`monitor tick --now`): a tick evaluates as of that time, never of the
wall clock, so a test or an operator can replay a window without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl
from pydantic import BaseModel, Field

from evalkeeper import registry
from evalkeeper.errors import EvalkeeperError
from evalkeeper.models import Score, canonical_json, utcnow
from evalkeeper.monitor.decision import EvaluatorCounts, EvaluatorDecision, MonitorPolicy, decide
from evalkeeper.monitor.journal import journal_dir
from evalkeeper.monitor.journal import replay as replay_journal
from evalkeeper.monitor.rollback import (
    Delivery,
    EventEmitter,
    channels_for,
    deliver_pending,
    rollback_frame,
)
from evalkeeper.monitor.scoring import classify, score_traces
from evalkeeper.monitor.signing import require_key
from evalkeeper.monitor.windows import Window, list_windows, load_window, window_frame
from evalkeeper.settings import Settings
from evalkeeper.traces.ingest import IngestSummary, ingest
from evalkeeper.traces.keys import REDACTION_KEY_VARIABLE
from evalkeeper.traces.model import Trace, iso_utc
from evalkeeper.traces.sources import open_source
from evalkeeper.traces.store import TRACE_FIELDS, trace_from_row
from evalkeeper.warehouse import Warehouse, WarehouseLocked
from evalkeeper.warehouse.tables import table_frame

log = logging.getLogger(__name__)

SCORE_CHUNK = 2000
_COLUMNS = ", ".join(f't."{c}"' for c in TRACE_FIELDS)

AfterDecision = Callable[["WindowTick"], None]
"""Called after a tick's writes are committed and before any delivery (for tests: a crash
between the decision and its delivery)."""


class WindowUndecidable(EvalkeeperError, ValueError):
    """This window cannot be decided (its evaluators are all retired, or cannot be built
    from its config): the tick says so as a problem and goes on with the other windows."""


class WindowTick(BaseModel):
    """What one tick did to one window."""

    window_id: str = Field(description="The window.")
    service: str = Field(description="Its service.")
    version: str = Field(description="The version watched.")
    tick_at: datetime = Field(description="The as-of time (the window's end at the latest).")
    final: bool = Field(description="The window's end is reached.")
    decision: str = Field(description="The window's decision at this tick.")
    state: str = Field(description="open or closed after the tick.")
    new_window_traces: int = Field(description="Window traces scored by this tick.")
    new_baseline_traces: int = Field(description="Baseline traces scored by this tick.")
    sampled_out: int = Field(description="Unscored traces left out by the window's sample.")
    reasons: list[str] = Field(default_factory=list, description="Why, in words.")
    evaluators: list[EvaluatorDecision] = Field(
        default_factory=list, description="Per evaluator: its counts, decision and evidence."
    )
    rollback_decided: bool = Field(False, description="This tick decided a rollback.")


class TickSummary(BaseModel):
    """What one tick did: ingest, windows advanced, rollbacks delivered."""

    now: datetime = Field(description="The tick's as-of time.")
    ingest: IngestSummary | None = Field(None, description="The source's ingest, when set.")
    windows: list[WindowTick] = Field(default_factory=list, description="Windows advanced.")
    deliveries: list[Delivery] = Field(default_factory=list, description="Rollback deliveries.")
    problems: list[str] = Field(default_factory=list, description="What needs a human.")


def require_tick_keys(settings: Settings) -> None:
    """Raise `WeakSecret` when the rollback signing secret, or the redaction key of a tick
    that ingests (`EVALKEEPER_TRACES`), is configured but empty or under 16 bytes: a tick
    may sign a rollback and redact traces, and must do neither with such a key."""
    require_key(settings.monitor.rollback_secret, "EVALKEEPER_ROLLBACK_SECRET")
    if settings.monitor.traces:
        require_key(settings.redaction.key, REDACTION_KEY_VARIABLE, standard=False)


async def tick(
    settings: Settings,
    *,
    now: datetime | None = None,
    window_id: str | None = None,
    emitter: EventEmitter | None = None,
    after_decision: AfterDecision | None = None,
    deliver: bool = True,
) -> TickSummary:
    """Advance every open window (or only `window_id`) as of `now` (default: the clock).
    Refuses to start (`WeakSecret`) when a key it may use is configured but cannot be one."""
    require_tick_keys(settings)
    when = now or utcnow()
    summary = TickSummary(now=when)
    if journal_dir(settings).is_dir():  # deploys accepted by an app, maybe not yet stored
        await asyncio.to_thread(replay_journal, settings)
    if settings.monitor.traces:
        summary.ingest = await ingest(settings, open_source(settings.monitor.traces, settings))
        if summary.ingest.bad_lines:
            summary.problems.append(
                f"{settings.monitor.traces}: {summary.ingest.bad_lines} bad line(s) skipped, e.g. "
                + "; ".join(summary.ingest.errors[:3])
            )
    if window_id is not None:
        windows = [load_window(settings, window_id)]
    else:
        windows = await asyncio.to_thread(list_windows, settings, state="open")
    for window in windows:
        if window.state != "open":
            continue
        try:
            done = await tick_window(settings, window, when, emitter=emitter)
        except WindowUndecidable as exc:  # said, and the other windows go on
            summary.problems.append(str(exc))
            continue
        summary.windows.append(done)
        if after_decision is not None:
            after_decision(done)
    if deliver:
        try:
            summary.deliveries = await deliver_pending(
                settings, emitter=emitter, window_id=window_id
            )
        except WarehouseLocked as exc:  # a claim needs the warehouse: the next tick retries
            summary.problems.append(f"rollback delivery skipped this tick: {exc}")
        # a failed attempt is said at every tick, a decision with no channel once
        summary.problems += [
            f"rollback of {d.window_id}: {d.problem}"
            for d in summary.deliveries
            if d.status == "failed" or d.first_notice
        ]
    summary.problems += [
        f"{w.window_id} ({w.service} {w.version}): inconclusive: {'; '.join(w.reasons)}"
        for w in summary.windows
        if w.decision == "inconclusive"
    ]
    return summary


async def tick_window(
    settings: Settings, window: Window, now: datetime, *, emitter: EventEmitter | None = None
) -> WindowTick:
    """Score what is new for one window as of `now`, recount, decide and store it all."""
    wh = Warehouse.from_settings(settings)
    cfg = window.config
    tick_at = min(now, window.ends_at)
    final = now >= window.ends_at
    runtime = registry.Runtime(settings=settings, warehouse=wh)
    retired = await asyncio.to_thread(_retired, wh)
    try:
        evaluators = [registry.build(r, runtime) for r in cfg.evaluators if r.name not in retired]
    except registry.EvaluatorConfigError as exc:  # the window's config, not a bug
        raise WindowUndecidable(str(exc)) from exc
    notes = [retired[r.name] for r in cfg.evaluators if r.name in retired]
    for note in notes:  # a retired judge stops deciding windows too, and the tick says so
        log.warning("%s: %s", window.window_id, note)
    if not evaluators:
        raise WindowUndecidable(
            f"window {window.window_id}: every online evaluator is a retired judge "
            f"({'; '.join(notes)}): add another evaluator to "
            f"{settings.monitor.monitors_dir / (window.service + '.toml')}, or calibrate a new "
            "version of the judge"
        )
    ids = await asyncio.to_thread(_unscored, wh, window, tick_at)
    keep = _sampler(settings, cfg.sample_rate)
    kept = [(tid, phase) for tid, phase in ids if keep(tid)]
    phases = dict(kept)
    score_rows: list[dict[str, Any]] = []
    created = utcnow()
    for start in range(0, len(kept), SCORE_CHUNK):
        chunk = [tid for tid, _ in kept[start : start + SCORE_CHUNK]]
        traces = await asyncio.to_thread(_load_traces, wh, chunk)
        scores = await score_traces(traces, evaluators)
        for trace, per_trace in zip(traces, scores, strict=True):
            for ev, score in zip(evaluators, per_trace, strict=True):
                score_rows.append(
                    _score_row(window, trace, phases[trace.trace_id], ev, score, tick_at, created)
                )
    new = table_frame("monitoring_scores", score_rows, orient="row")
    names = [e.name for e in evaluators]
    channels = channels_for(settings, cfg.rollback_command, emitter)
    updated, ev_ticks, new = await asyncio.to_thread(
        _commit, wh, window, tick_at, final, new, names, channels
    )
    n_window, n_baseline = _new_traces(new)
    decision = updated.decision
    if decision == "rollback":
        log.warning("%s (%s %s): ROLLBACK decided: %s", window.window_id, window.service,
                    window.version, "; ".join(updated.reasons))  # fmt: skip
    return WindowTick(
        window_id=window.window_id,
        service=window.service,
        version=window.version,
        tick_at=tick_at,
        final=final,
        decision=decision,
        state=updated.state,
        new_window_traces=n_window,
        new_baseline_traces=n_baseline,
        sampled_out=len(ids) - len(kept),
        reasons=[*updated.reasons, *notes],
        evaluators=ev_ticks,
        rollback_decided=decision == "rollback",
    )


def _retired(wh: Warehouse) -> dict[str, str]:
    """Judges retired by calibration (name -> the note to show)."""
    from evalkeeper.warehouse.queries import retired_judges

    with wh.reading() as con:
        return {
            name: note.replace("not used in this verdict", "not used by this window")
            for name, note in retired_judges(con).items()
        }


TickDone = tuple[Window, list[EvaluatorDecision], pl.DataFrame]


def _commit(
    wh: Warehouse,
    window: Window,
    tick_at: datetime,
    final: bool,
    new: pl.DataFrame,
    names: list[str],
    channels: list[str],
) -> TickDone:
    """Recount, decide and write the tick, holding the warehouse: no other process can
    store scores for the window between the count and the write.

    While another process holds the file read-only past the lock wait (an analyst), the
    recount reads the stored and spooled rows (`Warehouse.reading`) and the tick's batch
    goes to the spool, ingested in order by the next writer (its rows are keyed: a
    concurrent tick's overlap is stored once, and the counts are recomputed from the
    scores)."""
    args = (window, tick_at, final, new, names, channels)
    try:
        with wh.connect(wait_s=wh.write_wait_s) as con:
            done, batch = _count(con, *args)
            wh.write(batch)  # in the same hold of the file
            return done
    except WarehouseLocked:
        wh.spooling = True  # the next windows of this tick do not wait again
    with wh.reading() as con:
        done, batch = _count(con, *args)
    wh.write(batch)  # to the spool (the snapshot closed first: one handle per file)
    return done


def _count(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    tick_at: datetime,
    final: bool,
    new: pl.DataFrame,
    names: list[str],
    channels: list[str],
) -> tuple[TickDone, dict[str, pl.DataFrame]]:
    """The tick's recount and decision on `con`, and the batch that stores it."""
    cfg = window.config
    now_stored = con.sql(
        "SELECT * FROM monitoring_windows WHERE window_id = ?", params=[window.window_id]
    ).pl()
    if now_stored.height and now_stored["state"][0] != "open":  # stopped or decided meanwhile
        return (Window.from_row(now_stored.row(0, named=True)), [], new.clear()), {}
    if new.height:  # scores a concurrent tick stored meanwhile are not counted twice
        stored = con.execute(
            "SELECT trace_id FROM monitoring_scores WHERE window_id = ? "
            "AND trace_id IN (SELECT unnest(?))",
            [window.window_id, new["trace_id"].unique().to_list()],
        ).fetchall()
        if stored:
            new = new.filter(~pl.col("trace_id").is_in([r[0] for r in stored]))
    counts = _counts(con, window, tick_at, new, names)
    policy = MonitorPolicy(
        alpha=cfg.alpha,
        tolerance=cfg.tolerance,
        min_baseline=cfg.min_baseline,
        min_window=cfg.min_window,
        max_error_rate=cfg.max_error_rate,
        method=cfg.method,
    )
    decided = decide(
        counts,
        policy,
        final=final,
        elapsed=elapsed_share(window, tick_at),
        history=_history(con, window, tick_at),
    )
    decision = decided.decision
    if final and decision == "continue":  # the end of the window always settles it
        decision = "inconclusive"
    closed = decision == "rollback" or final
    reasons = list(decided.reasons)
    updated = window.model_copy(
        update={
            "decision": decision,
            "reasons": reasons,
            "state": "closed" if closed else "open",
            "closed_at": tick_at if closed else None,
            "last_tick_at": tick_at,
            "updated_at": utcnow(),
        }
    )
    ev_ticks = decided.evaluators
    n_window, n_baseline = _new_traces(new)
    tick_row = {
        "window_id": window.window_id,
        "tick_at": tick_at,
        "decision": decision,
        "final": final,
        "reasons": canonical_json(reasons),
        "new_window_traces": n_window,
        "new_baseline_traces": n_baseline,
        "ticked_at": utcnow(),
    }
    batch: dict[str, pl.DataFrame] = {
        "monitoring_scores": new,
        "monitoring_ticks": table_frame("monitoring_ticks", [tick_row], orient="row"),
        "monitoring_counts": table_frame(
            "monitoring_counts",
            [
                {"window_id": window.window_id, "tick_at": tick_at, **_count_row(t)}
                for t in ev_ticks
            ],
            orient="row",
        ),
        "monitoring_windows": window_frame([updated]),
    }
    if decision == "rollback":
        trigger = next((t for t in ev_ticks if t.decision == "rollback"), None)
        batch["monitoring_rollbacks"] = rollback_frame(
            window.window_id,
            tick_at,
            trigger.evaluator if trigger else "",
            channels,
            rollback_payload(updated, tick_at, ev_ticks),
        )
    return (updated, ev_ticks, new), batch


def elapsed_share(window: Window, tick_at: datetime) -> float:
    """The share of the window's time elapsed at `tick_at`, in [0, 1]: the time the
    `spending` test spends alpha by."""
    length = (window.ends_at - window.deployed_at).total_seconds()
    done = (tick_at - window.deployed_at).total_seconds()
    return min(max(done / length, 0.0), 1.0) if length > 0 else 1.0


def _history(
    con: duckdb.DuckDBPyConnection, window: Window, tick_at: datetime
) -> dict[str, list[tuple[float, EvaluatorCounts]]]:
    """Per evaluator, the window's stored looks before `tick_at` (oldest first): what the
    `spending` test's boundary follows from. A rerun of a tick at the same time reads the
    same looks (its own earlier row is replaced, not read), so it decides the same."""
    rows = con.execute(
        "SELECT tick_at, evaluator, baseline_n, baseline_flags, baseline_errors, window_n, "
        "window_flags, window_errors FROM monitoring_counts "
        "WHERE window_id = ? AND tick_at < ? ORDER BY tick_at, evaluator",
        [window.window_id, tick_at],
    ).fetchall()
    out: dict[str, list[tuple[float, EvaluatorCounts]]] = {}
    for at, name, *numbers in rows:
        out.setdefault(name, []).append(
            (elapsed_share(window, at), EvaluatorCounts(name, *numbers))
        )
    return out


def _new_traces(new: pl.DataFrame) -> tuple[int, int]:
    """(window, baseline) traces among new score rows."""
    per = dict(new.group_by("phase").agg(pl.col("trace_id").n_unique()).iter_rows())
    return int(per.get("window", 0)), int(per.get("baseline", 0))


def rollback_payload(window: Window, decided_at: datetime, ticks: list[EvaluatorDecision]) -> dict:
    """The rollback call's body: the deploy, the decision and its evidence."""
    return {
        "type": "evalkeeper.rollback",
        "window_id": window.window_id,
        "deploy_id": window.deploy_id,
        "service": window.service,
        "environment": window.environment,
        "version": window.version,
        "rollback_to": window.previous_version,
        "deployed_at": iso_utc(window.deployed_at),
        "decided_at": iso_utc(decided_at),
        "reasons": window.reasons,
        "evidence": [asdict(t) for t in ticks if t.decision == "rollback"],
    }


# -- helpers ---------------------------------------------------------------------------


def _sampler(settings: Settings, rate: float) -> Callable[[str], bool]:
    if rate >= 1.0:
        return lambda _trace_id: True
    from evalkeeper.traces.keys import resolve_key
    from evalkeeper.traces.sampling import sampled

    key = resolve_key(settings).secret
    return lambda trace_id: sampled(trace_id, rate, key)


def _baseline_ranges(window: Window) -> list[tuple[datetime, datetime]]:
    if window.config.baseline_mode == "before":
        return [(window.baseline_start, window.baseline_end)]
    length = window.ends_at - window.deployed_at
    out = []
    day = 1
    while window.deployed_at - timedelta(days=day) >= window.baseline_start:
        start = window.deployed_at - timedelta(days=day)
        out.append((start, min(start + length, window.baseline_end)))
        day += 1
    return out


def _unscored(wh: Warehouse, window: Window, tick_at: datetime) -> list[tuple[str, str]]:
    """(trace id, phase) of the window's and the baseline's traces it has no score for."""
    ranges = _baseline_ranges(window)
    baseline_time = " OR ".join("(t.time >= ? AND t.time < ?)" for _ in ranges)
    base_version = "t.version = ?" if window.previous_version else "t.version IS DISTINCT FROM ?"
    sql = f"""
        SELECT t.trace_id,
               CASE WHEN t.version = ? AND t.time >= ? THEN 'window' ELSE 'baseline' END AS phase
        FROM traces t
        WHERE t.service = ?
          AND ((t.version = ? AND t.time >= ? AND t.time <= ?)
               OR ({base_version} AND ({baseline_time})))
          AND NOT EXISTS (SELECT 1 FROM monitoring_scores s
                          WHERE s.window_id = ? AND s.trace_id = t.trace_id)
        ORDER BY t.time, t.trace_id
    """
    params: list[Any] = [window.version, window.deployed_at, window.service, window.version]
    params += [window.deployed_at, tick_at, window.previous_version or window.version]
    for start, end in ranges:
        params += [start, end]
    params.append(window.window_id)
    return [(r[0], r[1]) for r in wh.rows(sql, params)]


def _load_traces(wh: Warehouse, trace_ids: list[str]) -> list[Trace]:
    frame = wh.query(
        f"SELECT {_COLUMNS} FROM traces t WHERE t.trace_id IN (SELECT unnest(?)) "
        "ORDER BY t.time, t.trace_id",
        [trace_ids],
    )
    return [trace_from_row(r) for r in frame.iter_rows(named=True)]


def _score_row(
    window: Window,
    trace: Trace,
    phase: str,
    ev: registry.BuiltEvaluator,
    score: Score,
    tick_at: datetime,
    created: datetime,
) -> dict[str, Any]:
    return {
        "window_id": window.window_id,
        "trace_id": trace.trace_id,
        "evaluator": ev.name,
        "phase": phase,
        "trace_time": trace.time,
        "evaluator_version": ev.version,
        "evaluator_args_hash": ev.args_hash,
        "value": score.value,
        "passed": score.passed,
        "comment": score.comment,
        "error": score.error,
        "skipped": score.skipped,
        "tick_at": tick_at,
        "created_at": created,
    }


def _count_row(decision: EvaluatorDecision) -> dict[str, Any]:
    """An evaluator's decision as a `monitoring_counts` row: everything but `alpha`,
    `null_rate`, `method`, `spent` and `analyses`, which follow from the window's stored
    config and its earlier rows (alpha over the evaluators; the rate + tolerance; the
    spending test's looks)."""
    row = asdict(decision)
    for key in ("alpha", "null_rate", "method", "spent", "analyses"):
        del row[key]
    return row


# The window's stored scores, grouped by what the counting rule (`scoring.classify`) reads.
_STORED_GROUPS = """
    SELECT evaluator, phase, passed, error IS NOT NULL AS errored, skipped, count(*) AS n
    FROM monitoring_scores
    WHERE window_id = ? AND (phase = 'baseline' OR trace_time <= ?)
    GROUP BY ALL
"""


def _counts(
    con: Any, window: Window, tick_at: datetime, new: pl.DataFrame, evaluators: list[str]
) -> list[EvaluatorCounts]:
    """Each evaluator's counts on both sides, from the stored scores plus the new ones:
    both are grouped by the rule's inputs, and `classify` counts each group once."""
    groups = con.execute(_STORED_GROUPS, [window.window_id, tick_at]).fetchall()
    if new.height:
        errored = pl.col("error").is_not_null().alias("errored")
        groups += (
            new.group_by("evaluator", "phase", "passed", errored, "skipped").agg(pl.len()).rows()
        )
    totals: dict[tuple[str, str], Counter[str]] = {}
    for name, phase, passed, is_error, skipped, n in groups:
        totals.setdefault((name, phase), Counter())[classify(passed, is_error, skipped)] += n
    out = []
    for name in evaluators:
        b = totals.get((name, "baseline"), Counter())
        w = totals.get((name, "window"), Counter())
        # n counts the scored traces (flagged or passed); an error is counted apart, never
        # as a pass (EvaluatorCounts)
        out.append(EvaluatorCounts(name, b["flag"] + b["pass"], b["flag"], b["error"],
                                   w["flag"] + w["pass"], w["flag"], w["error"]))  # fmt: skip
    return out
