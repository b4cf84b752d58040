"""Peak memory of a 100,000-example full suite (instant target), rows streamed to DuckDB.

    uv run python benchmarks/memory.py [--examples 100000]

The dataset (JSONL, with the three evaluators `exact_match` key=reply, `tool_call_correct`
and `latency_ok`) is written by this process; the suite runs in a fresh child process
(`run_suite` end to end, a fresh warehouse), which reports its peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`, which includes the interpreter and every import) and
the high-water mark reached after imports and after each phase (`VmHWM` in
/proc/self/status), so the phase that set the peak can be seen. Goal: under 1 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bench_settings, make_dataset, table

TARGET = "benchmarks.targets:instant"
GOAL_MIB = 1024.0


def _status_mib(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(dataset: Path, workdir: Path) -> None:
    """Run the suite in this (fresh) process; print one JSON line with the figures."""
    from evalkeeper.run import experiment as core

    marks: list[tuple[str, float, float]] = [
        ("after imports", _status_mib("VmRSS"), _status_mib("VmHWM"))
    ]
    originals = (core.prepare, core.run_shard, core.finish)

    def mark(name: str, fn: Any) -> Any:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            finally:
                marks.append((f"after {name}", _status_mib("VmRSS"), _status_mib("VmHWM")))

        return wrapped

    core.prepare = mark("prepare", core.prepare)
    core.run_shard = mark("run_shard", core.run_shard)
    core.finish = mark("finish", core.finish)
    settings = bench_settings(workdir)
    t0 = time.perf_counter()
    try:
        summary = asyncio.run(
            core.run_suite(settings, dataset=str(dataset), suite="full", target=TARGET)
        )
    finally:
        core.prepare, core.run_shard, core.finish = originals
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "rows": summary.rows,
                "passed": {e.evaluator: e.passed for e in summary.evaluators},
                "status": summary.experiment.status,
                "wall_s": wall,
                "peak_rss_mib": peak,
                "marks": marks,
                "warehouse_mib": settings.warehouse.stat().st_size / 2**20,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("DATASET", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return

    n = args.examples
    with tempfile.TemporaryDirectory(prefix="evalkeeper-bench-") as tmp:
        d = Path(tmp)
        dataset = make_dataset(d, n)
        size_mib = dataset.stat().st_size / 2**20
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(dataset), str(d)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"child failed with exit code {proc.returncode}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])

    assert r["rows"] == n and all(v == n for v in r["passed"].values()), r
    peak = r["peak_rss_mib"]
    print(f"memory: {n:,}-example full suite ({size_mib:,.1f} MiB of JSONL), instant target,")
    print(
        f"3 evaluators, runs and scores streamed to a fresh warehouse ({r['warehouse_mib']:,.1f} MiB)\n"
    )
    print(
        table(
            ["point", "RSS MiB", "peak so far MiB"], [[m, rss, hwm] for m, rss, hwm in r["marks"]]
        )
    )
    print()
    print(
        table(
            ["measure", "value"],
            [
                ["examples", n],
                ["rows recorded", r["rows"]],
                ["wall s (run_suite)", r["wall_s"]],
                ["ms / example", r["wall_s"] / n * 1000],
                ["peak RSS MiB (ru_maxrss)", peak],
            ],
        )
    )
    print(
        f"\npeak RSS {peak:,.0f} MiB (goal < {GOAL_MIB:,.0f} MiB: {'met' if peak < GOAL_MIB else 'MISSED'})"
    )
    print(
        json.dumps({"examples": n, "peak_rss_mib": round(peak, 1), "wall_s": round(r["wall_s"], 3)})
    )


if __name__ == "__main__":
    main()
