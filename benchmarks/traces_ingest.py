"""Trace ingest throughput and peak memory: a JSONL file of N traces into a fresh warehouse.

    uv run python benchmarks/traces_ingest.py [--traces 20000,200000]

For each size, this process writes a JSONL file of synthetic traces (every field set, an
e-mail address in the free text) and a fresh child process runs `ingest` on it end to end
(jsonl source, a regex e-mail redactor standing in for the configured one, batches of
1,000 with their cursor, a real DuckDB file), then reports its wall time and peak RSS
(`ru_maxrss`, interpreter and imports included). Flat memory means the peak does not grow
with the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bench_settings, table

_EMAIL = re.compile(r"\S*@\S*")


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _EMAIL.sub("<EMAIL>", value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def write_traces(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "trace_id": f"t-{i:08d}",
                "time": f"2026-11-{1 + i % 30:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "service": "scheduler",
                "environment": "prod",
                "version": f"v{i % 3}",
                "model": "gpt-4o-2024-08-06",
                "inputs": {"message": f"move my booking {i} to Friday, I am user{i}@example.com"},
                "outputs": {"reply": f"Done: booking {i} is on Friday at 10:00."},
                "latency_ms": 300.0 + i % 700,
                "tool_calls": [
                    {"name": "find_booking", "args": {"email": f"user{i}@example.com"}},
                    {"name": "reschedule", "args": {"booking": i, "day": "friday"}},
                ],
                "context": [{"id": "policy-3", "text": "Bookings move up to 24 h before."}],
                "conversation_id": f"c-{i // 3}",
                "feedback": {"score": i % 2, "comment": None},
                "metadata": {"channel": "web", "region": "eu"},
            }
            fh.write(json.dumps(row) + "\n")


def child(path: Path, workdir: Path) -> None:
    from evalkeeper.traces.ingest import ingest
    from evalkeeper.traces.sources import JsonlSource
    from evalkeeper.traces.store import count_traces

    settings = bench_settings(workdir)
    t0 = time.perf_counter()
    summary = asyncio.run(ingest(settings, JsonlSource(path), redact=_redact))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"stored": summary.stored, "bad": summary.bad_lines, "batches": summary.batches,
           "rows": count_traces(settings), "wall_s": wall, "peak_rss_mib": peak}  # fmt: skip
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default="20000,200000", help="Comma-separated sizes.")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    rows, results = [], []
    for n in [int(x) for x in args.traces.split(",")]:
        with tempfile.TemporaryDirectory(prefix="evalkeeper-bench-") as tmp:
            d = Path(tmp)
            path = d / "traces.jsonl"
            write_traces(path, n)
            mib = path.stat().st_size / 2**20
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(path), str(d)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"child failed with exit code {proc.returncode}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert r["stored"] == r["rows"] == n and r["bad"] == 0, r
        rows.append([n, mib, r["batches"], r["wall_s"], n / r["wall_s"], r["peak_rss_mib"]])
        results.append({"traces": n, "file_mib": round(mib, 1), "wall_s": round(r["wall_s"], 2),
                        "traces_per_s": round(n / r["wall_s"]),
                        "peak_rss_mib": round(r["peak_rss_mib"], 1)})  # fmt: skip
    print("traces ingest: JSONL file -> redact -> warehouse, batches of 1,000 with the cursor\n")
    print(table(["traces", "file MiB", "batches", "wall s", "traces/s", "peak RSS MiB"], rows))
    print(json.dumps({"runs": results}))


if __name__ == "__main__":
    main()
