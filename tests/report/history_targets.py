"""A target whose answers drift from run to run, set by the environment a test gives it:
`HISTORY_WRONG` (comma-separated example numbers answered with a wrong reply),
`HISTORY_JUDGE_FAIL` (numbers whose output carries the scripted judge's fail marker),
`HISTORY_BROKEN` (numbers whose call raises) and `HISTORY_SLOW_MS` (added latency)."""

from __future__ import annotations

import asyncio
import os
from typing import Any


def _numbers(name: str) -> set[int]:
    return {int(x) for x in os.environ.get(name, "").split(",") if x.strip()}


async def drifting(inputs: dict[str, Any]) -> dict[str, Any]:
    n = int(inputs["n"])
    if n in _numbers("HISTORY_BROKEN"):
        raise ValueError(f"cannot handle {n}")
    await asyncio.sleep(((n % 5) * 4 + int(os.environ.get("HISTORY_SLOW_MS", "0"))) / 1000)
    reply = f"wrong {n}" if n in _numbers("HISTORY_WRONG") else f"answer {n}"
    out: dict[str, Any] = {"reply": reply, "tool_calls": []}
    if n in _numbers("HISTORY_JUDGE_FAIL"):
        out["note"] = "[[expect:fail]]"
    return out
