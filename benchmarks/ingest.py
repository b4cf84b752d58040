"""OTLP ingest: spans per second and the server's peak RSS, through the real SDK exporter.

    uv run python benchmarks/ingest.py [--spans 200000] [--settle 1.0]

The app (`create_app`, the `evalkeeper listen` app) runs under uvicorn in a child process,
so its CPU and memory are its own. This process makes agent traces with the OpenTelemetry
SDK (5 spans each: an `invoke_agent` root with GenAI input/output messages holding an
e-mail address and a phone number, a retrieval, a chat with token usage, an `execute_tool`,
a second chat) and sends them with `OTLPSpanExporter` in batches of 512 spans (the SDK's
batch processor's default), so traces straddle requests. Span creation is not timed; the
export calls are (client encoding + HTTP + the server's decode and assembly).

The server's sink is, in this order of preference:
- `warehouse`: `evalkeeper.traces.ingest.make_trace_sink(settings)` into a fresh DuckDB file
  (the trace store, which redacts before it stores);
- `assembler`: traces are counted only, redacted first with
  `evalkeeper.traces.redaction.build_redactor(settings).redact_json` when that is importable.
The output says which ran. RSS is read from /proc/<pid>/status (VmRSS, VmHWM) of the server
and its child processes (the trace store's redaction workers), summed; CPU likewise.
Goals: at least 5,000 spans/s; peak RSS flat and under 500 MiB for 200,000 spans.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import bench_settings, table

SPANS_PER_TRACE = 5
BATCH = 512
GOAL_SPANS_PER_S = 5_000
GOAL_RSS_MIB = 500.0


# -- the server (child process) ---------------------------------------------------------------


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def server_mode() -> tuple[str, bool]:
    """(`warehouse` or `assembler`, whether redaction is on) for this checkout."""
    if _has("evalkeeper.traces.ingest"):
        import evalkeeper.traces.ingest as ingest

        if hasattr(ingest, "make_trace_sink"):
            return "warehouse", True
    return "assembler", _has("evalkeeper.traces.redaction")


def serve(port: int, workdir: Path, settle_s: float) -> None:
    import uvicorn

    from evalkeeper.http import create_app

    settings = bench_settings(workdir, otlp_settle_s=settle_s, otlp_max_open_traces=100_000)
    mode, redacting = server_mode()
    if mode == "warehouse":
        import evalkeeper.traces.ingest as ingest

        sink = ingest.make_trace_sink(settings)
    else:
        redact = None
        if redacting:
            from evalkeeper.traces.redaction import build_redactor

            redact = build_redactor(settings).redact_json
        fields = ("inputs", "outputs", "tool_calls", "context", "metadata", "error")

        async def sink(traces: list[dict[str, Any]]) -> None:
            if redact is not None:
                for t in traces:
                    for f in fields:
                        t[f] = redact(t[f])
            await asyncio.sleep(0)

    app = create_app(settings, trace_sink=sink)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the client (this process) ----------------------------------------------------------------


def _status_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """`pid` and its live child processes (the redaction workers, multiprocessing's
    resource tracker)."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                out.append(int(entry))
    return out


def _family_mib(pid: int, field: str) -> float:
    """`field` (VmRSS, VmHWM) summed over the server and its children: for VmHWM, an upper
    bound of their peak together."""
    total = 0.0
    for p in _family(pid):
        try:
            total += _status_mib(p, field)
        except OSError:
            continue
    return total


def _family_cpu_s(pid: int) -> float:
    total = 0.0
    for p in _family(pid):
        try:
            total += _cpu_s(p)
        except OSError:
            continue
    return total


def _make_spans(provider: Any, memory: Any, n_traces: int, offset: int) -> list[Any]:
    t = provider.get_tracer("bench.agent")
    for i in range(offset, offset + n_traces):
        with t.start_as_current_span("invoke_agent scheduler") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.conversation.id", f"conv-{i % 997}")
            root.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": (
                    f"Hi, I'm customer {i}. Reach me at jane.doe{i}@example.com or "
                    "+1 415 555 0132 to move my Tuesday appointment."
                )}]}]),
            )  # fmt: skip
            root.set_attribute(
                "gen_ai.output.messages",
                json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": "Done: moved to Wednesday 10:00."}
                ]}]),
            )  # fmt: skip
            with t.start_as_current_span("retrieval") as r:
                r.set_attribute("gen_ai.operation.name", "retrieval")
                r.set_attribute(
                    "gen_ai.retrieval.documents",
                    json.dumps([{"id": "policy-7", "score": 0.9, "content": "Moves are free."}]),
                )
            for step in range(2):
                with t.start_as_current_span("chat gpt-4o") as chat:
                    chat.set_attribute("gen_ai.operation.name", "chat")
                    chat.set_attribute("gen_ai.request.model", "gpt-4o-2024-08-06")
                    chat.set_attribute("gen_ai.usage.input_tokens", 300 + step)
                    chat.set_attribute("gen_ai.usage.output_tokens", 40)
                if step == 0:
                    with t.start_as_current_span("execute_tool move_appointment") as tool:
                        tool.set_attribute("gen_ai.operation.name", "execute_tool")
                        tool.set_attribute("gen_ai.tool.name", "move_appointment")
                        tool.set_attribute(
                            "gen_ai.tool.call.arguments", '{"from": "tue", "to": "wed 10:00"}'
                        )
    spans = list(memory.get_finished_spans())
    memory.clear()
    return spans


def _health(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(f"{url}/health", timeout=10).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spans", type=int, default=200_000, help="spans to send (default 200,000)"
    )
    parser.add_argument("--settle", type=float, default=1.0, help="server settle_s (default 1.0)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), args.settle)
        return

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    n_traces = max(1, args.spans // SPANS_PER_TRACE)
    n_spans = n_traces * SPANS_PER_TRACE
    mode, redacting = server_mode()
    with tempfile.TemporaryDirectory(prefix="evalkeeper-bench-") as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), tmp]
        server = subprocess.Popen([*cmd, "--settle", str(args.settle)])
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    _health(url)
                    break
                except Exception:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            base_rss = _family_mib(server.pid, "VmRSS")
            cpu0 = _family_cpu_s(server.pid)
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": "bench-agent", "deployment.environment.name": "bench"}
                )
            )
            memory = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(memory))
            exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=60)
            marks: list[list[Any]] = [["after start", 0, base_rss]]
            export_s, sent, failed, chunk_traces = 0.0, 0, 0, 2_000
            pending: list[Any] = []
            made = 0
            next_mark = n_spans // 4
            first_export: float | None = None
            while made < n_traces or pending:
                if len(pending) < BATCH and made < n_traces:
                    k = min(chunk_traces, n_traces - made)
                    pending.extend(_make_spans(provider, memory, k, made))
                    made += k
                    continue
                batch, pending = pending[:BATCH], pending[BATCH:]
                t0 = time.perf_counter()
                first_export = t0 if first_export is None else first_export
                result = exporter.export(batch)
                export_s += time.perf_counter() - t0
                sent += len(batch)
                failed += len(batch) if result is not SpanExportResult.SUCCESS else 0
                if sent >= next_mark:
                    marks.append([f"{sent:,} spans sent", sent, _family_mib(server.pid, "VmRSS")])
                    next_mark += n_spans // 4
            exporter.shutdown()
            # every trace completes once the settle period has passed
            deadline = time.monotonic() + 60 + args.settle * 5
            health = _health(url)
            while (
                health["sink"]["delivered_traces"] + health["sink"]["failed_traces"] < n_traces
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
                health = _health(url)
            # end to end: first export until the last trace is stored, less the settle time
            # (a trace is complete only after `settle` seconds without a span for it)
            e2e_s = time.perf_counter() - (first_export or 0.0) - args.settle
            server_cpu = _family_cpu_s(server.pid) - cpu0
            peak = _family_mib(server.pid, "VmHWM")
            marks.append(["all traces completed", sent, _family_mib(server.pid, "VmRSS")])
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    asm, sink = health["assembler"], health["sink"]
    store = health.get("store") or {}
    spans_per_s = n_spans / export_s
    e2e_per_s = n_spans / e2e_s if e2e_s > 0 else float("nan")
    print(
        f"ingest: {n_spans:,} spans ({n_traces:,} traces of {SPANS_PER_TRACE}) through "
        f"OTLPSpanExporter, batches of {BATCH}, into the app under uvicorn (child process)"
    )
    print(
        f"mode: {mode} ({'trace store in a fresh warehouse' if mode == 'warehouse' else 'assembler only, traces counted'}); "
        f"redaction: {'on' if redacting else 'off (evalkeeper.traces.redaction not importable)'}; "
        f"settle {args.settle:g} s\n"
    )
    print(table(["point", "spans sent", "server + workers RSS MiB"], marks))
    print()
    rows = [
        ["spans sent", sent],
        ["spans refused by the exporter", failed],
        ["spans accepted (server)", asm["spans_accepted"]],
        ["spans rejected / late / dropped", asm["rejected_spans"] + asm["late_spans"] + asm["dropped_spans"]],
        ["traces delivered to the sink", sink["delivered_traces"]],
        ["traces failed in the sink", sink["failed_traces"]],
        ["export wall s", export_s],
        ["spans / s (export wall)", spans_per_s],
        ["spans / s into the store (end to end, settle excluded)", e2e_per_s],
        ["traces stored in the warehouse", store.get("stored", "n/a")],
        ["traces invalid / spooled", f"{store.get('invalid', 'n/a')} / {store.get('spooled', 'n/a')}"],
        ["server + workers CPU s", server_cpu],
        ["spans / server CPU s", n_spans / server_cpu if server_cpu else float("nan")],
        ["server + workers peak RSS MiB (sum of VmHWM)", peak],
    ]  # fmt: skip
    print(table(["measure", "value"], rows))
    complete = sink["delivered_traces"] == n_traces and asm["spans_accepted"] == n_spans
    if mode == "warehouse":
        complete = complete and store.get("stored") == n_traces
    spans_per_s = min(spans_per_s, e2e_per_s) if mode == "warehouse" else spans_per_s
    print(
        f"\n{'all' if complete else 'NOT all'} {n_traces:,} traces delivered; "
        f"spans/s {spans_per_s:,.0f} (goal >= {GOAL_SPANS_PER_S:,}: "
        f"{'met' if spans_per_s >= GOAL_SPANS_PER_S else 'MISSED'}); peak RSS {peak:,.0f} MiB "
        f"(goal < {GOAL_RSS_MIB:,.0f}: {'met' if peak < GOAL_RSS_MIB else 'MISSED'})"
    )
    print(
        json.dumps(
            {
                "spans": n_spans,
                "spans_per_s": round(spans_per_s, 1),
                "export_spans_per_s": round(n_spans / export_s, 1),
                "e2e_spans_per_s": round(e2e_per_s, 1),
                "traces_stored": store.get("stored"),
                "peak_rss_mib": round(peak, 1),
                "server_cpu_s": round(server_cpu, 2),
                "mode": mode,
                "redaction": redacting,
                "traces_delivered": sink["delivered_traces"],
                "traces_expected": n_traces,
            }
        )
    )


if __name__ == "__main__":
    main()
