"""Targets and synthetic data for the benchmarks, loaded by spec like any user's callable.

`instant` answers at once (async; `instant_sync` is the same for `langsmith.evaluate`, which
takes sync targets only); `sleep_100ms` awaits 100 ms first. The answer is exactly what
`write_dataset` puts in the reference, so every score passes and the evaluators do their
full comparison work (no early exits on a mismatch).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

CATEGORIES = ("availability", "booking", "cancellation", "policy", "escalation", "small_talk")
SLEEP_S = 0.1


def answer(inputs: dict[str, Any]) -> dict[str, Any]:
    n = inputs["n"]
    return {
        "reply": f"Booked slot {n % 17} on day {n % 28 + 1}.",
        "tool_calls": [
            {"name": "find_slots", "args": {"day": n % 28 + 1, "service": "checkup"}},
            {"name": "book", "args": {"slot": n % 17, "patient": f"p{n}"}},
        ],
    }


async def instant(inputs: dict[str, Any]) -> dict[str, Any]:
    return answer(inputs)


def instant_sync(inputs: dict[str, Any]) -> dict[str, Any]:
    return answer(inputs)


async def sleep_100ms(inputs: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(SLEEP_S)
    return answer(inputs)


instant.__evalkeeper_pin__ = {"agent_version": "bench 1.0", "model": "none-2026-01-01"}  # type: ignore[attr-defined]
sleep_100ms.__evalkeeper_pin__ = {"agent_version": "bench 1.0", "model": "none-2026-01-01"}  # type: ignore[attr-defined]


def example_row(i: int) -> dict[str, Any]:
    inputs = {"n": i, "message": f"Can I book a checkup on day {i % 28 + 1}?"}
    return {
        "id": f"ex-{i:06d}",
        "inputs": inputs,
        "reference_outputs": answer(inputs),
        "metadata": {"category": CATEGORIES[i % len(CATEGORIES)], "critical": i % 50 == 0},
    }


def write_dataset(path: Path, n: int) -> Path:
    """`n` synthetic examples as a JSONL dataset (streamed: nothing held in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(example_row(i)) + "\n")
    return path
