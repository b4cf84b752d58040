"""Bounded concurrency: 1,000 examples against an async target that sleeps 100 ms, 32 at once.

    uv run python benchmarks/concurrency.py [--examples 1000] [--concurrency 32] [--repeat 5]

The ideal wall time is N x latency / concurrency (3.125 s here); since an example is
never split across workers, no runner can beat ceil(N / concurrency) x latency (3.2 s), which
is printed as well, and so is the same pattern of sleeps in bare asyncio (no runner at
all). `wall_s` is the runner's time — the whole `run_shard` call: finding
the pending rows, the target calls, the three evaluators (`exact_match` key=reply,
`tool_call_correct`, `latency_ok`) and every run and score written to a fresh DuckDB
warehouse. The end-to-end `run_suite` time (plus `prepare` and `finish`) is printed too.

Each measure is the median of `--repeat` runs (a fresh warehouse each), with the fastest
and slowest run beside it: on a shared 2-core machine one run moves by about ±10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Phases, bench_settings, make_dataset, table

from benchmarks.targets import SLEEP_S
from evalkeeper.run import experiment as core
from evalkeeper.run.runner import ShardResult

TARGET = "benchmarks.targets:sleep_100ms"


def run(n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evalkeeper-bench-") as tmp:
        d = Path(tmp)
        dataset = make_dataset(d, n)
        settings = bench_settings(d)
        phases = Phases()
        shard: list[ShardResult] = []
        originals = (core.prepare, core.run_shard, core.finish)

        async def run_shard(*args: Any, **kwargs: Any) -> ShardResult:
            result = await originals[1](*args, **kwargs)
            shard.append(result)
            return result

        core.prepare = phases.wrap("prepare", core.prepare)
        core.run_shard = phases.wrap("run_shard", run_shard)
        core.finish = phases.wrap("finish", core.finish)
        try:
            t0 = time.perf_counter()
            summary = asyncio.run(
                core.run_suite(
                    settings,
                    dataset=str(dataset),
                    suite="full",
                    target=TARGET,
                    concurrency=concurrency,
                )
            )
            e2e = time.perf_counter() - t0
        finally:
            core.prepare, core.run_shard, core.finish = originals
        assert summary.rows == n and summary.target_errors == 0, summary
        assert all(e.passed == n for e in summary.evaluators), summary.evaluators
        return {
            "run_shard_s": phases.seconds["run_shard"],
            "runner_s": shard[0].wall_s,  # Runner.run alone (no pending-row lookup)
            "prepare_s": phases.seconds["prepare"],
            "finish_s": phases.seconds["finish"],
            "run_suite_s": e2e,
            "rows": summary.rows,
        }


async def bare_asyncio(n: int, concurrency: int) -> float:
    """The same sleeps on `concurrency` workers with nothing else: asyncio's own floor
    (timers fire up to 1 ms late: epoll timeouts are rounded up to milliseconds)."""
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            await asyncio.sleep(SLEEP_S)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5, help="measured runs (median reported)")
    args = parser.parse_args()
    n, c = args.examples, args.concurrency

    run(64, c)  # warm-up: lazy imports and first-use costs are not timed
    runs = [run(n, c) for _ in range(args.repeat)]
    bare = [asyncio.run(bare_asyncio(n, c)) for _ in range(args.repeat)]

    ideal = n * SLEEP_S / c
    floor = math.ceil(n / c) * SLEEP_S

    def row(label: str, values: list[float]) -> list[Any]:
        med = statistics.median(values)
        return [label, med, med / ideal, min(values), max(values)]

    def col(key: str) -> list[float]:
        return [r[key] for r in runs]

    wall = statistics.median(col("run_shard_s"))
    ratio = wall / ideal
    print(
        f"concurrency: {n:,} examples, async target sleeping {SLEEP_S * 1000:.0f} ms, "
        f"concurrency {c}, 3 evaluators, runs and scores persisted; "
        f"median of {args.repeat} runs\n"
    )
    print(
        table(
            ["measure", "s", "x ideal", "fastest", "slowest"],
            [
                ["ideal N x latency / concurrency", ideal, 1.0, ideal, ideal],
                ["floor ceil(N / concurrency) x latency", floor, floor / ideal, floor, floor],
                row("bare asyncio: same sleeps, no work", bare),
                row("runner: run_shard (wall_s)", col("run_shard_s")),
                row("  of which Runner.run", col("runner_s")),
                row("prepare", col("prepare_s")),
                row("finish", col("finish_s")),
                row("end to end: run_suite", col("run_suite_s")),
            ],
        )
    )
    print(
        f"\nrunner wall / ideal = {ratio:.3f}  (goal <= 1.05: {'met' if ratio <= 1.05 else 'MISSED'})"
    )
    print(
        json.dumps({"wall_s": round(wall, 4), "ideal_s": round(ideal, 4), "ratio": round(ratio, 4)})
    )


if __name__ == "__main__":
    main()
