"""Targets for tests, loaded by spec (`fake_targets:slow`) like any user's callable."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from evalkeeper.run.targets import TargetError

_calls: Counter[str] = Counter()


def _answer(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"reply": f"answer {inputs['n']}", "tool_calls": []}


async def instant(inputs: dict[str, Any]) -> dict[str, Any]:
    return _answer(inputs)


def sync_echo(inputs: dict[str, Any]) -> dict[str, Any]:
    return _answer(inputs)


async def slow(inputs: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(float(os.environ.get("FAKE_TARGET_SLEEP_S", "0.05")))
    return _answer(inputs)


async def flaky(inputs: dict[str, Any]) -> dict[str, Any]:
    """Fails transiently twice per example, then answers."""
    key = str(inputs["n"])
    _calls[key] += 1
    if _calls[key] <= 2:
        raise TargetError("HTTP 503 from upstream", transient=True)
    return _answer(inputs)


async def broken_on_sevens(inputs: dict[str, Any]) -> dict[str, Any]:
    if inputs["n"] % 7 == 0:
        raise ValueError(f"cannot handle {inputs['n']}")
    return _answer(inputs)


HANGS: Counter[str] = Counter()  # hanging calls started / cancelled by the runner's timeout


async def hangs_on_fives(inputs: dict[str, Any]) -> dict[str, Any]:
    if inputs["n"] % 5 == 0:
        HANGS["started"] += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            HANGS["cancelled"] += 1
            raise
        HANGS["finished"] += 1
    return _answer(inputs)


def returns_list(inputs: dict[str, Any]) -> Any:
    return ["not", "a", "dict"]


def blocking_sleep(inputs: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.01)
    return _answer(inputs)


instant.__evalkeeper_pin__ = {"agent_version": "fake 1.0", "model": "none-2026-01-01"}  # type: ignore[attr-defined]


IN_FLIGHT: Counter[str] = Counter()  # calls now / the most at once, for the concurrency test


async def counted(inputs: dict[str, Any]) -> dict[str, Any]:
    """Sleeps 20 ms and counts how many calls overlap."""
    IN_FLIGHT["target"] += 1
    IN_FLIGHT["target_max"] = max(IN_FLIGHT["target_max"], IN_FLIGHT["target"])
    try:
        await asyncio.sleep(0.02)
    finally:
        IN_FLIGHT["target"] -= 1
    return _answer(inputs)


COUNTS: Counter[str] = Counter()  # calls per target, for "the target was not called again"


async def counting(inputs: dict[str, Any]) -> dict[str, Any]:
    COUNTS["counting"] += 1
    return _answer(inputs)


async def broken_always(inputs: dict[str, Any]) -> dict[str, Any]:
    raise TargetError("upstream said 500: internal error")


async def down_when_flagged(inputs: dict[str, Any]) -> dict[str, Any]:
    """Down (a non-transient error) while FAKE_TARGET_DOWN=1, else answers."""
    if os.environ.get("FAKE_TARGET_DOWN") == "1":
        raise TargetError("service unavailable: maintenance")
    return _answer(inputs)


async def wrong_on_sevens(inputs: dict[str, Any]) -> dict[str, Any]:
    """Answers every seventh example wrongly (a regression, not an error)."""
    if inputs["n"] % 7 == 0:
        return {"reply": f"no answer for {inputs['n']}", "tool_calls": []}
    return _answer(inputs)


NOISY_CALLS: Counter[str] = Counter()  # calls per example, so each repetition draws anew


async def noisy(inputs: dict[str, Any]) -> dict[str, Any]:
    """Right with a probability of the example's own (`NOISY_RATES[n % 8]`, lowered by the
    environment's `NOISY_DROP`), drawn per call from a seeded generator: examples differ in
    pass rate and repetitions of one example are correlated, as in `evalkeeper plan`'s model."""
    import random

    n = int(inputs["n"])
    NOISY_CALLS[str(n)] += 1
    rate = NOISY_RATES[n % len(NOISY_RATES)] - float(os.environ.get("NOISY_DROP", "0"))
    draw = random.Random(f"{n}:{NOISY_CALLS[str(n)]}").random()
    return _answer(inputs) if draw < rate else {"reply": f"wrong {n}", "tool_calls": []}


NOISY_RATES = (1.0, 1.0, 0.9, 0.5, 0.2, 1.0, 0.0, 0.7)
_flips: Counter[int] = Counter()


async def flips_on_fortieth(inputs: dict[str, Any]) -> dict[str, Any]:
    """Right on every example but those with n % 40 == 0 (the critical ones of
    `write_dataset(..., critical_every=40)`): there, by FAKE_FLIP, wrong on every other call
    (`alternate`, the default), always (`fail`) or never (`pass`)."""
    n = int(inputs["n"])
    if n % 40 == 0:
        mode = os.environ.get("FAKE_FLIP", "alternate")
        _flips[n] += 1
        if mode == "fail" or (mode == "alternate" and _flips[n] % 2 == 0):
            return {"reply": "wrong", "tool_calls": []}
    return _answer(inputs)
