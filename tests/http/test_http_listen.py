"""`evalkeeper listen` as a user runs it: a real process on 127.0.0.1, the SDK's exporter
sending to it, the traces in the JSONL file after a Ctrl-C (the shutdown flush)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import ROOT
from tests.helpers import wait_for_listen
from tests.otlp_helpers import tracer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EVALKEEPER_WAREHOUSE=str(tmp_path / "w.duckdb"),
        EVALKEEPER_OTLP_SETTLE_S="60",  # nothing completes before the Ctrl-C
    )
    return env


def test_listen_writes_the_traces_to_jsonl_on_shutdown(tmp_path: Path) -> None:
    port, out = _free_port(), tmp_path / "traces" / "otlp.jsonl"
    cmd = [sys.executable, "-m", "evalkeeper.cli", "listen", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--jsonl", str(out), "--log-level", "warning"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_listen(proc, f"http://127.0.0.1:{port}")
        provider, memory = tracer()
        with provider.get_tracer("t").start_as_current_span("agent") as root:
            root.set_attribute("gen_ai.conversation.id", "c-1")
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
        assert exporter.export(list(memory.get_finished_spans())) is SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/v1/traces" in output
    (line,) = out.read_text().splitlines()
    trace = json.loads(line)
    assert trace["trace_id"] == f"{root.get_span_context().trace_id:032x}"
    assert trace["conversation_id"] == "c-1" and trace["service"] == "scheduler-agent"


@pytest.mark.skipif(
    importlib.util.find_spec("evalkeeper.traces.ingest") is not None,
    reason="the trace store is installed: the default sink is available",
)
def test_listen_without_the_trace_store_says_what_to_do(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "listen", "--port", str(_free_port())],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "evalkeeper.traces.ingest is not installed" in proc.stderr
    assert "--jsonl PATH" in proc.stderr
