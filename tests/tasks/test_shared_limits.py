"""Judge limits shared by four worker processes, counted at the judge server.

A real `prefect server start`, the scripted judge server on 127.0.0.1 (it records when
each request arrives and the most it answered at once), and four plain worker processes
(`judge_worker.py`): each imports `tasks` (which installs the shared limits, as every flow
does) and makes its judge calls through evalkeeper's `JudgeClient`, all four released at
once. The judge allows `RPM` requests a minute and `CONCURRENCY` in flight.

The rate is scaled down so the test is short: 300 a minute is 5 a second, and the count
is checked in every window of 2, 5 and 10 seconds and over the whole run. The bound in a
window of `w` seconds is `BURST + RATE × (w + DELAY_S)`: the token bucket's burst (the
limit starts full), the rate over the window, and `DELAY_S` of slack for a request that
got its turn just before the window but reached the server inside it (a loaded machine).
No timing is asserted: only counts at the server.

The same four workers with EVALKEEPER_JUDGE_SHARED_LIMITS=false (each process its own
limits) break both bounds: the test can fail."""

from __future__ import annotations

import bisect
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tasks.limits import limit_spec
from tests.prefect_server import Server, cli, prefect_server, start, stop, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WORKERS = 4
CALLS = 15  # per worker
RPM = 300.0
RATE = RPM / 60.0  # per second
CONCURRENCY = 4
BURST = 4  # min(CONCURRENCY, RATE): the local bucket's and the shared limit's
DELAY_S = 1.0
LATENCY_S = 0.5  # each answer: long enough that the calls overlap
WORKER = Path(__file__).with_name("judge_worker.py")
START_S = 300.0  # four fresh interpreters importing Prefect and openai on a busy machine
RUN_S = 300.0


def bound(window_s: float) -> float:
    return BURST + RATE * (window_s + DELAY_S)


def most_in_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any `window_s` seconds (a window starting at each arrival)."""
    return max(bisect.bisect_left(times, t + window_s) - i for i, t in enumerate(times))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect")) as srv:
        yield srv


@pytest.fixture
def judge() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer(policy=Policy(latency_s=LATENCY_S)) as srv:
        yield srv


def run_workers(
    server: Server, judge: ScriptedLLMServer, tmp: Path, shared: str
) -> tuple[list[float], int]:
    """Four workers, released together; (arrival times at the judge, most in flight)."""
    env = {
        "EVALKEEPER_JUDGE_BASE_URL": judge.base_url,
        "EVALKEEPER_JUDGE_MODEL": "judge-2024-08-06",
        "EVALKEEPER_JUDGE_RPM": f"{RPM:g}",
        "EVALKEEPER_JUDGE_CONCURRENCY": str(CONCURRENCY),
        "EVALKEEPER_JUDGE_SHARED_LIMITS": shared,
    }
    go = tmp / "go"
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for i in range(WORKERS):
            args = [str(WORKER), str(CALLS), str(tmp / f"ready-{i}"), str(go)]
            logs.append(start(server, procs, tmp / f"worker-{i}.log", f"worker {i}", args, env))
        wait(
            server,
            "workers ready",
            lambda: True if all((tmp / f"ready-{i}").exists() for i in range(WORKERS)) else None,
            START_S,
        )
        judge.reset()
        go.write_text("go")
        wait(
            server,
            "workers done",
            lambda: True if all(p.poll() is not None for p in procs) else None,
            RUN_S,
        )
    finally:
        for proc in procs:
            stop(proc)
    for proc, log in zip(procs, logs, strict=True):
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
        assert proc.returncode == 0 and lines, server.report()
        result: dict[str, Any] = json.loads(lines[-1])
        assert result == {"calls": CALLS, "errors": []}
    assert judge.statuses() == [200] * (WORKERS * CALLS)
    return sorted(r.at for r in judge.requests), judge.max_in_flight


def test_four_workers_stay_within_one_judge_limit(
    server: Server, judge: ScriptedLLMServer, tmp_path: Path
) -> None:
    shared_dir, local_dir = tmp_path / "shared", tmp_path / "local"
    shared_dir.mkdir()
    local_dir.mkdir()

    # created ahead by the command (the workers' own creation is then a no-op)
    env = {
        "EVALKEEPER_JUDGE_BASE_URL": judge.base_url,
        "EVALKEEPER_JUDGE_RPM": f"{RPM:g}",
        "EVALKEEPER_JUDGE_CONCURRENCY": str(CONCURRENCY),
    }
    spec = limit_spec(judge.base_url, CONCURRENCY, RPM)
    done = cli(server, "tasks.limits", ["-m", "tasks.limits"], env)
    assert done.stdout.splitlines() == [
        f"{spec.rate_name}: limit {spec.rate_limit}, slot decay {spec.rate_decay:g}/s",
        f"{spec.inflight_name}: limit {CONCURRENCY}",
    ]

    times, in_flight = run_workers(server, judge, shared_dir, "true")
    counts = {w: most_in_window(times, w) for w in (2.0, 5.0, 10.0)}
    assert {w: c for w, c in counts.items() if c > bound(w)} == {}, counts
    span = times[-1] - times[0]
    assert len(times) <= bound(span)  # the whole run, at most RPM (plus the burst)
    assert in_flight <= CONCURRENCY

    # the limits on the Prefect server are the endpoint's, with the configured values
    with server.client() as client:
        rate = client.read_global_concurrency_limit_by_name(spec.rate_name)
        inflight = client.read_global_concurrency_limit_by_name(spec.inflight_name)
    assert (rate.limit, rate.slot_decay_per_second) == (spec.rate_limit, spec.rate_decay)
    assert (inflight.limit, inflight.slot_decay_per_second) == (CONCURRENCY, 0.0)

    # each process on its own limits: together they send more, and more at once
    times, in_flight = run_workers(server, judge, local_dir, "false")
    assert most_in_window(times, 5.0) > bound(5.0)
    assert in_flight > CONCURRENCY
