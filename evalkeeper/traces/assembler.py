"""Spans to whole traces: spans of one trace arrive in several exports and in any order.

The `Assembler` keeps the open traces' spans by trace id, in memory that stays bounded:

- a trace is complete when its root span (no parent) has arrived and no span for it came
  for `settle_s` seconds; a trace whose root never came is completed (the topmost span
  stands in for the root, `metadata.root_missing`) once it has been quiet for `settle_s`
  and open for `root_wait_s`; `flush()` completes everything (at shutdown);
- at most `max_open_traces` are open: the least recently updated one is then completed early
  if its root has arrived (`evicted_early`); an export that would evict one whose root has
  not come raises `BufferFull` instead (429, the exporter retries: nothing accepted is
  dropped); `dropped_traces`/`dropped_spans` count what an eviction still drops (none);
- at most `max_spans_per_trace` spans per trace (its root is always taken): the rest are
  rejected (`rejected_spans`), and the export is told so (partial success);
- a span for a trace that was already completed is late: it is counted (`late_spans`),
  logged, and rejected; the ids of the last `completed_memory` traces are remembered for that.
- a span sent again (same span id, e.g. an exporter retry) is counted (`duplicate_spans`)
  and kept once;
- GenAI events sent as log records (`/v1/logs`) are kept with the spans of their trace,
  whether they come before or after them, and joined at completion to their span as span
  events (in time order), so the mapper reads them like events recorded on the span;
  records for a trace that never gets a span are evicted like a trace without root (after
  `root_wait_s`) and counted (`orphan_log_records`), as are those whose span id is not in
  their trace (`unmatched_log_records`); late ones (trace completed) are counted and
  rejected; at most `max_records_per_trace` per trace (10x `max_spans_per_trace`);
- at most `max_buffer_bytes` of memory (estimated: `span_cost`) are held for the open
  traces, the completed ones not yet `release`d by their consumer (the store), and the
  request bodies `reserve`d while they are read: an export that does not fit raises
  `BufferFull` before anything of it is taken (HTTP 429 with `Retry-After`: the exporter
  retries), so nothing accepted is ever dropped to make room.

The clock is injected (`clock() -> seconds`, monotonic), so tests move time by hand.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from evalkeeper.traces.otlp_decode import BodyTooLarge, ExportError, LogRecord, Span, SpanEvent

__all__ = [
    "AddResult",
    "Assembler",
    "AssemblerStats",
    "BufferFull",
    "RecordsResult",
    "record_cost",
    "span_cost",
]

log = logging.getLogger(__name__)

SPAN_OVERHEAD = 2048
"""Bytes a decoded span costs beyond its encoded size (objects, hex ids, dicts)."""


def span_cost(span: Span) -> int:
    """The memory one decoded span is estimated to hold: twice its encoded size (its texts
    as Python strings, then as the mapped trace's) and a fixed overhead."""
    return 2 * span.size + SPAN_OVERHEAD


RECORD_OVERHEAD = 1024
"""Bytes a decoded log record costs beyond its encoded size (even: half goes to its span)."""


def record_cost(record: LogRecord) -> int:
    """The memory one decoded log record is estimated to hold, as `span_cost` counts it
    once the record is joined to its span."""
    return 2 * record.size + RECORD_OVERHEAD


class BufferFull(ExportError):
    """The trace buffer cannot take this export now: answered 429 with `Retry-After`, so the
    exporter retries it later (OTLP/HTTP throttling)."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class AddResult:
    """What became of the spans of one `Assembler.add` call."""

    accepted: int = 0
    rejected: int = 0  # over the per-trace span limit
    late: int = 0  # for a trace already completed

    def message(self, limit: int, settle_s: float) -> str:
        """Why spans were not taken, for the export's partial-success answer ("" if none)."""
        parts = []
        if self.rejected:
            parts.append(
                f"{self.rejected} span(s) over the limit of {limit} spans per trace were "
                "rejected (raise EVALKEEPER_OTLP_MAX_SPANS_PER_TRACE)"
            )
        if self.late:
            parts.append(
                f"{self.late} span(s) arrived after their trace was completed (no span for "
                f"{settle_s:g} s after its root) and were not stored (raise "
                "EVALKEEPER_OTLP_SETTLE_S, or export with a shorter batch delay)"
            )
        return "; ".join(parts)


@dataclass(slots=True)
class RecordsResult:
    """What became of the log records of one `Assembler.add_records` call."""

    accepted: int = 0
    rejected: int = 0  # over the per-trace record limit
    late: int = 0  # for a trace already completed
    duplicates: int = 0  # sent again: kept once

    def message(self, limit: int, settle_s: float) -> str:
        """Why records were not taken, for the export's partial-success answer ("" if none)."""
        parts = []
        if self.rejected:
            parts.append(
                f"{self.rejected} log record(s) over the limit of {limit} per trace were "
                "rejected (raise EVALKEEPER_OTLP_MAX_SPANS_PER_TRACE: the limit is 10x it)"
            )
        if self.late:
            parts.append(
                f"{self.late} log record(s) arrived after their trace was completed (no span "
                f"for {settle_s:g} s after its root) and were not stored (raise "
                "EVALKEEPER_OTLP_SETTLE_S, or export logs with a shorter batch delay)"
            )
        return "; ".join(parts)


@dataclass(slots=True)
class AssemblerStats:
    """Counters since start; nothing is dropped without being counted here."""

    spans_received: int = 0
    spans_accepted: int = 0
    duplicate_spans: int = 0
    rejected_spans: int = 0
    late_spans: int = 0
    traces_completed: int = 0
    traces_without_root: int = 0
    evicted_early: int = 0
    dropped_traces: int = 0
    dropped_spans: int = 0
    throttled_requests: int = 0  # told to retry later: the buffer was full
    log_records_received: int = 0  # GenAI events sent as log records (/v1/logs)
    log_records_accepted: int = 0
    duplicate_log_records: int = 0
    rejected_log_records: int = 0  # over the per-trace record limit
    late_log_records: int = 0
    joined_log_records: int = 0  # handed out as span events of their span
    orphan_log_records: int = 0  # their trace never got a span: evicted
    unmatched_log_records: int = 0  # their trace came, their span id is not in it

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class _Open:
    first_seen: float
    last_seen: float
    spans: list[Span] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    has_root: bool = False
    cost: int = 0
    records: list[LogRecord] = field(default_factory=list)
    record_keys: set[tuple[str, str, int, int]] = field(default_factory=set)


class Assembler:
    """Collects spans by trace id and hands out whole traces (lists of spans)."""

    def __init__(
        self,
        *,
        settle_s: float = 3.0,
        root_wait_s: float = 60.0,
        max_open_traces: int = 10_000,
        max_spans_per_trace: int = 1_000,
        completed_memory: int = 100_000,
        max_buffer_bytes: int = 256 * 2**20,
        max_records_per_trace: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settle_s < 0 or root_wait_s < 0:
            raise ValueError("Assembler: settle_s and root_wait_s must be >= 0 seconds")
        if (
            max_open_traces < 1
            or max_spans_per_trace < 1
            or completed_memory < 0
            or max_buffer_bytes < 1
        ):
            raise ValueError(
                "Assembler: max_open_traces, max_spans_per_trace and max_buffer_bytes must "
                "be >= 1, completed_memory >= 0"
            )
        self.settle_s = settle_s
        self.root_wait_s = root_wait_s
        self.max_open_traces = max_open_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.max_records_per_trace = (
            max_records_per_trace if max_records_per_trace is not None else 10 * max_spans_per_trace
        )
        self.completed_memory = completed_memory
        self.max_buffer_bytes = max_buffer_bytes
        self.clock = clock
        self.stats = AssemblerStats()
        self._open: OrderedDict[str, _Open] = OrderedDict()  # least recently updated first
        self._completed: OrderedDict[str, None] = OrderedDict()
        self._ready: list[list[Span]] = []
        self._open_spans = 0
        self._open_records = 0
        self._open_bytes = 0  # the open traces' spans
        self._handed_bytes = 0  # completed traces handed out, not yet released
        self._reserved_bytes = 0  # request bodies being read

    @property
    def open_traces(self) -> int:
        return len(self._open)

    @property
    def open_spans(self) -> int:
        return self._open_spans

    @property
    def open_log_records(self) -> int:
        return self._open_records

    @property
    def held_bytes(self) -> int:
        """The memory held now (estimated): open traces, traces handed out and not yet
        released, request bodies reserved."""
        return self._open_bytes + self._handed_bytes + self._reserved_bytes

    def buffer_counts(self) -> dict[str, int]:
        return {
            "max_bytes": self.max_buffer_bytes,
            "open_bytes": self._open_bytes,
            "delivering_bytes": self._handed_bytes,
            "reading_bytes": self._reserved_bytes,
        }

    def reserve(self, n: int) -> None:
        """Hold `n` bytes for a request body being read (`unreserve` them once it is
        decoded); `BufferFull` if they do not fit now."""
        self._check_room(n, "the request's body")
        self._reserved_bytes += n

    def unreserve(self, n: int) -> None:
        self._reserved_bytes -= n

    def release(self, traces: Iterable[list[Span]]) -> None:
        """Give back the memory of completed traces (handed out by `due`/`flush`) once
        they are stored, or failed."""
        self._handed_bytes -= sum(span_cost(s) for spans in traces for s in spans)

    def _check_room(self, n: int, what: str) -> None:
        if n > self.max_buffer_bytes:  # would never fit: not worth a retry
            raise BodyTooLarge(
                f"{what} would take about {n:,} bytes of memory, more than the whole trace "
                f"buffer ({self.max_buffer_bytes:,}); export smaller batches or raise "
                "EVALKEEPER_OTLP_MAX_BUFFER_BYTES"
            )
        if self.held_bytes + n > self.max_buffer_bytes:
            self.stats.throttled_requests += 1
            raise BufferFull(
                f"the trace buffer is full ({self.held_bytes:,} of {self.max_buffer_bytes:,} "
                f"bytes held for traces not yet stored); retry after {self.retry_after_s()} s "
                "(or raise EVALKEEPER_OTLP_MAX_BUFFER_BYTES)",
                self.retry_after_s(),
            )

    def _check_slots(self, ids: set[str]) -> None:
        """`BufferFull` if the new traces of this export (their ids) would evict an open
        trace whose root has not come (it would be dropped): the exporter retries once some
        complete."""
        new = ids - self._open.keys() - self._completed.keys()
        if len(new) > self.max_open_traces:
            raise BodyTooLarge(
                f"this export holds {len(new):,} new traces, more than can be open at once "
                f"({self.max_open_traces:,}); export smaller batches or raise "
                "EVALKEEPER_OTLP_MAX_OPEN_TRACES"
            )
        evict = len(self._open) + len(new) - self.max_open_traces
        if evict <= 0:
            return
        # the export's own open traces move to the end: the least recent of the others go
        oldest = (e for tid, e in self._open.items() if tid not in ids)
        for n, entry in enumerate(oldest):
            if n >= evict:
                return
            if not entry.has_root:
                self.stats.throttled_requests += 1
                raise BufferFull(
                    f"{len(self._open):,} traces are open (the limit) and the oldest has no "
                    f"root yet; retry after {self.retry_after_s()} s (or raise "
                    "EVALKEEPER_OTLP_MAX_OPEN_TRACES)",
                    self.retry_after_s(),
                )

    def retry_after_s(self) -> int:
        """Whole seconds until some memory is likely free: when the least recently updated
        open traces complete (at least 1 s)."""
        now = self.clock()
        soonest = self.root_wait_s + self.settle_s
        for n, entry in enumerate(self._open.values()):
            if n >= 64:  # enough for an estimate
                break
            due = entry.last_seen + self.settle_s
            if not entry.has_root:
                due = max(due, entry.first_seen + self.root_wait_s)
            soonest = min(soonest, due - now)
        if self._handed_bytes:
            soonest = min(soonest, 1.0)
        return max(1, math.ceil(soonest))

    def add(self, spans: Iterable[Span]) -> AddResult:
        """Take the spans of one export (any traces, any order); `BufferFull` (nothing
        taken) if they do not fit in the buffer now."""
        spans = list(spans)
        self._check_room(sum(span_cost(s) for s in spans), "this export")
        self._check_slots({s.trace_id for s in spans})
        result = AddResult()
        now = self.clock()
        late_traces: dict[str, None] = {}  # in arrival order
        for span in spans:
            self.stats.spans_received += 1
            entry = self._entry(span.trace_id, now)
            if entry is None:
                result.late += 1
                late_traces[span.trace_id] = None
                continue
            if span.span_id in entry.ids:
                self.stats.duplicate_spans += 1
                continue
            is_root = not span.parent_span_id
            if len(entry.spans) >= self.max_spans_per_trace and not is_root:
                result.rejected += 1
                continue
            entry.spans.append(span)
            entry.ids.add(span.span_id)
            entry.has_root = entry.has_root or is_root
            cost = span_cost(span)
            entry.cost += cost
            self._open_bytes += cost
            self._open_spans += 1
            result.accepted += 1
        self.stats.spans_accepted += result.accepted
        self.stats.rejected_spans += result.rejected
        self.stats.late_spans += result.late
        self._warn_late("span(s)", result.late, late_traces)
        return result

    def add_records(self, records: Iterable[LogRecord]) -> RecordsResult:
        """Take the GenAI log records of one export (any traces, any order, before or after
        their spans); `BufferFull` (nothing taken) if they do not fit in the buffer now."""
        records = list(records)
        self._check_room(sum(record_cost(r) for r in records), "this export")
        self._check_slots({r.trace_id for r in records})
        result = RecordsResult()
        now = self.clock()
        late_traces: dict[str, None] = {}  # in arrival order
        for record in records:
            self.stats.log_records_received += 1
            entry = self._entry(record.trace_id, now)
            if entry is None:
                result.late += 1
                late_traces[record.trace_id] = None
                continue
            key = (record.span_id, record.name, record.time_ns, record.size)
            if key in entry.record_keys:
                result.duplicates += 1
                continue
            if len(entry.records) >= self.max_records_per_trace:
                result.rejected += 1
                continue
            entry.records.append(record)
            entry.record_keys.add(key)
            cost = record_cost(record)
            entry.cost += cost
            self._open_bytes += cost
            self._open_records += 1
            result.accepted += 1
        self.stats.log_records_accepted += result.accepted
        self.stats.duplicate_log_records += result.duplicates
        self.stats.rejected_log_records += result.rejected
        self.stats.late_log_records += result.late
        self._warn_late("log record(s)", result.late, late_traces)
        return result

    def _entry(self, tid: str, now: float) -> _Open | None:
        """The open entry of trace `tid`, opened (evicting the oldest when full) or touched;
        None when the trace has already completed (what arrives for it is late)."""
        entry = self._open.get(tid)
        if entry is None:
            if tid in self._completed:
                return None
            if len(self._open) >= self.max_open_traces:
                self._evict_oldest()
            entry = self._open[tid] = _Open(first_seen=now, last_seen=now)
        else:
            self._open.move_to_end(tid)
            entry.last_seen = now
        return entry

    def _warn_late(self, what: str, late: int, traces: dict[str, None]) -> None:
        if traces:
            log.warning(
                "OTLP: %d late %s for %d trace(s) already completed (e.g. %s); not stored; "
                "raise EVALKEEPER_OTLP_SETTLE_S (now %g s) if the exporters batch slowly",
                late,
                what,
                len(traces),
                next(iter(traces)),
                self.settle_s,
            )

    def due(self) -> list[list[Span]]:
        """The traces complete now (and those completed early by an eviction)."""
        now = self.clock()
        out, self._ready = self._ready, []
        done = []
        for tid, entry in self._open.items():
            if now - entry.last_seen < self.settle_s:
                break  # ordered by last update: every later trace is newer still
            if entry.has_root or now - entry.first_seen >= self.root_wait_s:
                done.append(tid)
        out.extend(spans for tid in done if (spans := self._complete(tid)))
        return out

    def flush(self) -> list[list[Span]]:
        """Every open trace, complete or not (at shutdown)."""
        out, self._ready = self._ready, []
        out.extend(spans for tid in list(self._open) if (spans := self._complete(tid)))
        return out

    def _complete(self, tid: str) -> list[Span]:
        """The trace's spans, its log records joined to them ([] if it has no span: its
        records are orphans, counted and dropped)."""
        entry = self._open.pop(tid)
        self._open_spans -= len(entry.spans)
        self._open_records -= len(entry.records)
        self._open_bytes -= entry.cost
        if not entry.spans:
            self.stats.orphan_log_records += len(entry.records)
            log.warning(
                "OTLP: %d log record(s) for trace %s dropped: no span of that trace came "
                "within %g s (export the spans too, to /v1/traces)",
                len(entry.records),
                tid,
                self.root_wait_s,
            )
            return []
        if entry.records:
            self._join(tid, entry)
        self._handed_bytes += sum(span_cost(s) for s in entry.spans)
        self.stats.traces_completed += 1
        if not entry.has_root:
            self.stats.traces_without_root += 1
        if self.completed_memory:
            self._completed[tid] = None
            if len(self._completed) > self.completed_memory:
                self._completed.popitem(last=False)
        return entry.spans

    def _join(self, tid: str, entry: _Open) -> None:
        """Each log record becomes a span event of its span (its memory moves with it: the
        span's `size` grows so that `span_cost` counts the record's `record_cost`)."""
        by_id = {s.span_id: s for s in entry.spans}
        unmatched = 0
        for record in sorted(entry.records, key=lambda r: r.time_ns):
            span = by_id.get(record.span_id)
            if span is None:
                unmatched += 1
                continue
            span.events.append(SpanEvent(record.name, record.time_ns, record.attributes))
            span.size += record.size + RECORD_OVERHEAD // 2
        self.stats.joined_log_records += len(entry.records) - unmatched
        if unmatched:
            self.stats.unmatched_log_records += unmatched
            log.warning(
                "OTLP: %d log record(s) of trace %s name a span that is not in it; not stored",
                unmatched,
                tid,
            )
        entry.records = []

    def _evict_oldest(self) -> None:
        tid, entry = next(iter(self._open.items()))
        if entry.has_root:
            self.stats.evicted_early += 1
            self._ready.append(self._complete(tid))
            return
        del self._open[tid]
        self._open_spans -= len(entry.spans)
        self._open_records -= len(entry.records)
        self._open_bytes -= entry.cost
        self.stats.orphan_log_records += len(entry.records)
        self.stats.dropped_traces += 1
        self.stats.dropped_spans += len(entry.spans)
        log.warning(
            "OTLP: %d open traces (the limit): dropped trace %s (%d span(s), its root never "
            "came); raise EVALKEEPER_OTLP_MAX_OPEN_TRACES",
            self.max_open_traces,
            tid,
            len(entry.spans),
        )
