"""One judge worker of the shared-limits test: `python judge_worker.py CALLS READY GO`.

It imports `tasks` (which installs the shared limits, as every flow and worker does), makes
a `JudgeClient` from the environment's settings, says it is ready by writing READY, waits
for GO to exist, then makes CALLS judge calls at once (its limiters decide the pace) and
prints one JSON line: the calls and the errors."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import openai  # noqa: F401  (imported before READY: it takes seconds)

import tasks  # noqa: F401  (installs the shared limits)
from evalkeeper.llm import JudgeClient
from evalkeeper.settings import Settings


async def main(calls: int, ready: Path, go: Path) -> None:
    client = JudgeClient.from_settings(Settings())
    ready.write_text("ready")
    while not go.exists():
        await asyncio.sleep(0.02)
    errors: list[str] = []

    async def one(i: int) -> None:
        try:
            await client.complete([{"role": "user", "content": f"call {i}"}], max_tokens=4)
        except Exception as exc:  # reported, and the test fails on it
            errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(i) for i in range(calls)))
    print(json.dumps({"calls": calls, "errors": errors}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
