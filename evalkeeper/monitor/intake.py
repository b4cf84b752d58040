"""Accepted deploys, from their durable acceptance to their first tick.

`DeployIntake.open(window, delivery_id)` is what a deploy webhook awaits before its 202:
it returns once the deploy is durable (journaled, `evalkeeper.monitor.journal`) or known
already (the same window or delivery id: the existing window, `created=False`). Behind it:

- one writer task decides, batch by batch, which requests are new (an index of the stored
  and journaled window and delivery ids, loaded once from the warehouse) and appends the
  new ones to the journal in a worker thread, one fsync per batch (group commit): a caller
  awaits its batch, and the event loop never waits on a disk or the warehouse;
- an applier task then stores the journaled windows (`replay` of the segment it rotated
  out); a failed store keeps the segment and is retried after a backoff (0.5 s, doubling,
  at most 30 s; every tick applies the journal too);
- each window the applier created is followed up: with an `emitter`, the event
  `evalkeeper.deploy.completed` (its id derived from the window id), whose trigger runs the
  first tick elsewhere; without one, its first tick here (`FirstTicks`), unless
  `first_tick` is False.

The applier and the first ticks are Python work in worker threads: they would take the
GIL from the event loop while it answers requests. So they wait until the server is idle
(no `busy()` for `IDLE_S`), for at most `MAX_DEFER_S`, and the first ticks check again
before each window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from evalkeeper import registry
from evalkeeper.models import utcnow
from evalkeeper.monitor.first_ticks import FirstTicks
from evalkeeper.monitor.journal import DeployJournal, encode, replay
from evalkeeper.monitor.rollback import DEPLOY_EVENT, EventEmitter, event_id
from evalkeeper.monitor.windows import Opened, Window, load_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

__all__ = ["DeployIntake"]

log = logging.getLogger(__name__)


class DeployIntake:
    """Journals accepted deploys (group-committed), applies them to the warehouse in the
    background, and follows up each new window (its event, or its first tick)."""

    IDLE_S = 0.5
    """The server is idle once no request came for this long."""
    MAX_DEFER_S = 30.0
    """Background work waits for an idle server at most this long, then runs anyway."""

    def __init__(
        self,
        settings: Settings,
        *,
        emitter: EventEmitter | None,
        first_tick: bool = True,
        tick_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.emitter = emitter
        self.first_tick = first_tick
        self._queue: asyncio.Queue[tuple[Window, str | None, asyncio.Future[Opened]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._journal = DeployJournal(settings)
        self._started: asyncio.Future[None] | None = None
        self._known: set[str] = set()  # window ids stored or journaled
        self._deliveries: dict[str, str] = {}  # delivery id -> window id
        self._pending: dict[str, Window] = {}  # journaled, not yet applied
        self._apply_wanted = asyncio.Event()
        self._applying = 0
        self._last_request = 0.0
        self._first_ticks = FirstTicks(
            settings, clock=tick_clock, until_idle=self._until_idle, failed=self._failed
        )
        self.counts = {"accepted": 0, "duplicates": 0, "follow_up_failures": 0}

    def busy(self) -> None:
        """A request came (any route): background work waits until the server is idle."""
        self._last_request = time.monotonic()

    async def _until_idle(self) -> None:
        deadline = time.monotonic() + self.MAX_DEFER_S
        while True:
            now = time.monotonic()
            wait = self._last_request + self.IDLE_S - now
            if wait <= 0 or now >= deadline:
                return
            await asyncio.sleep(min(wait, deadline - now))

    def _failed(self, n: int = 1) -> None:
        self.counts["follow_up_failures"] += n

    async def start(self) -> None:
        """Apply what an earlier process journaled, load the index, start the tasks
        (idempotent; the first `open` does it if the app's startup did not)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await asyncio.to_thread(self._recover)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._write_loop(), name="webhook-journal"),
                asyncio.create_task(self._apply_loop(), name="webhook-windows"),
                asyncio.create_task(self._first_ticks.run(), name="webhook-first-ticks"),
            ]
            self._started.set_result(None)
        else:
            await asyncio.shield(self._started)

    def _recover(self) -> None:
        replay(self.settings)
        registry.load_builtin()  # imported now, not by the first deploy's config check
        wh = Warehouse.from_settings(self.settings)
        with wh.connect() as con:
            self._known = {r[0] for r in con.execute("SELECT window_id FROM monitoring_windows")
                           .fetchall()}  # fmt: skip
            self._deliveries = dict(
                con.execute("SELECT delivery_id, window_id FROM monitoring_webhooks").fetchall()
            )

    async def open(self, window: Window, delivery_id: str | None) -> Opened:
        """The deploy's window once it is durable (`created`), or the window it already
        opened (the same window id or delivery id)."""
        await self.start()
        assert self._queue is not None
        future: asyncio.Future[Opened] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((window, delivery_id, future))
        opened = await future
        self.counts["accepted" if opened.created else "duplicates"] += 1
        return opened

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            new: list[tuple[Window, str | None]] = []
            duplicates: list[tuple[str, asyncio.Future[Opened]]] = []
            created: list[tuple[Window, asyncio.Future[Opened]]] = []
            for window, delivery, future in items:
                existing = self._deliveries.get(delivery) if delivery else None
                if existing is None and window.window_id in self._known:
                    existing = window.window_id
                if existing is not None:
                    duplicates.append((existing, future))
                    continue
                self._known.add(window.window_id)
                if delivery:
                    self._deliveries[delivery] = window.window_id
                new.append((window, delivery))
                created.append((window, future))
            try:
                await asyncio.to_thread(self._journal.write, encode(new))
            except Exception as exc:
                for window, delivery in new:  # not kept: the sender retries, and may
                    self._known.discard(window.window_id)
                    if delivery:
                        self._deliveries.pop(delivery, None)
                log.exception("deploy journal %s: append failed", self._journal.directory)
                for _, future in created:
                    if not future.done():
                        future.set_exception(exc)
                created = []
            for window, future in created:
                self._pending[window.window_id] = window
                if not future.done():
                    future.set_result(Opened(window=window, created=True))
            if new:
                self._apply_wanted.set()
            for window_id, future in duplicates:
                self._spawn(self._answer_existing(window_id, future))

    async def _answer_existing(self, window_id: str, future: asyncio.Future[Opened]) -> None:
        try:
            window = self._pending.get(window_id)
            if window is None:
                window = await asyncio.to_thread(load_window, self.settings, window_id)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(Opened(window=window, created=False))

    async def _apply_loop(self) -> None:
        delay = 0.5
        while True:
            await self._apply_wanted.wait()
            await self._until_idle()
            self._apply_wanted.clear()
            segment = self._journal.rotate()
            if segment is None:
                continue
            self._applying += 1
            try:
                opened = await asyncio.to_thread(replay, self.settings, segments=[segment])
            except Exception:
                self._failed()
                log.exception(
                    "deploy journal %s: applying it to the warehouse failed; it is kept and "
                    "retried in %.1f s (every tick applies it too)",
                    segment,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                self._spawn(self._apply(segment))
                continue
            finally:
                self._applying -= 1
            delay = 0.5
            self._applied(opened)

    async def _apply(self, segment: Path) -> None:
        """Apply one segment again (after a failure)."""
        self._applied(await asyncio.to_thread(replay, self.settings, segments=[segment]))

    def _applied(self, opened: list[Opened]) -> None:
        for result in opened:
            self._pending.pop(result.window.window_id, None)
            if result.created:
                self._spawn(self._follow_up(result.window))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _follow_up(self, window: Window) -> None:
        try:
            if self.emitter is not None:
                payload = {
                    "window_id": window.window_id,
                    "deploy_id": window.deploy_id,
                    "service": window.service,
                    "environment": window.environment,
                    "version": window.version,
                    "previous_version": window.previous_version,
                    "time": window.deployed_at.isoformat(),
                }
                await self.emitter(
                    DEPLOY_EVENT,
                    f"evalkeeper.deploy.{window.window_id}",
                    payload,
                    event_id("deploy", window.window_id),
                )
            elif self.first_tick:
                self._first_ticks.add(window.window_id)
        except Exception:
            self._failed()
            log.exception(
                "window %s is stored, but its %s failed; the next `monitor-tick` advances it",
                window.window_id,
                "event" if self.emitter is not None else "first tick",
            )

    async def aclose(self) -> None:
        """Finish: apply what is journaled, wait for the follow-ups, stop the tasks (a
        first tick under way ends first)."""
        self._last_request = 0.0  # shutting down: nothing more to wait for
        if self._queue is not None:
            while not self._queue.empty() or self._apply_wanted.is_set() or self._applying:
                await asyncio.sleep(0.01)
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=30)
        for loop_task in self._tasks:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        await self._first_ticks.aclose()
        segment = self._journal.rotate()
        if segment is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(replay, self.settings, segments=[segment])
