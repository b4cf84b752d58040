"""The deploy intake without HTTP: deploys accepted together are kept once each, stored
after a failed store (the warehouse held by another process) once the backoff is over,
and first-ticked in the order they came, on one worker thread's event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from evalkeeper import registry
from evalkeeper.models import Score
from evalkeeper.monitor.intake import DeployIntake
from evalkeeper.monitor.journal import journal_dir
from evalkeeper.monitor.windows import DeployEvent, Window, new_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.conftest import DEPLOY
from tests.monitor.monitor_traffic import SERVICE

WITNESS = '[[evaluators]]\nname = "loop_witness"\n'


def _windows(settings: Settings, n: int) -> list[Window]:
    return [
        new_window(
            settings,
            DeployEvent(service=SERVICE, version="v2", deploy_id=f"d-{i}", time=DEPLOY),
            "webhook",
        )
        for i in range(n)
    ]


async def _until(done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _ticked(settings: Settings) -> list[str]:
    return [
        r[0]
        for r in Warehouse.from_settings(settings).rows(
            "SELECT window_id FROM monitoring_ticks ORDER BY ticked_at"
        )
    ]


def test_deploys_are_kept_once_and_first_ticked_in_order_on_one_loop(
    restore_registry: None, mon_settings: Settings
) -> None:
    seen: list[tuple[str, int]] = []  # (thread, event loop) of each score

    @registry.evaluator("loop_witness", version="1")
    def factory() -> Callable[..., Any]:
        def score(run: Any = None) -> Score:
            seen.append((threading.current_thread().name, id(asyncio.get_running_loop())))
            return Score(passed=True, value=1.0)

        return score

    mon_settings.monitor.monitors_dir.mkdir(parents=True)
    (mon_settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(WITNESS)
    windows = _windows(mon_settings, 3)
    ids = [w.window_id for w in windows]

    async def scenario() -> tuple[list[bool], int]:
        intake = DeployIntake(
            mon_settings, emitter=None, tick_clock=lambda: DEPLOY + timedelta(hours=1)
        )
        opened = await asyncio.gather(
            *(intake.open(w, f"standard:m-{i}") for i, w in enumerate(windows)),
            intake.open(windows[0], "standard:m-0"),  # a redelivery, in the same batch
        )
        await _until(lambda: len(_ticked(mon_settings)) == 3)
        await intake.aclose()
        return [o.created for o in opened], id(asyncio.get_running_loop())

    created, app_loop = asyncio.run(scenario())
    assert created == [True, True, True, False]
    assert _ticked(mon_settings) == ids  # in the order the deploys came
    assert Warehouse.from_settings(mon_settings).rows(
        "SELECT count(*) FROM monitoring_windows"
    ) == [(3,)]
    assert seen and len(set(seen)) == 1  # every first tick on one thread's one loop
    ((thread, loop),) = set(seen)
    assert thread.startswith("first-ticks") and loop != app_loop
    assert not [t for t in threading.enumerate() if t.name.startswith("first-ticks")]
    assert list(journal_dir(mon_settings).glob("*.jsonl")) == []


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_failed_store_is_kept_and_retried_after_its_backoff(mon_settings: Settings) -> None:
    settings = mon_settings.model_copy(update={"lock_wait_s": 0.1})
    (window,) = _windows(settings, 1)

    async def scenario() -> tuple[dict[str, int], list[tuple[Any, ...]]]:
        intake = DeployIntake(settings, emitter=None, first_tick=False)
        await intake.start()  # the warehouse is free: its index is loaded
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(settings.warehouse)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
            opened = await intake.open(window, "standard:m-held")  # durable: journaled
            assert opened.created is True
            await _until(lambda: intake.counts["follow_up_failures"] == 1)
            assert list(journal_dir(settings).glob("*.jsonl"))  # kept for the retry
        finally:
            holder.kill()
            await asyncio.to_thread(holder.wait)
        await _until(lambda: not list(journal_dir(settings).glob("*.jsonl")))  # the retry
        await intake.aclose()
        stored = Warehouse.from_settings(settings).rows("SELECT window_id FROM monitoring_windows")
        return intake.counts, stored

    counts, stored = asyncio.run(scenario())
    assert stored == [(window.window_id,)]
    assert counts == {"accepted": 1, "duplicates": 0, "follow_up_failures": 1}
