"""The async runner: target calls with bounded concurrency, timeouts, retries; scoring;
rows streamed to the warehouse in batches.

Memory stays flat: examples are taken from a shared iterator by `concurrency` workers, and
finished rows wait in a small buffer that a single writer flushes (in a thread, so the
event loop keeps serving targets) every `flush_rows` rows or `flush_s` seconds. A row's
run, its scores and any rows its evaluators queued (judge votes, cache entries) are written
in the same transaction, so a crash loses at most the unflushed buffer, and a resumed run
redoes exactly the rows that are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from evalkeeper.models import (
    Example,
    Experiment,
    RunRecord,
    Score,
    canonical_json,
    json_text,
    utcnow,
)
from evalkeeper.registry import BuiltEvaluator
from evalkeeper.run.targets import Target, TargetError
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.results import ShardWriter
from evalkeeper.warehouse.tables import TABLES, table_frame


@dataclass
class Tally:
    """Per-evaluator counts for this process's rows (the summary when the file is locked)."""

    n: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    value_sum: float = 0.0
    values: int = 0

    def add(self, s: Score) -> None:
        self.n += 1
        if s.skipped:
            self.skipped += 1
        elif s.error is not None:
            self.errors += 1
        elif s.passed is True:
            self.passed += 1
        elif s.passed is False:
            self.failed += 1
        if s.value is not None and not s.skipped:
            self.value_sum += s.value
            self.values += 1


@dataclass(frozen=True)
class Item:
    """One (example, repetition) to run. `prior_attempts` > 0: the row exists with a failed
    target call; it is re-attempted and replaces the stored row (attempts add up)."""

    example: Example
    repetition: int = 0
    prior_attempts: int = 0


@dataclass(frozen=True)
class Rescore:
    """A stored run to score again (or for the first time) with some evaluators."""

    example: Example
    run: RunRecord
    evaluators: tuple[BuiltEvaluator, ...]


@dataclass
class ShardResult:
    rows: int = 0
    target_errors: int = 0
    retried: int = 0
    rescored: int = 0
    skipped_existing: int = 0
    spooled_batches: int = 0
    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    wall_s: float = 0.0


class RowBuffer:
    """Rows per table, turned into frames and written in one transaction per flush.

    One write is in flight at a time (in a worker thread, so the event loop keeps serving
    targets). While it runs, rows keep collecting; past `BACKPRESSURE` x `flush_rows` the
    workers wait for it, so memory stays bounded whatever the warehouse's speed.
    """

    BACKPRESSURE = 10

    def __init__(self, warehouse: Warehouse | ShardWriter, flush_rows: int, flush_s: float) -> None:
        self.warehouse = warehouse
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.rows = 0
        self.last_flush = time.monotonic()
        self.pending: asyncio.Task[str] | None = None
        self.lock = asyncio.Lock()
        self.spooled = 0
        self.writes = 0

    def emit(self, table: str, row: dict[str, Any]) -> None:
        self.tables[table].append(row)

    def row_done(self) -> bool:
        """Count one finished example row; True when a flush is due."""
        self.rows += 1
        if self.pending is not None and not self.pending.done():
            return self.rows >= self.BACKPRESSURE * self.flush_rows
        return self.rows >= self.flush_rows or time.monotonic() - self.last_flush >= self.flush_s

    async def _settle(self) -> None:
        if self.pending is not None:
            if await self.pending == "spooled":
                self.spooled += 1
            self.pending = None

    async def flush(self) -> None:
        """Hand the buffered rows to the writer (after the previous write has finished)."""
        async with self.lock:  # FIFO: batches reach the warehouse in the order cut
            await self._settle()
            if not self.tables:
                return
            tables, self.tables = self.tables, defaultdict(list)
            self.rows = 0
            self.last_flush = time.monotonic()
            self.writes += 1
            self.pending = asyncio.create_task(asyncio.to_thread(self._write, tables))

    def _write(self, tables: dict[str, list[dict[str, Any]]]) -> str:
        """In the writer thread: frames are built off the event loop too."""
        return self.warehouse.write({t: _frame(t, rows) for t, rows in tables.items()})

    async def close(self) -> None:
        await self.flush()
        async with self.lock:
            await self._settle()


# Frames typed as declared, for the runner's own rows: their times travel as integer
# microseconds (polars converts datetime objects ~10x slower).
MICROS_TABLES = ("runs", "scores")


def _frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    if table in MICROS_TABLES:
        return table_frame(table, rows, micros=True)
    # rows queued by evaluators (judge votes, the judge cache): nested values JSON-encoded
    rows = [
        {k: canonical_json(v) if isinstance(v, dict | list) else v for k, v in r.items()}
        for r in rows
    ]
    if table in TABLES:
        return table_frame(table, rows)
    return pl.DataFrame(rows, infer_schema_length=None)  # a supersede entry: keys only


class Deadlines:
    """Per-call timeouts for many short calls, from one watchdog task.

    `asyncio.timeout` arms and disarms a timer for every call: ~5-10 us, a tenth of the
    runner's whole per-example cost on an instant target. Here a call registers its task
    and deadline in a dict; one watchdog wakes every `tick_s` (a tenth of the timeout, at
    most 0.5 s), cancels the tasks past their deadline and marks them, and the call turns
    its own marked cancellation into a `TimeoutError` (and `uncancel`s the task, as
    `asyncio.timeout` does). A call is in the dict only while it awaits the target, so a
    cancellation can land nowhere else. A timeout fires at most `tick_s` late.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick_s = min(0.5, timeout_s / 10)
        self.inflight: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.watchdog: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            for task, deadline in list(self.inflight.items()):
                if deadline <= now and task not in self.expired:
                    self.expired.add(task)
                    task.cancel()

    async def call(self, coro: Any) -> Any:
        """Await `coro`; TimeoutError once it has run past the timeout."""
        task = asyncio.current_task()
        assert task is not None
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = asyncio.ensure_future(self._watch())
        self.inflight[task] = time.monotonic() + self.timeout_s
        try:
            return await coro
        except asyncio.CancelledError:
            if task in self.expired:
                task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            del self.inflight[task]
            self.expired.discard(task)

    async def aclose(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
            self.watchdog = None


class Runner:
    """Runs one experiment's pending (example, repetition) items against a target."""

    def __init__(
        self,
        *,
        settings: Settings,
        experiment: Experiment,
        target: Target | None,
        evaluators: list[BuiltEvaluator],
        warehouse: Warehouse | ShardWriter,
        concurrency: int,
        progress: bool = False,
        buffer: RowBuffer | None = None,
    ) -> None:
        self.settings = settings
        self.experiment = experiment
        self.target = target
        self.evaluators = [e for e in evaluators if not e.summary]
        self.sync_evaluators = [e for e in self.evaluators if not e.is_async]
        self.async_evaluators = [e for e in self.evaluators if e.is_async]
        self.scored_by = self.sync_evaluators + self.async_evaluators  # the order of `score`
        self.warehouse = warehouse
        self.concurrency = concurrency
        self.progress = progress
        self.buffer = buffer or RowBuffer(
            warehouse, settings.runner.flush_rows, settings.runner.flush_s
        )
        self.result = ShardResult()
        self.deadlines = Deadlines(settings.runner.timeout_s)
        pin = experiment.target
        self._prov = {
            "dataset_version": experiment.dataset_version,
            "target_spec": pin.spec,
            "agent_version": pin.agent_version,
            "model": pin.model,
            "git_commit": pin.git_commit,
        }

    async def call_target(
        self, example: Example, repetition: int, prior_attempts: int = 0
    ) -> tuple[RunRecord, Any]:
        s = self.settings
        attempts = 0
        started = utcnow()

        def record(outputs: Any, latency_ms: float | None, error: str | None) -> RunRecord:
            # built from values this runner owns (the target's outputs are checked to be a
            # dict): no validation pass, which was ~5% of the per-example CPU
            return RunRecord.model_construct(
                experiment_id=self.experiment.experiment_id,
                example_id=example.id,
                repetition=repetition,
                outputs=outputs,
                latency_ms=latency_ms,
                error=error,
                attempts=prior_attempts + attempts,
                started_at=started,
            )

        while True:
            attempts += 1
            t0 = time.perf_counter()
            try:
                assert self.target is not None, "a runner without a target only rescores"
                reply = await self.deadlines.call(self.target(example.id, example.inputs))
                latency = (
                    reply.latency_ms
                    if reply.latency_ms is not None
                    else (time.perf_counter() - t0) * 1000
                )
                return record(reply.outputs, latency, None), None
            except TimeoutError:
                error = f"timeout after {s.runner.timeout_s:g}s"
                transient = False
            except TargetError as exc:
                error, transient = str(exc), exc.transient
            except Exception as exc:  # the target's own bug: recorded, the suite goes on
                error, transient = f"{type(exc).__name__}: {exc}", False
            if not transient or attempts > s.runner.retries:
                return record(None, None, error), error
            await asyncio.sleep(s.runner.backoff_s * 2 ** (attempts - 1))

    async def score(
        self, example: Example, run: RunRecord, evaluators: tuple[BuiltEvaluator, ...] | None = None
    ) -> list[Score]:
        """Scores of `run` by the runner's evaluators (or `evaluators`), in `scored_by`
        order (sync ones first, then the async ones concurrently)."""
        kwargs = {
            "inputs": example.inputs,
            "outputs": run.outputs,
            "reference_outputs": example.reference_outputs,
            "run": run,
            "example": example,
        }
        sync, asyn = self.sync_evaluators, self.async_evaluators
        if evaluators is not None:
            sync = [e for e in evaluators if not e.is_async]
            asyn = [e for e in evaluators if e.is_async]
        scores = [await ev(**kwargs) for ev in sync]
        if len(asyn) == 1:
            scores.append(await asyn[0](**kwargs))
        elif asyn:
            scores.extend(await asyncio.gather(*(ev(**kwargs) for ev in asyn)))
        return scores

    def _emit_scores(
        self,
        example: Example,
        run: RunRecord,
        evaluators: list[BuiltEvaluator],
        scores: list[Score],
    ) -> None:
        now_us = time.time_ns() // 1000
        category = example.metadata.category
        for ev, sc in zip(evaluators, scores, strict=True):
            self.result.tallies[ev.name].add(sc)
            details = sc.details
            self.buffer.emit(
                "scores",
                {
                    "experiment_id": run.experiment_id,
                    "example_id": run.example_id,
                    "repetition": run.repetition,
                    "evaluator": ev.name,
                    "evaluator_version": ev.version,
                    "evaluator_args_hash": ev.args_hash,
                    "value": sc.value,
                    "passed": sc.passed,
                    "comment": sc.comment,
                    "error": sc.error,
                    "skipped": sc.skipped,
                    "details": None if details is None else json_text(details),
                    "created_at": now_us,
                    "category": category,
                    "judge_model": details.get("judge_model") if details else None,
                    **self._prov,
                },
            )

    async def record(self, item: Item, run: RunRecord, error: str | None) -> None:
        """Score one finished target call and queue its rows (run, scores) for the writer;
        a re-attempted row first supersedes the stored one (same transaction)."""
        example, repetition = item.example, item.repetition
        if error is not None:
            self.result.target_errors += 1
        scores = await self.score(example, run)
        buf = self.buffer
        if item.prior_attempts:
            self.result.retried += 1
            buf.emit(
                "supersede_runs",
                {
                    "experiment_id": run.experiment_id,
                    "example_id": run.example_id,
                    "repetition": repetition,
                },
            )
        buf.emit(
            "runs",
            {
                "experiment_id": run.experiment_id,
                "example_id": run.example_id,
                "repetition": repetition,
                "outputs": None if run.outputs is None else json_text(run.outputs),
                "latency_ms": run.latency_ms,
                "error": run.error,
                "attempts": run.attempts,
                "started_at": int(run.started_at.timestamp() * 1_000_000),
            },
        )
        self._emit_scores(example, run, self.scored_by, scores)
        self.result.rows += 1
        if buf.row_done():
            await buf.flush()

    async def rescore_one(self, job: Rescore) -> None:
        """Score a stored run again with `job.evaluators`; their stored scores on that run
        (errors, skips, older versions) are superseded in the same transaction."""
        ordered = [e for e in job.evaluators if not e.is_async]
        ordered += [e for e in job.evaluators if e.is_async]
        scores = await self.score(job.example, job.run, tuple(ordered))
        for ev in ordered:
            self.buffer.emit(
                "supersede_scores",
                {
                    "experiment_id": job.run.experiment_id,
                    "example_id": job.run.example_id,
                    "repetition": job.run.repetition,
                    "evaluator": ev.name,
                },
            )
        self._emit_scores(job.example, job.run, ordered, scores)
        self.result.rescored += 1
        if self.buffer.row_done():
            await self.buffer.flush()

    async def rescore(self, jobs: list[Rescore]) -> ShardResult:
        """Score stored runs again, `concurrency` at a time (judges are I/O-bound)."""
        t0 = time.perf_counter()
        it = iter(jobs)

        async def worker() -> None:
            for job in it:
                await self.rescore_one(job)

        try:
            await asyncio.gather(
                *(worker() for _ in range(max(1, min(self.concurrency, len(jobs)))))
            )
        finally:
            await self.buffer.close()
        self.result.spooled_batches = self.buffer.spooled
        self.result.wall_s += time.perf_counter() - t0
        return self.result

    async def run(self, items: list[Item]) -> ShardResult:
        """Run `items` on `concurrency` workers.

        A worker hands each finished target call to the scorers (through a queue) and
        starts its next call at once: calls that finish in the same instant then start
        their successors together instead of each waiting for the others' scoring (~0.2 ms
        apiece, and it added up over a suite). The queue holds `concurrency` rows, so a slow
        evaluator (an LLM judge) holds the workers back rather than piling up rows. With
        async evaluators there are `concurrency` scorers (judge calls of different rows
        overlap); with sync evaluators only, scoring never waits, and one scorer drains the
        queue with one wake-up per batch of rows instead of one per row.
        """
        t0 = time.perf_counter()
        it: Iterator[Item] = iter(items)
        bar = _progress(len(items)) if self.progress else None
        n = max(1, min(self.concurrency, len(items)))
        finished: asyncio.Queue[tuple[Item, RunRecord, str | None] | None]
        finished = asyncio.Queue(n)
        scorers = n if self.async_evaluators else 1
        tail_flushed = False

        async def worker() -> None:
            nonlocal tail_flushed
            for item in it:
                run, error = await self.call_target(
                    item.example, item.repetition, item.prior_attempts
                )
                await finished.put((item, run, error))
            if not tail_flushed:  # the first idle worker writes what is done so far, so
                tail_flushed = True  # that the last write holds at most `concurrency` rows
                await self.buffer.flush()

        async def workers() -> None:
            await asyncio.gather(*(worker() for _ in range(n)))
            for _ in range(scorers):
                await finished.put(None)  # one stop per scorer

        async def scorer() -> None:
            while (row := await finished.get()) is not None:
                await self.record(*row)
                if bar is not None:
                    bar[0].advance(bar[1])

        tasks = [asyncio.ensure_future(workers())]
        tasks += [asyncio.ensure_future(scorer()) for _ in range(scorers)]
        try:
            if bar is not None:
                bar[0].start()
            await asyncio.gather(*tasks)  # the first failure (or Ctrl-C) ends the run
        finally:
            for task in tasks:
                task.cancel()
            await self.buffer.close()
            if bar is not None:
                bar[0].stop()
            await self.deadlines.aclose()
            if self.target is not None:
                await self.target.aclose()
        self.result.spooled_batches = self.buffer.spooled
        self.result.wall_s = time.perf_counter() - t0
        return self.result


def _progress(total: int) -> tuple[Any, Any] | None:
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    p = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    return p, p.add_task("examples", total=total)
