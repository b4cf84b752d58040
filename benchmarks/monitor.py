"""Benchmark the post-deploy monitor.

    uv run python benchmarks/monitor.py [--windows 2000] [--baseline 5000] [--seed 1]
        [--irregular-windows 2000] [--requests 200] [--rounds 5] [--clients 2]
        [--traces 10000] [--sections statistics,irregular,webhook,tick]

The script is a list of sections (`SECTIONS`); each prints its own table and returns its
JSON keys, and the script ends with one JSON line merging every section's keys.

**statistics**: simulated monitoring windows decided by the production code
(`evalkeeper.monitor.decision.decide`, one evaluator, alpha 0.05): a baseline of
`--baseline` traces at a 5% flag rate, then 96 looks (24 h of 15-minute ticks) of 50 new
traces each (200 sampled traces an hour). Unchanged windows (5% after the deploy) give
`false_rollback_rate` (goal: at or under alpha); rises to 10% and to 7.5% give
`detection_rate_*` and `median_traces_to_detect_*` (goal: a median of at most 500 traces
for 7.5%, 10% no slower than the mixture test). The default test (`method="spending"`,
group-sequential) has the plain keys; the earlier test (`method="mixture"`) has them
prefixed `mixture_`. The same windows (the same random draws) are decided, side by side, by

* a fixed-threshold alert, as trace tools and rollout controllers run it: alert when the
  flag rate of the last hour (4 ticks) is at least 1.5 x (or 2 x) the baseline's rate;
* a pooled two-proportion z-test of the cumulative window against the baseline,
  repeated at every look, one-sided at alpha (z >= 1.645).

**irregular traffic**: unchanged deploys at a 1% flag rate, whose traffic follows
a daily rhythm (from near zero at night to twice the mean), with ticks that crash (a
missed tick: the next one sees its traffic), ticks rerun later with no new traffic, and a
tick schedule with jitter: `irregular_false_rollback_rate_1` for both tests (goal: at or
under alpha), and the detection of 1% -> 2% under the same traffic (on an eighth as
many windows).

**webhook**: `evalkeeper listen` runs in a child process on 127.0.0.1 (a fresh warehouse, no
  Prefect API: each new window's first tick runs in the app, as in production). A local
  load generator (`benchmarks/loadgen.py`: `--clients` processes, raw HTTP/1.1 on
  connections opened and used once before the clock starts) sends `--requests` signed
  `POST /hooks/deploy` at once, `--rounds` times, each a new deploy; signatures are made
  before the clock starts. Latency is per request, from send to the 202, all rounds
  pooled. Goal: p99 under 50 ms.
**tick**: a window whose baseline (2,000 traces of v1) was scored by a first tick; then
  `--traces` new v2 traces are appended to the trace file. `tick_s` is the next tick that
  scores them all with the heuristic evaluators (`latency_ok`, `tool_error`), the traces
  already ingested; `tick_with_ingest_s` the same tick on a fresh copy that first ingests
  them from the JSONL file (redaction included). Goal: `tick_s` under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `uv run python benchmarks/monitor.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

from benchmarks._common import table  # noqa: E402
from benchmarks.loadgen import burst, raw_post  # noqa: E402
from evalkeeper.monitor.decision import EvaluatorCounts, MonitorPolicy, decide  # noqa: E402
from evalkeeper.monitor.signing import sign_standard  # noqa: E402
from evalkeeper.settings import Settings  # noqa: E402

ALPHA = 0.05
BASE_RATE = 0.05
LOOKS = 96
PER_LOOK = 50  # 200 sampled traces an hour, a look every 15 minutes
FIXED_FACTOR = 1.5
FIXED_LOOKS = 4  # the fixed-threshold alert's window: the last hour
Z_CRIT = 1.6448536269514722  # one-sided 5%

Section = Callable[[argparse.Namespace], dict[str, Any]]
SECTIONS: list[Section] = []


def section(fn: Section) -> Section:
    """Add a section to the script (they run in the order they are defined)."""
    SECTIONS.append(fn)
    return fn


# -- statistics -----------------------------------------------------------------------------


def first_look(hits: np.ndarray) -> np.ndarray:
    """Per window, the first look (0-based) at which `hits` is true, or -1."""
    any_hit = hits.any(axis=1)
    return np.where(any_hit, hits.argmax(axis=1), -1)


def sequential_looks(
    x0: np.ndarray,
    n0: int,
    flags: np.ndarray,
    policy: MonitorPolicy,
    scored: np.ndarray | None = None,
    times: np.ndarray | None = None,
) -> np.ndarray:
    """The production decision at every look until it rolls back: the first rollback look.

    `scored` (cumulative window traces per window and look) and `times` (the share of the
    window elapsed at each look) default to the regular schedule; each look passes the
    window's earlier looks as `history`, as a live tick does."""
    looks = flags.shape[1]
    if scored is None:
        scored = np.broadcast_to(PER_LOOK * np.arange(1, looks + 1), flags.shape)
    if times is None:
        times = np.broadcast_to(np.arange(1, looks + 1) / looks, flags.shape)
    out = np.full(len(x0), -1)
    for w in range(len(x0)):
        history: list[tuple[float, EvaluatorCounts]] = []
        for look in range(looks):
            counts = EvaluatorCounts(
                "flagged", n0, int(x0[w]), 0, int(scored[w, look]), int(flags[w, look]), 0
            )
            at = float(times[w, look])
            d = decide([counts], policy, final=look == looks - 1, elapsed=at,
                       history={"flagged": history})  # fmt: skip
            if d.decision == "rollback":
                out[w] = look
                break
            history.append((at, counts))
    return out


def fixed_threshold_looks(
    x0: np.ndarray, n0: int, per_look: np.ndarray, factor: float = FIXED_FACTOR
) -> np.ndarray:
    """Alert when the last hour's rate is >= factor x the baseline rate (from the first hour)."""
    kernel = np.ones(FIXED_LOOKS)
    hour = np.array([np.convolve(row, kernel)[: row.size] for row in per_look])
    hour_rate = hour / (PER_LOOK * FIXED_LOOKS)
    hits = hour_rate >= factor * (x0 / n0)[:, None]
    hits[:, : FIXED_LOOKS - 1] = False  # the first full hour
    return first_look(hits)


def z_test_looks(x0: np.ndarray, n0: int, flags: np.ndarray) -> np.ndarray:
    """A pooled two-proportion z-test (window vs baseline) at every look, one-sided."""
    n = PER_LOOK * np.arange(1, LOOKS + 1)[None, :]
    p1, p2 = flags / n, (x0 / n0)[:, None]
    pooled = (flags + x0[:, None]) / (n + n0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / se, 0.0)
    return first_look(z >= Z_CRIT)


def summarise(looks: np.ndarray) -> tuple[float, float | None]:
    """(share of windows that fired, median traces seen when they fired)."""
    fired = looks[looks >= 0]
    rate = fired.size / looks.size
    median = statistics.median(PER_LOOK * (fired + 1)) if fired.size else None
    return rate, (None if median is None else float(median))


@section
def monitor_statistics(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    policy = MonitorPolicy(alpha=ALPHA)
    mixture = MonitorPolicy(alpha=ALPHA, method="mixture")
    methods = {
        "group-sequential (evalkeeper)": lambda x0, fl, per: sequential_looks(
            x0, args.baseline, fl, policy
        ),
        "mixture (evalkeeper before)": lambda x0, fl, per: sequential_looks(
            x0, args.baseline, fl, mixture
        ),
        "fixed threshold 1.5x, 1 h": lambda x0, fl, per: fixed_threshold_looks(
            x0, args.baseline, per
        ),
        "fixed threshold 2x, 1 h": lambda x0, fl, per: fixed_threshold_looks(
            x0, args.baseline, per, 2.0
        ),
        "z-test at every look": lambda x0, fl, per: z_test_looks(x0, args.baseline, fl),
    }
    keys = {
        "group-sequential (evalkeeper)": "",
        "mixture (evalkeeper before)": "mixture_",
        "fixed threshold 1.5x, 1 h": "fixed_threshold_",
        "fixed threshold 2x, 1 h": "fixed_threshold_2x_",
        "z-test at every look": "z_test_",
    }
    scenarios = {"unchanged 5%": BASE_RATE, "5% -> 10%": 0.10, "5% -> 7.5%": 0.075}
    suffix = {"5% -> 10%": "10", "5% -> 7.5%": "7_5"}
    rows = []
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for label, rate in scenarios.items():
        x0 = rng.binomial(args.baseline, BASE_RATE, args.windows)
        per_look = rng.binomial(PER_LOOK, rate, (args.windows, LOOKS))
        flags = per_look.cumsum(axis=1)
        for method, run in methods.items():
            fired, median = summarise(run(x0, flags, per_look))
            hours = None if median is None else median / (PER_LOOK * 4)
            rows.append((method, label, fired, "-" if median is None else median,
                         "-" if hours is None else hours))  # fmt: skip
            key = keys[method]
            if rate == BASE_RATE:
                rollback = key in ("", "mixture_")
                out[f"{key}false_rollback_rate" if rollback else f"{key}false_alarm_rate"] = fired
            else:
                out[f"{key}detection_rate_{suffix[label]}"] = fired
                out[f"{key}median_traces_to_detect_{suffix[label]}"] = median
    elapsed = time.perf_counter() - t0
    print(
        f"monitor statistics: {args.windows:,} windows per scenario, baseline {args.baseline:,} "
        f"traces at 5%, {LOOKS} looks of {PER_LOOK} traces, alpha {ALPHA} ({elapsed:.1f} s)"
    )
    print(table(("method", "scenario", "fired", "median traces", "median hours"), rows))
    print()
    out.update(alpha=ALPHA, windows=args.windows, baseline_traces=args.baseline, looks=LOOKS)
    return out


def irregular_traffic(
    rng: np.random.Generator, windows: int, rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cumulative window traces, cumulative flags, elapsed share) per window and look, for
    traffic with a daily rhythm (the deploy at a random hour), 10% of ticks crashed (their
    traffic seen by the next tick), 5% of ticks followed by a rerun with no new traffic,
    and tick times jittered by up to 5 minutes."""
    scored, flagged, elapsed = [], [], []
    for _ in range(windows):
        start = rng.uniform(0, 24)
        ticks = (np.arange(1, LOOKS + 1) + rng.uniform(-1 / 3, 1 / 3, LOOKS)) / 4.0
        ticks[-1] = 24.0
        hours = start + ticks
        mean = PER_LOOK * (1.0 + 0.95 * np.sin(2 * np.pi * hours / 24.0))
        new = rng.poisson(np.maximum(mean, 0.0))
        n = new.cumsum()
        f = rng.binomial(new, rate).cumsum()
        keep = rng.random(LOOKS) >= 0.10
        keep[-1] = True
        idx = np.flatnonzero(keep)
        rerun = rng.random(idx.size) < 0.05
        rerun[-1] = False
        looks = np.repeat(idx, 1 + rerun.astype(int))
        times = ticks[looks] / 24.0
        times[1:] = np.maximum.accumulate(times)[1:]  # a rerun a moment later
        scored.append(n[looks])
        flagged.append(f[looks])
        elapsed.append(np.minimum(times, 1.0))
    width = max(len(x) for x in scored)

    def pad(rows: list[np.ndarray]) -> np.ndarray:  # repeat each window's last look
        return np.array([np.concatenate([r, np.full(width - r.size, r[-1])]) for r in rows])

    return pad(scored), pad(flagged), pad(elapsed)


@section
def monitor_irregular(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 1)
    windows = args.irregular_windows
    policies = {
        "group-sequential (evalkeeper)": ("", MonitorPolicy(alpha=ALPHA)),
        "mixture (evalkeeper before)": ("mixture_", MonitorPolicy(alpha=ALPHA, method="mixture")),
    }
    scenarios = {  # the detection scenario on an eighth of the windows, to save time
        "unchanged 1%": (0.01, 0.01, "irregular_false_rollback_rate_1", windows),
        "1% -> 2%": (0.01, 0.02, "irregular_detection_rate_1_to_2", max(windows // 8, 1)),
    }
    rows, out = [], {}
    t0 = time.perf_counter()
    for label, (base, rate, key, count) in scenarios.items():
        x0 = rng.binomial(args.baseline, base, count)
        scored, flags, elapsed = irregular_traffic(rng, count, rate)
        for method, (prefix, policy) in policies.items():
            looks = sequential_looks(x0, args.baseline, flags, policy, scored, elapsed)
            fired = looks[looks >= 0]
            rate_fired = fired.size / count
            median = (
                float(np.median(scored[np.flatnonzero(looks >= 0), fired])) if fired.size else None
            )
            se = math.sqrt(ALPHA * (1 - ALPHA) / count)
            rows.append((method, label, rate_fired, "-" if median is None else median,
                         f"{se:.4f}" if base == rate else "-"))  # fmt: skip
            out[prefix + key] = rate_fired
            if base != rate:
                out[prefix + "irregular_median_traces_to_detect_1_to_2"] = median
    elapsed_s = time.perf_counter() - t0
    print(
        f"monitor statistics, irregular traffic: {windows:,} unchanged windows ({windows // 8:,} "
        f"with a rise), baseline "
        f"{args.baseline:,} traces, {LOOKS} ticks of {PER_LOOK} traces on average (daily "
        f"rhythm, 10% crashed, 5% rerun, jitter), alpha {ALPHA} ({elapsed_s:.1f} s)"
    )
    print(table(("method", "scenario", "fired", "median traces", "SE of alpha"), rows))
    print()
    out.update(irregular_windows=windows)
    return out


# -- operations: the deploy webhook under load, the cost of a tick ----------------------


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


def _requests(port: int, n: int, round_no: int) -> list[bytes]:
    """`n` signed deploys (new ones each round), as raw HTTP/1.1 requests."""
    out = []
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
        out.append(raw_post("127.0.0.1", port, "/hooks/deploy", headers, body))
    return out


def webhook_rows(requests: int, rounds: int, processes: int) -> tuple[list[list[Any]], dict]:
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
        latencies: list[float] = []
        statuses: list[int] = []
        for r in range(rounds):
            lat, st = burst("127.0.0.1", port, _requests(port, requests, r), processes)
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
        ["requests", f"{len(latencies):,} ({rounds} x {requests} at once, {processes} clients)"],
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


def tick_rows(traces: int = 10_000) -> tuple[list[list[Any]], dict]:
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
        scoring = settings.model_copy(
            update={"monitor": settings.monitor.model_copy(update={"traces": None})}
        )
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


@section
def webhook(args: argparse.Namespace) -> dict[str, Any]:
    rows, keys = webhook_rows(args.requests, args.rounds, args.clients)
    print("deploy webhook: signed POST /hooks/deploy, concurrent, to `evalkeeper listen`\n")
    print(table(["measure", "value"], rows))
    print()
    return keys


@section
def tick(args: argparse.Namespace) -> dict[str, Any]:
    rows, keys = tick_rows(args.traces)
    print("monitor tick: score the new traces of one window, recount, decide, store\n")
    print(table(["measure", "value"], rows))
    print()
    return keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000, help="Windows per scenario.")
    parser.add_argument("--baseline", type=int, default=5000, help="Baseline traces.")
    parser.add_argument(
        "--irregular-windows", type=int, default=2000, help="Windows per irregular scenario."
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="Webhooks sent at once.")
    parser.add_argument("--rounds", type=int, default=5, help="Webhook bursts.")
    parser.add_argument("--clients", type=int, default=2, help="Load generator processes.")
    parser.add_argument("--traces", type=int, default=10_000, help="New traces of the tick.")
    parser.add_argument(
        "--sections",
        default="statistics,irregular,webhook,tick",
        help="Comma-separated sections to run (default: all).",
    )
    args = parser.parse_args(argv)
    names = {"statistics": monitor_statistics, "irregular": monitor_irregular}
    names.update(webhook=webhook, tick=tick)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; use {', '.join(names)}")
    merged: dict[str, Any] = {}
    for run in SECTIONS:
        if any(names[w] is run for w in wanted):
            merged.update(run(args))
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                      for k, v in merged.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
