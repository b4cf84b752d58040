"""Peak memory of `evalkeeper listen` under a flood of large rootless-span exports.

    uv run python benchmarks/otlp_flood.py [--clients 6] [--seconds 30] [--mib 15]

A real `evalkeeper listen` (the trace store on a fresh warehouse in a temporary folder) is
started on 127.0.0.1; `--clients` threads each send, as fast as they can, OTLP/HTTP
protobuf exports of about `--mib` MiB: spans whose parent never comes (rootless), each with
a large text, fresh trace ids every time. An export told to retry (429) is sent again at
once unless `--honour-retry-after` (a well-behaved exporter waits as told): the server
must hold its memory whatever the clients do. Its RSS is sampled from /proc/PID/status
(VmRSS, and VmHWM: the kernel's high-water mark) every 50 ms. Then the server is stopped
with SIGINT (its shutdown stores every open trace) and the warehouse is counted: every
trace of an accepted export must be there. Goal: peak RSS under 1 GiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
from _common import ROOT, table
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

GOAL_MIB = 1024.0
WORDS = b"the quick brown fox jumps over the lazy dog while the agent answers politely "


def export_body(spans: int, span_bytes: int) -> tuple[bytes, int]:
    """One export of `spans` rootless spans (one trace each) of about `span_bytes` each."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "flood"
    out = rs.scope_spans.add().spans
    text = (WORDS * (span_bytes // len(WORDS) + 1))[:span_bytes].decode()
    now = time.time_ns()
    for _ in range(spans):
        span = out.add()
        span.trace_id, span.span_id, span.parent_span_id = (
            os.urandom(16),
            os.urandom(8),
            os.urandom(8),
        )
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = "chat", now, now + 10**6
        attr = span.attributes.add()
        attr.key, attr.value.string_value = "gen_ai.input.messages", text
    return request.SerializeToString(), spans


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = self.accepted = self.retry = self.other = self.failed = 0
        self.traces_accepted = 0
        self.statuses: dict[int, int] = {}


def client(url: str, stop: float, spans: int, span_bytes: int, honour: bool, c: Counts) -> None:
    headers = {"content-type": "application/x-protobuf"}
    with httpx.Client(timeout=120) as http:
        body, n = export_body(spans, span_bytes)
        while time.monotonic() < stop:
            try:
                r = http.post(url, content=body, headers=headers)
            except httpx.TransportError:
                with c.lock:
                    c.sent += 1
                    c.failed += 1
                time.sleep(0.2)
                continue
            with c.lock:
                c.sent += 1
                c.statuses[r.status_code] = c.statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    c.accepted += 1
                    c.traces_accepted += n
                elif r.status_code in (429, 503):
                    c.retry += 1
                else:
                    c.other += 1
            if r.status_code == 200:
                body, n = export_body(spans, span_bytes)  # the next export: fresh traces
            elif r.status_code in (429, 503):
                assert "retry-after" in r.headers, "a retry answer without Retry-After"
                time.sleep(int(r.headers["retry-after"]) if honour else 0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--mib", type=float, default=15.0, help="size of one export")
    ap.add_argument("--spans", type=int, default=60, help="spans (traces) per export")
    ap.add_argument("--root-wait", type=float, default=5.0, help="EVALKEEPER_OTLP_ROOT_WAIT_S")
    ap.add_argument("--buffer-mib", type=float, default=None, help="..._MAX_BUFFER_BYTES")
    ap.add_argument("--honour-retry-after", action="store_true")
    args = ap.parse_args()
    span_bytes = int(args.mib * 2**20 / args.spans)

    with tempfile.TemporaryDirectory(prefix="otlp-flood-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        env = {
            **os.environ,
            "EVALKEEPER_WAREHOUSE": str(warehouse),
            "EVALKEEPER_REDACTION_KEY": "otlp-flood-benchmark-key",
            "EVALKEEPER_OTLP_SETTLE_S": "0.5",
            "EVALKEEPER_OTLP_ROOT_WAIT_S": str(args.root_wait),
            "EVALKEEPER_OTLP_MAX_BODY_BYTES": str(max(16 * 2**20, int(args.mib * 2**20) + 2**20)),
            "PREFECT_API_URL": "",
        }
        if args.buffer_mib is not None:
            env["EVALKEEPER_OTLP_MAX_BUFFER_BYTES"] = str(int(args.buffer_mib * 2**20))
        port = _free_port()
        cmd = [sys.executable, "-m", "evalkeeper.cli", "listen", "--port", str(port)]
        log_path = Path(tmp) / "listen.log"  # a file: a full pipe would block the server
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [*cmd, "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            result = _flood(args, server, f"http://127.0.0.1:{port}", span_bytes, warehouse)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        if result is None:
            raise SystemExit(f"evalkeeper listen failed:\n{log_path.read_text()[-4000:]}")
    _report(args, span_bytes, *result)


def _flood(
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    base: str,
    span_bytes: int,
    warehouse: Path,
) -> tuple[float, Counts, dict[str, Any], float, float, int] | None:
    """Start the clients, sample the server, stop it; None if it failed."""
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    idle_mib = _status_kib(server.pid, "VmRSS") / 1024

    counts = Counts()
    peak_rss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, _status_kib(server.pid, "VmRSS"))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    stop = t0 + args.seconds
    threads = [
        threading.Thread(
            target=client,
            args=(
                f"{base}/v1/traces",
                stop,
                args.spans,
                span_bytes,
                args.honour_retry_after,
                counts,
            ),
        )
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flood_s = time.monotonic() - t0
    try:  # the server may be busy storing what it accepted
        health: dict[str, Any] = httpx.get(f"{base}/health", timeout=300).json()
    except httpx.TransportError:
        health = {"assembler": {"throttled_requests": "?"}}
    time.sleep(args.root_wait + 2)  # the last traces complete
    with contextlib.suppress(httpx.TransportError):
        health = httpx.get(f"{base}/health", timeout=300).json()
    server.send_signal(signal.SIGINT)  # shutdown: every open trace is stored
    hwm_kib = 0
    while server.poll() is None:
        hwm_kib = max(hwm_kib, _status_kib(server.pid, "VmHWM"))
        peak_rss = max(peak_rss, _status_kib(server.pid, "VmRSS"))
        time.sleep(0.05)
    done.set()
    sampler.join()
    if server.wait() != 0:
        return None
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM traces").fetchone()
        stored = int(row[0]) if row else 0
    return flood_s, counts, health, idle_mib, max(peak_rss, hwm_kib) / 1024, stored


def _report(
    args: argparse.Namespace,
    span_bytes: int,
    flood_s: float,
    counts: Counts,
    health: dict[str, Any],
    idle_mib: float,
    peak_mib: float,
    stored: int,
) -> None:
    print(
        f"evalkeeper listen flooded for {flood_s:,.1f} s by {args.clients} clients, exports of "
        f"{args.mib:g} MiB ({args.spans} rootless spans of {span_bytes:,} bytes), "
        f"Retry-After {'honoured' if args.honour_retry_after else 'ignored'}\n"
    )
    print(
        table(
            ["measure", "value"],
            [
                ["requests sent", counts.sent],
                ["accepted (200)", counts.accepted],
                ["told to retry (429/503)", counts.retry],
                ["other answers / failed", counts.other + counts.failed],
                ["traces accepted", counts.traces_accepted],
                ["traces stored", stored],
                ["throttled (server count)", health["assembler"]["throttled_requests"]],
                ["RSS idle MiB", idle_mib],
                ["peak RSS MiB", peak_mib],
            ],
        )
    )
    ok = peak_mib < GOAL_MIB
    print(
        f"\npeak RSS {peak_mib:,.0f} MiB (goal < {GOAL_MIB:,.0f} MiB: {'met' if ok else 'MISSED'})"
    )
    if stored != counts.traces_accepted:
        print(f"LOST: {counts.traces_accepted - stored} accepted trace(s) not stored")
        print(json.dumps({k: health.get(k) for k in ("assembler", "sink", "store", "buffer")}))
    print(
        json.dumps(
            {
                "requests": counts.sent,
                "accepted": counts.accepted,
                "retry": counts.retry,
                "traces_accepted": counts.traces_accepted,
                "traces_stored": stored,
                "idle_rss_mib": round(idle_mib, 1),
                "peak_rss_mib": round(peak_mib, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
