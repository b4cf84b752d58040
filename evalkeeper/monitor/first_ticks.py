"""The first tick of each window a deploy webhook opened, run by the app that accepted it.

A tick is Python work (scoring, counting) that would hold the app's event loop while it
answers requests. So `FirstTicks` runs the ticks on a worker thread of its own, which owns
one event loop for all of them (`asyncio.Runner`), while a task on the app's loop hands
them over: windows that arrive together (a burst of deploys) are ticked one after the
other, in the order they came, each once the server is idle (`until_idle`). A first tick
that fails is logged and counted (`failed`); the next `monitor-tick` advances its window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from evalkeeper.settings import Settings

__all__ = ["FirstTicks"]

log = logging.getLogger(__name__)


class FirstTicks:
    """First ticks of new windows, one at a time, on one worker thread's event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        until_idle: Callable[[], Awaitable[None]],
        failed: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._until_idle = until_idle
        self._failed = failed
        self._ids: list[str] = []
        self._wanted = asyncio.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="first-ticks")
        self._runner: asyncio.Runner | None = None  # the worker thread's event loop
        self._used = False

    def add(self, window_id: str) -> None:
        """Tick `window_id` soon (called on the app's loop)."""
        self._ids.append(window_id)
        self._wanted.set()

    async def run(self) -> None:
        """The task on the app's loop that hands the windows to the worker, in order."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wanted.wait()
            await self._until_idle()  # a burst's other windows arrive first
            self._wanted.clear()
            ids, self._ids = self._ids, []
            while ids:
                await self._until_idle()
                window_id = ids.pop(0)
                self._used = True
                if not await loop.run_in_executor(self._worker, self._tick, window_id):
                    self._failed()

    def _tick(self, window_id: str) -> bool:
        """On the worker thread: the first tick of `window_id`; False if it failed."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self._first_tick(window_id))

    async def _first_tick(self, window_id: str) -> bool:
        # imported by the first tick: an app that never ticks never loads what a tick
        # needs (the trace sources, the evaluators), nor holds its memory
        from evalkeeper.monitor.tick import tick

        try:
            await tick(self.settings, now=self.clock(), window_id=window_id)
        except Exception:
            log.exception("the first tick of %s failed; `monitor-tick` retries it", window_id)
            return False
        return True

    async def aclose(self) -> None:
        """Stop the worker once a tick under way has ended (`run` is cancelled first)."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        if self._used:
            self._worker.submit(self._close_runner).result()
        self._worker.shutdown(wait=True)

    def _close_runner(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
