"""Judge limits shared through Prefect: the rate the judge sees, and the cost per request.

    uv run python benchmarks/shared_limits.py [--calls 60] [--api-url URL]

Starts a real `prefect server start` (SQLite in a temporary directory; or uses `--api-url`)
and the scripted judge server on 127.0.0.1 (0.3 s per answer), then:

1. 1 and 4 worker processes (`tests/tasks/judge_worker.py`: evalkeeper's `JudgeClient`,
   the shared limits installed by importing `tasks`), rpm 600 and concurrency 8, all
   calls at once: requests a minute at the judge server (arrivals over their span, and
   without the first burst of 8: the limits start full), the most in any 10 s window
   scaled to a minute, and the most in flight. Then the same 4
   workers with EVALKEEPER_JUDGE_SHARED_LIMITS=false, for the contrast.
2. The cost of one request's turn against an idle limit (no waiting): `PrefectLimits.slot()`
   entered and left, and the same through Prefect's own `concurrency()` + `rate_limit()`.

Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import table  # noqa: E402
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer  # noqa: E402

WORKER = ROOT / "tests" / "tasks" / "judge_worker.py"
RPM = 600.0
CONCURRENCY = 8
LATENCY_S = 0.3
BURST = int(min(CONCURRENCY, RPM / 60.0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home / "home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--no-ui", "--no-services"],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"prefect server not healthy; see {home / 'server.log'}")


def run_workers(
    api_url: str, judge: ScriptedLLMServer, tmp: Path, workers: int, calls: int, shared: bool
) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVALKEEPER_"))}
    env.update(
        PREFECT_API_URL=api_url,
        PYTHONPATH=str(ROOT),
        EVALKEEPER_JUDGE_BASE_URL=judge.base_url,
        EVALKEEPER_JUDGE_MODEL="judge-2024-08-06",
        EVALKEEPER_JUDGE_RPM=f"{RPM:g}",
        EVALKEEPER_JUDGE_CONCURRENCY=str(CONCURRENCY),
        EVALKEEPER_JUDGE_SHARED_LIMITS="true" if shared else "false",
    )
    go = tmp / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(calls), str(tmp / f"ready-{i}"), str(go)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    while not all((tmp / f"ready-{i}").exists() for i in range(workers)):
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a worker died before it was ready")
        time.sleep(0.1)
    judge.reset()
    go.write_text("go")
    for p in procs:
        p.communicate(timeout=900)
    times = sorted(r.at for r in judge.requests)
    span = times[-1] - times[0]
    in_10s = max(bisect.bisect_left(times, t + 10.0) - i for i, t in enumerate(times))
    return {
        "workers": workers,
        "shared": shared,
        "requests": len(times),
        "rpm": round((len(times) - 1) / span * 60.0) if span > 0 else None,
        # the limits start full: what is sent beyond the first burst, over the span
        "rpm_after_burst": round((len(times) - BURST) / span * 60.0) if span > 0 else None,
        "most_in_10s_per_min": in_10s * 6,
        "max_in_flight": judge.max_in_flight,
    }


async def overhead(api_url: str, n: int) -> dict[str, float]:
    """ms per request's turn against idle limits: ours, and Prefect's own helpers."""
    os.environ["PREFECT_API_URL"] = api_url
    from prefect.concurrency.asyncio import concurrency, rate_limit

    from tasks.limits import SLOTS_PER_REQUEST, PrefectLimits

    limits = PrefectLimits("http://overhead.invalid:1/v1", 10_000, 6_000_000.0)
    async with limits.slot():  # the client and the limits, once
        pass
    ours = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with limits.slot():
            pass
        ours.append((time.perf_counter() - t0) * 1000)
    theirs = []
    for _ in range(max(5, n // 4)):
        t0 = time.perf_counter()
        async with concurrency(limits.spec.inflight_name, strict=True, lease_duration=60):
            await rate_limit(limits.spec.rate_name, occupy=SLOTS_PER_REQUEST, strict=True)
        theirs.append((time.perf_counter() - t0) * 1000)
    return {
        "slot_ms_p50": round(statistics.median(ours), 1),
        "slot_ms_mean": round(statistics.fmean(ours), 1),
        "prefect_helpers_ms_p50": round(statistics.median(theirs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60, help="judge calls per worker")
    parser.add_argument("--api-url", help="a running Prefect server (else one is started)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-limits-") as tmp_dir:
        tmp = Path(tmp_dir)
        proc = None
        api_url = args.api_url
        if api_url is None:
            proc, api_url = start_server(tmp / "prefect")
        try:
            runs = []
            with ScriptedLLMServer(policy=Policy(latency_s=LATENCY_S)) as judge:
                for workers, shared in ((1, True), (4, True), (4, False)):
                    label = f"{workers}-{'shared' if shared else 'local'}"
                    runs.append(
                        run_workers(api_url, judge, tmp / label, workers, args.calls, shared)
                    )
            cost = asyncio.run(overhead(api_url, 50))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"judge: rpm {RPM:g}, concurrency {CONCURRENCY}, {LATENCY_S:g} s per answer")
    print(
        table(
            [
                "workers",
                "limits",
                "requests",
                "rpm at judge",
                "after the burst",
                "most in 10 s ×6",
                "max in flight",
            ],
            [
                [
                    r["workers"],
                    "shared" if r["shared"] else "per process",
                    r["requests"],
                    r["rpm"],
                    r["rpm_after_burst"],
                    r["most_in_10s_per_min"],
                    r["max_in_flight"],
                ]
                for r in runs
            ],
        )
    )
    print(
        f"one request's turn against idle limits: {cost['slot_ms_p50']} ms (p50; mean "
        f"{cost['slot_ms_mean']} ms); Prefect's concurrency() + rate_limit(): "
        f"{cost['prefect_helpers_ms_p50']} ms"
    )
    import json

    print(json.dumps({"rpm": RPM, "concurrency": CONCURRENCY, "runs": runs, **cost}))


if __name__ == "__main__":
    main()
