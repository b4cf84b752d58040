"""A real `prefect server start` for the slow tests: 127.0.0.1, a free port, its home and
sqlite database in tmp, analytics and UI off. `prefect_server(...)` starts one and waits
for it to be healthy; `cli`, `start` and `wait` run commands and processes against it and
fail with every log when something does not happen in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
POOL = "evalkeeper-process"
SERVER_START_S = 180.0  # a cold start creates and migrates the database
# the event services only: the event persister (events are readable), the triggers and
# actions (automations run deployments); no scheduler, no late-runs marking
EVENT_SERVICES_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "true",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
}
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started here and its children (its own session), by its id."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Server:
    """The running server, the environment every subprocess gets, and the logs to show."""

    api_url: str
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)

    def report(self) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"----- {name} ({path}) -----\n{text[-12000:]}")
        return "\n".join(parts)

    def client(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url)


@contextmanager
def prefect_server(
    home: Path,
    *,
    services: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `prefect server start` and wait for it to be healthy; stopped at the end. By
    default it is the API alone (`--no-services`: no scheduler, no cron run may start
    mid-test); with `services` (the server's own settings, e.g. `EVENT_SERVICES_ENV`) its
    services run as those settings say. `env` is added to what every subprocess gets. The
    work pool `POOL` is created."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVALKEEPER_"))}
    base.update(
        PREFECT_HOME=str(home / "home"),
        PREFECT_API_URL=api_url,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL="INFO",
        # pick up new runs within a second instead of ten
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_HEARTBEAT_SECONDS="5",
        # the deployments' pull step works from this checkout
        EVALKEEPER_HOME=str(ROOT),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
        **(env or {}),
    )
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    srv = Server(api_url=api_url, env=base, logs={"prefect server": log})
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--no-ui", *(() if services else ("--no-services",)), "--port", str(port)],
            env={**base, **(services or {})},
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}\n{srv.report()}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_START_S} s\n{srv.report()}")
            time.sleep(0.25)
        cli(srv, "pool", ["-m", "prefect", "work-pool", "create", POOL, "--type", "process"])
        yield srv
    finally:
        stop(proc)


def cli(
    srv: Server, label: str, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command to completion; fail with its output and the server log if it fails."""
    done = subprocess.run(
        [sys.executable, *args],
        env={**srv.env, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{label}: exit {done.returncode}\n{done.stdout}\n{done.stderr}\n{srv.report()}"
        )
    return done


def start(
    srv: Server, procs: list[subprocess.Popen[bytes]], log: Path, label: str, args: list[str],
    env: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """Start `python ARGS` in its own session, output to `log` (shown on failure); the
    caller stops everything in `procs`."""
    with log.open("wb") as out:
        procs.append(
            subprocess.Popen(
                [sys.executable, *args],
                env={**srv.env, **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    srv.logs[label] = log
    return log


def wait(srv: Server, what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll `probe` until it returns a value; fail with the logs at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n{srv.report()}")
        time.sleep(0.25)
