"""Redacting traces a batch at a time: in the ingesting process, or in worker processes.

Redaction is CPU work in pure Python (libphonenumber above all), so one process redacts on
one core. `RedactionPool` spreads a batch over `EVALKEEPER_REDACTION_WORKERS` processes
(default: one per core this process may use), each with its own built-in redactor under
the same key and configuration, so a value gets the same token whichever process saw it.

    redaction = batch_redaction(settings)        # a pool, or inline on one core
    clean = await redaction.aredact(traces)      # every free text redacted, order kept
    redaction.close()

Small batches (fewer than `min_pool_batch` traces) are redacted in the calling process,
and so is everything until the work has proved long: once `start_after_s` seconds (1 s)
have gone into redacting large batches here, the workers start in the background (about
a second of CPU each: interpreter, imports, the metadata of every region libphonenumber
knows, so that the first number of each country costs no more than the next), and
batches move to them once they are warm. A batch goes out in `CHUNKS_PER_WORKER` chunks
per worker, taken as workers finish. A short ingest never starts them (on two cores their
start would slow it down), a long one uses every core. Workers ignore SIGINT (Ctrl-C stops
the ingesting process, which then flushes through them and stops them). When a worker dies (killed, out of memory) the batch is redacted again in the
calling process, logged and counted (`fallbacks`), and the next batch starts fresh workers:
traces already acknowledged to an exporter are not lost. A worker that raises fails the
batch (`RedactionFailed`, naming the cause): the caller stores nothing of it and leaves
its cursor where it was. When the ingesting process dies (kill -9), its workers see it
(their parent changes; a thread of theirs looks every `PARENT_POLL_S`) and end within a
second; the multiprocessing resource tracker, which they held open, ends with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from evalkeeper.errors import EvalkeeperError
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace
from evalkeeper.traces.phones import warm_up
from evalkeeper.traces.redaction import BuiltinRedactor, Redactor, build_redactor, redact_json

Redact = Callable[[Any], Any]
"""Takes a JSON value (object, list, string…) and returns it with personal data replaced."""

log = logging.getLogger(__name__)

MIN_POOL_BATCH = 200
PARENT_POLL_S = 0.5
START_AFTER_S = 1.0
# A batch is cut into this many chunks per worker: the workers take them as they finish,
# so a worker slowed by other load does fewer, and the end of a batch waits for one small
# chunk rather than a quarter of the batch.
CHUNKS_PER_WORKER = 8


class RedactionFailed(EvalkeeperError, RuntimeError):
    """A batch could not be redacted (a worker raised): nothing of it is stored."""


def redact_trace(trace: Trace, redact: Redact) -> Trace:
    """The trace with every field a person's data can reach passed through `redact`:
    inputs, outputs, metadata (keys of every object in them included), tool call names,
    arguments and errors, context ids and texts, the conversation id, the error, the
    feedback comment. The trace id, service, environment, version, model, times and
    numbers stay as they are.

    The conversation id is redacted like a text: an id without personal data (a UUID) is
    kept, one holding an email or a phone number gets that value's keyed token in its place,
    so the same id always gives the same result and conversations still join."""
    update: dict[str, Any] = {
        "inputs": redact(trace.inputs),
        "metadata": redact(trace.metadata),
        "tool_calls": [
            c.model_copy(
                update={"name": redact(c.name), "args": redact(c.args)}
                | ({"error": redact(c.error)} if c.error is not None else {})
            )
            for c in trace.tool_calls
        ],
        "context": [
            d.model_copy(update={"id": redact(d.id), "text": redact(d.text)}) for d in trace.context
        ],
    }
    if trace.conversation_id is not None:
        update["conversation_id"] = redact(trace.conversation_id)
    if trace.outputs is not None:
        update["outputs"] = redact(trace.outputs)
    if trace.error is not None:
        update["error"] = redact(trace.error)
    if trace.feedback is not None and trace.feedback.comment is not None:
        update["feedback"] = trace.feedback.model_copy(
            update={"comment": redact(trace.feedback.comment)}
        )
    return trace.model_copy(update=update)


def _redact_all(traces: Sequence[Trace], redactor: Redactor) -> tuple[list[Trace], Counter[str]]:
    counts: Counter[str] = Counter()

    def redact(value: Any) -> Any:
        out, found = redact_json(value, redactor)
        counts.update(found)
        return out

    return [redact_trace(t, redact) for t in traces], counts


class BatchRedaction(Protocol):
    """What ingest calls: a batch of raw traces in, the same traces redacted out, in order."""

    stats: Counter[str]
    """Findings per kind so far."""
    fallbacks: int
    """Batches redacted in the calling process because a worker died."""
    notice: str | None
    """One line for the user when the redaction key was generated (never the key)."""

    def redact(self, traces: Sequence[Trace]) -> list[Trace]: ...

    async def aredact(self, traces: Sequence[Trace]) -> list[Trace]: ...

    def close(self) -> None: ...


class InlineRedaction:
    """Redaction in the calling process, with any `redact` function (or the configured
    redactor's)."""

    def __init__(self, redact: Redact, *, notice: str | None = None) -> None:
        self._redact = redact
        self.stats: Counter[str] = Counter()
        self.workers = 1
        self.notice = notice
        self.fallbacks = 0

    def redact(self, traces: Sequence[Trace]) -> list[Trace]:
        return [redact_trace(t, self._redact) for t in traces]

    async def aredact(self, traces: Sequence[Trace]) -> list[Trace]:
        return self.redact(traces)

    def close(self) -> None:
        return None


# -- worker processes ---------------------------------------------------------------------

_worker_redactor: BuiltinRedactor | None = None


def _init_worker(redactor: BuiltinRedactor, parent: int) -> None:
    """`redactor` arrives rebuilt from its configuration and key (`__reduce__`); `parent`
    is the pool's process (given, as it may be dead already: then `getppid()` is another)."""
    global _worker_redactor
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, after its flush
    _worker_redactor = redactor
    threading.Thread(
        target=_end_with_parent, args=(parent,), name="parent-watch", daemon=True
    ).start()


def _end_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (killed: it could not stop us): an orphan
    is re-parented, so `getppid()` changes."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


_WARM_UP_TEXT = (
    "Reach me at jane.doe@example.com, +44 20 7946 0958, (0191) 4960072, 090-3640-5259, "
    "030 901820 or 0612345678; card 4111 1111 1111 1111, IBAN DE89370400440532013000."
)


def _warm_up() -> int:
    """Load what real batches would (libphonenumber's metadata of the configured regions
    and, through `phones.warm_up`, of every region a number with its country code can
    name; the detectors' patterns); the worker's pid. Nothing of it is a value of a batch:
    the caches hold only the warm-up texts."""
    if _worker_redactor is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("redaction worker started without its redactor")
    _worker_redactor.redact(_WARM_UP_TEXT)
    warm_up(_worker_redactor.config.regions)
    return os.getpid()


def _redact_chunk(traces: list[Trace]) -> tuple[list[Trace], Counter[str]]:
    if _worker_redactor is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("redaction worker started without its redactor")
    return _redact_all(traces, _worker_redactor)


class RedactionPool:
    """The built-in redactor in `workers` processes, started in the background once
    `start_after_s` seconds went into redacting batches of at least `min_pool_batch` traces
    here (smaller batches are always redacted here; `start()` starts them at once)."""

    def __init__(
        self,
        local: BuiltinRedactor,
        workers: int,
        *,
        min_pool_batch: int = MIN_POOL_BATCH,
        start_after_s: float = START_AFTER_S,
        notice: str | None = None,
    ) -> None:
        if workers < 2:
            raise ValueError(f"RedactionPool: {workers} worker(s); use InlineRedaction for one")
        self.workers = workers
        self.min_pool_batch = min_pool_batch
        self.start_after_s = start_after_s
        self.here_s = 0.0  # time spent redacting large batches in this process
        self.stats: Counter[str] = Counter()
        self.notice = notice
        self.fallbacks = 0
        self._local = local  # redacts here; each worker gets a copy of it
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[Future[int]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"RedactionPool(workers={self.workers}, started={self._executor is not None})"

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn, not fork: the ingesting process runs threads (uvicorn, to_thread)
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self._local, os.getpid()),
                )
                # one task per worker: each submit with no idle worker starts a process
                self._warming = [self._executor.submit(_warm_up) for _ in range(self.workers)]
            return self._executor

    def start(self, *, wait: bool = False, timeout: float = 120.0) -> None:
        """Start the workers (if not yet); with `wait`, until they are warm."""
        self._pool()
        if wait:
            for f in list(self._warming):
                with contextlib.suppress(Exception):  # a dead worker shows on the next batch
                    f.result(timeout=timeout)

    def ready(self) -> bool:
        """Whether the workers are up and warm."""
        return self._executor is not None and all(f.done() for f in self._warming)

    def _use_workers(self, n: int) -> bool:
        """Whether a batch of `n` traces goes to the workers; starts them once the work
        here has taken `start_after_s`."""
        if n < self.min_pool_batch:
            return False
        if self._executor is None:
            if self.here_s < self.start_after_s:
                return False
            self._pool()
        return self.ready()

    def _submit(
        self, traces: Sequence[Trace]
    ) -> list[Future[tuple[list[Trace], Counter[str]]]] | None:
        """The batch's chunks handed to the workers; None when the pool is broken."""
        pool = self._pool()
        size = math.ceil(len(traces) / (self.workers * CHUNKS_PER_WORKER))
        try:
            return [
                pool.submit(_redact_chunk, list(traces[i : i + size]))
                for i in range(0, len(traces), size)
            ]
        except BrokenProcessPool:
            return None

    def _here(self, traces: Sequence[Trace]) -> list[Trace]:
        t0 = time.perf_counter()
        clean, counts = _redact_all(traces, self._local)
        if len(traces) >= self.min_pool_batch:
            self.here_s += time.perf_counter() - t0
        self.stats.update(counts)
        return clean

    def _fall_back(self, traces: Sequence[Trace]) -> list[Trace]:
        """A worker died: this batch here, fresh workers for the next."""
        with self._lock:
            broken, self._executor = self._executor, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        self.fallbacks += 1
        log.warning(
            "redaction: a worker process died (killed, or out of memory); %d trace(s) are "
            "redacted in this process instead, and the next batch starts new workers "
            "(%d time(s) so far)",
            len(traces),
            self.fallbacks,
        )
        return self._here(traces)

    def _collect(self, parts: list[tuple[list[Trace], Counter[str]]]) -> list[Trace]:
        out: list[Trace] = []
        for clean, counts in parts:
            out.extend(clean)
            self.stats.update(counts)
        return out

    @staticmethod
    def _failed(exc: BaseException) -> RedactionFailed:
        # the exception's type only: its message could quote the text being redacted
        return RedactionFailed(
            f"a redaction worker raised {type(exc).__name__}; nothing of this batch was "
            "stored and the source's cursor did not move: rerun the ingest, or set "
            "EVALKEEPER_REDACTION_WORKERS=1 to redact in one process and see the traceback"
        )

    def redact(self, traces: Sequence[Trace]) -> list[Trace]:
        if not self._use_workers(len(traces)):
            return self._here(traces)
        futures = self._submit(traces)
        if futures is None:
            return self._fall_back(traces)
        try:
            return self._collect([f.result() for f in futures])
        except BrokenProcessPool:
            return self._fall_back(traces)
        except Exception as exc:
            raise self._failed(exc) from None

    async def aredact(self, traces: Sequence[Trace]) -> list[Trace]:
        """`redact` in a thread: the event loop keeps running while this process or the
        workers redact."""
        return await asyncio.to_thread(self.redact, traces)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


def batch_redaction(settings: Settings, redact: Redact | None = None) -> BatchRedaction:
    """The redaction `settings` ask for: `redact` (a custom function) in this process; else
    the built-in redactor in `redaction_workers` processes (0: one per usable core), or in
    this process when that is 1."""
    if redact is not None:
        return InlineRedaction(redact)
    tracer = build_redactor(settings)
    workers = settings.redaction.workers or usable_cores()
    if workers < 2 or not isinstance(tracer.redactor, BuiltinRedactor):
        inline = InlineRedaction(tracer.redact_json, notice=tracer.notice)
        inline.stats = tracer.stats
        return inline
    return RedactionPool(tracer.redactor, workers, notice=tracer.notice)
