"""Instrumented traffic into a real `evalkeeper listen`: the local model server, the listen
process (its trace store in a DuckDB file), one agent process per instrumentation (the
instrumentors patch globally), and recorded payloads posted as they were sent.

    traffic = run_traffic(tmp_dir, ["traceloop", "otel-openai-v2"])
    trace = traffic.stored("traceloop", "tool_error")   # the stored, redacted trace

`listen` keeps every trace open until it stops (a settle time of 60 s), then flushes them
all on Ctrl-C, so what is stored does not depend on timing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace
from evalkeeper.traces.store import get_trace
from tests.conftest import ROOT
from tests.helpers import wait_for_listen
from tests.instrumented.chat_server import ChatServer

PAYLOADS = Path(__file__).parent / "payloads"
REDACTION_KEY = "instrumented-test-key"
AGENT_TIMEOUT_S = 180
LISTEN_START_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AgentRun:
    instrumentation: str
    returncode: int
    stdout: str
    stderr: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Traffic:
    settings: Settings
    env: dict[str, str]
    llm_url: str
    listen_output: str
    agents: dict[str, AgentRun]
    chat_requests: list[dict[str, Any]]

    def trace_id(self, instrumentation: str, run: str) -> str:
        agent = self.agents[instrumentation]
        assert run in agent.runs, (
            f"{instrumentation}: no {run!r} run\n{agent.stdout}\n{agent.stderr}"
        )
        return str(agent.runs[run]["trace_id"])

    def stored(self, instrumentation: str, run: str) -> Trace:
        trace_id = self.trace_id(instrumentation, run)
        trace = get_trace(self.settings, trace_id)
        assert trace is not None, (
            f"{instrumentation}/{run}: trace {trace_id} not stored\n{self.listen_output}"
        )
        return trace


def listen_env(tmp_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EVALKEEPER_WAREHOUSE=str(tmp_dir / "w.duckdb"),
        EVALKEEPER_REDACTION_KEY=REDACTION_KEY,
        EVALKEEPER_OTLP_SETTLE_S="60",  # nothing completes before the Ctrl-C flush
        PYTHONPATH=str(ROOT),
    )
    return env


AGENT_MODULES = {
    name: "tests.instrumented.agent_events"
    for name in (
        "otel-openai-v2-events",
        "otel-openai-v2-true",
        "traceloop-events",
        "openinference-hidden",
        "traceloop-no-content",
    )
}
"""The agent module of the instrumentations not in `agent.py` (`tests.instrumented.agent`)."""


def _agent(instrumentation: str, llm_url: str, otlp: str, env: dict[str, str]) -> AgentRun:
    module = AGENT_MODULES.get(instrumentation, "tests.instrumented.agent")
    cmd = [sys.executable, "-m", module, "--instrumentation", instrumentation]
    cmd += ["--wait-for-listen", str(LISTEN_START_S)]
    proc = subprocess.run(
        [*cmd, "--llm-url", llm_url, "--otlp", otlp],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=AGENT_TIMEOUT_S,
    )
    run = AgentRun(instrumentation, proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            run.runs[record["run"]] = record
    return run


def post_payload(otlp: str, name: str) -> dict[str, Any]:
    """Post a recorded OTLP/HTTP protobuf payload (`payloads/NAME/*.pb`, in order) as its
    exporter sent it; returns the recording's `runs.json` (`{run: {"trace_id", "error"}}`)."""
    folder = PAYLOADS / name
    for body in sorted(folder.glob("*.pb")):
        response = httpx.post(
            f"{otlp}/v1/traces",
            content=body.read_bytes(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        response.raise_for_status()
    runs: dict[str, Any] = json.loads((folder / "runs.json").read_text())
    return runs


def run_traffic(
    tmp_dir: Path,
    instrumentations: list[str],
    *,
    recorded: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    parallel: int = 0,
) -> Traffic:
    """Start the model server and `listen`, run one agent process per instrumentation
    (`parallel` at a time, all at once by default), post the `recorded` payloads, stop
    `listen` (the flush)."""
    env = {**listen_env(tmp_dir), **(env or {})}
    port = free_port()
    otlp = f"http://127.0.0.1:{port}"
    server = ChatServer()
    llm_url = server.start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evalkeeper.cli",
            "listen",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    agents: dict[str, AgentRun] = {}
    try:
        # the agents import and instrument while listen starts; each waits for its /health
        with ThreadPoolExecutor(max_workers=parallel or max(1, len(instrumentations))) as pool:
            done = pool.map(lambda i: _agent(i, llm_url, otlp, env), instrumentations)
            wait_for_listen(proc, otlp, LISTEN_START_S)
            agents = {a.instrumentation: a for a in done}
        for name in recorded:
            runs = post_payload(otlp, name)
            agents[name] = AgentRun(name, 0, json.dumps(runs), "", runs)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
        server.stop()
    for a in agents.values():
        assert a.returncode == 0, f"{a.instrumentation} agent failed:\n{a.stdout}\n{a.stderr}"
    assert proc.returncode == 0, output
    settings = Settings(
        warehouse=tmp_dir / "w.duckdb",
        redaction_key=SecretStr(REDACTION_KEY),
        datasets_dir=tmp_dir / "datasets",
    )
    return Traffic(settings, env, llm_url, output, agents, list(server.requests))
