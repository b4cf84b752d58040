"""The monitor's operations: deploy webhook latency under load, and the cost of one tick.

    uv run python benchmarks/monitor_ops.py [--requests 200] [--rounds 5] [--traces 10000]

- webhook: `evalkeeper listen` runs in a child process on 127.0.0.1 (a fresh warehouse, no
  Prefect API: each new window's first tick runs in the app, as in production). A local
  load generator (httpx, one connection per request) sends `--requests` signed
  `POST /hooks/deploy` at once, `--rounds` times, each a new deploy; signatures are made
  before the clock starts. Latency is per request, from send to the 202, all rounds
  pooled. Goal: p99 under 50 ms.
- tick: a window whose baseline (2,000 traces of v1) was scored by a first tick; then
  `--traces` new v2 traces are appended to the trace file. `tick_s` is the next tick that
  scores them all with the heuristic evaluators (`latency_ok`, `tool_error`), the traces
  already ingested; `tick_with_ingest_s` the same tick on a fresh copy that first ingests
  them from the JSONL file (redaction included). Goal: `tick_s` under 2 s.

`webhook_section()` and `tick_section()` return (table rows, JSON keys) for
`benchmarks/monitor.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ROOT, table

from evalkeeper.monitor.signing import sign_standard
from evalkeeper.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"benchmark-webhook-secret-0000001").decode()
DEPLOY = datetime(2026, 11, 30, 12, tzinfo=UTC)
SERVICE = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def _load(url: str, n: int, round_no: int) -> tuple[list[float], list[int]]:
    import httpx

    requests = []
    for i in range(n):
        body = json.dumps(
            {
                "service": SERVICE,
                "version": f"v{round_no}-{i}",
                "deploy_id": f"bench-{round_no}-{i}",
                "time": DEPLOY.isoformat(),
            }
        ).encode()
        headers = sign_standard(SECRET, f"msg-{round_no}-{i}", datetime.now(UTC), body)
        headers["content-type"] = "application/json"
        requests.append((body, headers))
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(body: bytes, headers: dict[str, str]) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = await client.post(url, content=body, headers=headers)
            return (time.perf_counter() - t0) * 1000, r.status_code

        await client.get(url.replace("/hooks/deploy", "/health"))  # connect once first
        done = await asyncio.gather(*(one(b, h) for b, h in requests))
    return [d[0] for d in done], [d[1] for d in done]


def webhook_section(requests: int = 200, rounds: int = 5) -> tuple[list[list[Any]], dict]:
    tmp = Path(tempfile.mkdtemp(prefix="evalkeeper-bench-hooks-"))
    port = _free_port()
    env = {
        **os.environ,
        "EVALKEEPER_WAREHOUSE": str(tmp / "w.duckdb"),
        "EVALKEEPER_WEBHOOK_SECRET": SECRET,
        "EVALKEEPER_MONITORS_DIR": str(tmp / "monitors"),
        "EVALKEEPER_REDACTION_KEY": "benchmark-redaction-key",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("EVALKEEPER_TRACES", None)
    cmd = [sys.executable, "-m", "evalkeeper.cli", "listen", "--port", str(port)]
    cmd += ["--jsonl", str(tmp / "otlp.jsonl")]  # the OTLP sink; not used here
    log = (tmp / "listen.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "--log-level", "warning"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "evalkeeper listen did not start:\n" + (tmp / "listen.log").read_text()
                )
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/hooks/deploy"
        latencies: list[float] = []
        statuses: list[int] = []
        for r in range(rounds):
            lat, st = asyncio.run(_load(url, requests, r))
            latencies += lat
            statuses += st
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    bad = sum(1 for s in statuses if s != 202)
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    rows = [
        ["requests", f"{len(latencies):,} ({rounds} x {requests} at once)"],
        ["not 202", str(bad)],
        ["p50 ms", f"{p50:.1f}"],
        ["p99 ms (goal < 50)", f"{p99:.1f}"],
        ["max ms", f"{max(latencies):.1f}"],
    ]
    keys = {
        "webhook_requests": len(latencies),
        "webhook_concurrency": requests,
        "webhook_non_202": bad,
        "webhook_p50_ms": round(p50, 2),
        "webhook_p99_ms": round(p99, 2),
    }
    return rows, keys


def _traffic(path: Path, version: str, start: datetime, n: int, hours: float) -> None:
    step = timedelta(hours=hours) / n
    with path.open("a") as fh:
        for i in range(n):
            row = {
                "trace_id": f"{version}-{i:06d}",
                "time": (start + step * i).isoformat(),
                "service": SERVICE,
                "version": version,
                "inputs": {"message": f"book slot {i}"},
                "outputs": {"reply": "Booked."},
                "latency_ms": 3000.0 if i % 20 == 0 else 300.0,
                "tool_calls": [{"name": "book_slot", "args": {"slot": i}}],
            }
            if i % 50 == 0:
                row["error"] = "tool book_slot: 503"
            fh.write(json.dumps(row) + "\n")


async def _tick_once(settings: Settings, now: datetime) -> tuple[float, int]:
    from evalkeeper.monitor.tick import tick

    t0 = time.perf_counter()
    summary = await tick(settings, now=now)
    return time.perf_counter() - t0, summary.windows[0].new_window_traces


def tick_section(traces: int = 10_000) -> tuple[list[list[Any]], dict]:
    from evalkeeper.monitor.windows import DeployEvent, open_window
    from evalkeeper.traces.ingest import ingest
    from evalkeeper.traces.sources import JsonlSource

    tmp = Path(tempfile.mkdtemp(prefix="evalkeeper-bench-tick-"))
    try:
        path = tmp / "traces.jsonl"
        _traffic(path, "v1", DEPLOY - timedelta(days=1), 2000, 24)
        settings = Settings(
            warehouse=tmp / "a" / "w.duckdb",
            monitors_dir=tmp / "monitors",
            traces=f"jsonl:{path}",
            redaction_key="benchmark-redaction-key",
            prefect_api_url=None,
        )
        event = DeployEvent(service=SERVICE, version="v2", previous_version="v1",
                            deploy_id="bench", time=DEPLOY)  # fmt: skip
        open_window(settings, event, "cli")
        asyncio.run(_tick_once(settings, DEPLOY))  # scores the baseline
        _traffic(path, "v2", DEPLOY, traces, 6)
        # a copy of the warehouse before the big tick, to time it once more with its ingest
        (tmp / "b").mkdir()
        shutil.copy(settings.warehouse, tmp / "b" / "w.duckdb")
        wal = Path(f"{settings.warehouse}.wal")
        if wal.exists():
            shutil.copy(wal, tmp / "b" / "w.duckdb.wal")
        t0 = time.perf_counter()
        asyncio.run(ingest(settings, JsonlSource(path)))
        ingest_s = time.perf_counter() - t0
        scoring = settings.model_copy(update={"traces": None})
        tick_s, scored = asyncio.run(_tick_once(scoring, DEPLOY + timedelta(hours=6)))
        other = settings.model_copy(update={"warehouse": tmp / "b" / "w.duckdb"})
        full_s, scored_full = asyncio.run(_tick_once(other, DEPLOY + timedelta(hours=6)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [
        ["new traces scored", f"{scored:,} ({scored_full:,} with ingest)"],
        ["evaluators", "latency_ok, tool_error"],
        ["ingest s (separately)", f"{ingest_s:.2f}"],
        ["tick s (goal < 2)", f"{tick_s:.2f}"],
        ["tick with ingest s", f"{full_s:.2f}"],
    ]
    keys = {
        "tick_traces": scored,
        "tick_s": round(tick_s, 3),
        "tick_with_ingest_s": round(full_s, 3),
        "tick_ingest_s": round(ingest_s, 3),
    }
    return rows, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traces", type=int, default=10_000)
    args = parser.parse_args()
    hook_rows, hook_keys = webhook_section(args.requests, args.rounds)
    print("deploy webhook: signed POST /hooks/deploy, concurrent, to `evalkeeper listen`\n")
    print(table(["measure", "value"], hook_rows))
    tick_rows, tick_keys = tick_section(args.traces)
    print("\nmonitor tick: score the new traces of one window, recount, decide, store\n")
    print(table(["measure", "value"], tick_rows))
    print(json.dumps({**hook_keys, **tick_keys}))


if __name__ == "__main__":
    main()
