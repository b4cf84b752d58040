"""Targets for `benchmarks/scale.py`, loaded by spec on the pool's workers
(`benchmarks.scale_targets:cpu`), so the checkout must be on their PYTHONPATH.

`cpu` spends `SCALE_CPU_MS` (default 20) ms of pure-Python CPU per example, on its own
thread's clock, holding the event loop (and the GIL) as a CPU-heavy agent step would;
`latency` awaits `SCALE_SLEEP_S` (default 0.1) s. Both answer exactly what the dataset's
reference holds (`benchmarks.targets.answer`), so every score is deterministic. Setting
the cost to 0 gives the same target, instantly (the benchmark's cheap baseline run).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from benchmarks.targets import answer

PIN = {"agent_version": "scale 1.0", "model": "none-2026-01-01"}


def burn(ms: float) -> int:
    """Busy pure-Python work until this thread has used `ms` ms of CPU."""
    end = time.thread_time() + ms / 1000.0
    x = 0
    while time.thread_time() < end:
        for i in range(200):
            x = (x * 31 + i) % 1_000_003
    return x


async def cpu(inputs: dict[str, Any]) -> dict[str, Any]:
    burn(float(os.environ.get("SCALE_CPU_MS", "20")))
    return answer(inputs)


async def latency(inputs: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(float(os.environ.get("SCALE_SLEEP_S", "0.1")))
    return answer(inputs)


cpu.__evalkeeper_pin__ = PIN  # type: ignore[attr-defined]
latency.__evalkeeper_pin__ = PIN  # type: ignore[attr-defined]
