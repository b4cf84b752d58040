"""`evalkeeper serve` and `prefect deploy --all` side by side on one real Prefect server.

One `prefect server start` (127.0.0.1, a free port, its database in tmp) serves the whole
module; each test starts from no deployments. The flows run a tiny dataset against
`fake_targets:instant`, so a flow run costs a few seconds, mostly Python start-up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import httpx
import pytest

from deployments.schedules import NIGHTLY, SERVE_SUFFIX
from tests.helpers import write_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
POOL = "evalkeeper-process"
FLOW = "nightly"
SERVER_START_S = 180.0  # a cold start creates and migrates the database
FLOW_RUN_S = 240.0  # a flow run in a fresh process: imports, engine, tiny suite
# API only: no scheduler (no cron run may start mid-test), no UI
SERVER_ARGS = ("--host", "127.0.0.1", "--no-services", "--no-ui", "--port")
FAST = ("--target", "fake_targets:instant")
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVALKEEPER_"))}
    env.update(
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
        EVALKEEPER_GIT_BRANCH="main",
        EVALKEEPER_GIT_COMMIT="0123456789abcdef",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    )
    log = home / "server.log"
    srv = Server(api_url=api_url, env=env, logs={"prefect server": log})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", *SERVER_ARGS, str(port)],
            env=env,
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
        _cli(srv, "pool", ["-m", "prefect", "work-pool", "create", POOL, "--type", "process"])
        yield srv
    finally:
        _stop(proc)


def _cli(srv: Server, label: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run one command to completion; fail with its output and the server log if it fails."""
    done = subprocess.run(
        [sys.executable, *args],
        env=srv.env,
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


def _wait(srv: Server, what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll `probe` until it returns a value; fail with the logs at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n{srv.report()}")
        time.sleep(0.5)


@pytest.fixture
def run(server: Server, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A clean server (no deployments), a tiny dataset and a warehouse for this test; the
    processes started during the test are stopped at its end."""
    with server.client() as client:
        for d in client.read_deployments():
            client.delete_deployment(d.id)
    server.logs = {k: v for k, v in server.logs.items() if k == "prefect server"}
    procs: list[subprocess.Popen[bytes]] = []
    ctx: dict[str, Any] = {
        "dataset": write_dataset(tmp_path / "tiny.jsonl", 8, critical_every=4),
        "warehouse": tmp_path / "warehouse.duckdb",
        "tmp": tmp_path,
        "procs": procs,
    }
    try:
        yield ctx
    finally:
        for proc in procs:
            _stop(proc)


def _start(server: Server, ctx: dict[str, Any], label: str, args: list[str]) -> Path:
    log = ctx["tmp"] / f"{label}.log"
    env = {**server.env, "EVALKEEPER_WAREHOUSE": str(ctx["warehouse"])}
    with log.open("wb") as out:
        ctx["procs"].append(
            subprocess.Popen(
                [sys.executable, *args],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    server.logs[label] = log
    return log


def _serve(server: Server, ctx: dict[str, Any], *extra: str) -> Path:
    return _start(
        server,
        ctx,
        "evalkeeper serve",
        ["-m", "evalkeeper.cli", "serve", "--dataset", str(ctx["dataset"]), *FAST, *extra],
    )


def _deploy(server: Server) -> None:
    _cli(server, "prefect deploy --all", ["-m", "prefect", "deploy", "--all"])


def _deployment(server: Server, name: str) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    with server.client() as client:
        try:
            return client.read_deployment_by_name(f"{FLOW}/{name}")
        except ObjectNotFound:
            return None


def _shape(d: Any) -> dict[str, Any]:
    """What decides where and how a deployment's runs execute."""
    return {
        "entrypoint": d.entrypoint,
        "pull_steps": d.pull_steps,
        "path": d.path,
        "work_pool_name": d.work_pool_name,
        "work_queue_name": d.work_queue_name,
        "parameters": d.parameters,
    }


def _serve_names() -> list[str]:
    return [f"{name}{SERVE_SUFFIX}" for name in NIGHTLY]


def _wait_served(server: Server) -> dict[str, Any]:
    return {
        name: _wait(server, f"served deployment {name}", lambda n=name: _deployment(server, n), 120)
        for name in _serve_names()
    }


def _run_to_end(server: Server, runs: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
    """Start a flow run of each (deployment id, parameters), all at once; wait for their ends."""
    with server.client() as client:
        ids = [client.create_flow_run_from_deployment(d, parameters=p).id for d, p in runs]

    def final() -> list[Any] | None:
        with server.client() as client:
            frs = [client.read_flow_run(i) for i in ids]
        return frs if all(fr.state is not None and fr.state.is_final() for fr in frs) else None

    return _wait(server, f"flow runs {ids}", final, FLOW_RUN_S)


def _experiments(warehouse: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql("SELECT suite, target_spec FROM experiments ORDER BY suite").fetchall()


def _assert_completed(server: Server, flow_run: Any) -> None:
    assert flow_run.state.is_completed(), (
        f"{flow_run.name}: {flow_run.state.type} {flow_run.state.message}\n{server.report()}"
    )


def _check_both_run(server: Server, ctx: dict[str, Any], served: dict[str, Any]) -> None:
    """A run of the served smoke deployment completes in the serve process, a run of the
    deployed one completes on the work pool's worker; both land in the warehouse."""
    _start(
        server,
        ctx,
        "prefect worker",
        ["-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
    )
    deployed = _deployment(server, "nightly-smoke")
    assert deployed is not None
    served_run, deployed_run = _run_to_end(
        server,
        [
            (served[f"nightly-smoke{SERVE_SUFFIX}"].id, {}),
            # the deployed parameters are the demo's: point this run at the tiny dataset
            (
                deployed.id,
                {"dataset": str(ctx["dataset"]), "target": "fake_targets:instant", "suite": "full"},
            ),
        ],
    )
    _assert_completed(server, served_run)
    _assert_completed(server, deployed_run)
    assert served_run.deployment_id != deployed_run.deployment_id
    assert _experiments(ctx["warehouse"]) == [
        ("full", "fake_targets:instant"),
        ("smoke", "fake_targets:instant"),
    ]


def _assert_deployed_shape(shape: dict[str, Any]) -> None:
    assert shape["entrypoint"] == "flows/nightly.py:nightly"
    assert shape["work_pool_name"] == POOL
    assert shape["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]


def test_serve_after_deploy_keeps_the_deployed_deployments(
    server: Server, run: dict[str, Any]
) -> None:
    _deploy(server)
    before = {name: _shape(_deployment(server, name)) for name in NIGHTLY}
    for shape in before.values():
        _assert_deployed_shape(shape)

    serve_log = _serve(server, run)
    served = _wait_served(server)
    for d in served.values():
        assert d.work_pool_name is None
        assert not d.pull_steps
        assert d.parameters["dataset"] == str(run["dataset"])

    _check_both_run(server, run, served)
    after = {name: _shape(_deployment(server, name)) for name in NIGHTLY}
    assert after == before
    # serve says that the deployed schedules fire too, and how to pause them
    out = serve_log.read_text()
    assert "nightly/nightly-full" in out and "schedule pause" in out


def test_deploy_after_serve_leaves_the_served_deployments(
    server: Server, run: dict[str, Any]
) -> None:
    _serve(server, run)
    served = _wait_served(server)
    before = {name: _shape(d) for name, d in served.items()}

    _deploy(server)
    for name in NIGHTLY:
        deployed = _deployment(server, name)
        assert deployed is not None
        _assert_deployed_shape(_shape(deployed))
    assert {name: _shape(_deployment(server, name)) for name in served} == before

    _check_both_run(server, run, served)


def test_serve_refuses_the_names_of_deployed_deployments(
    server: Server, run: dict[str, Any]
) -> None:
    _deploy(server)
    before = {name: _shape(_deployment(server, name)) for name in NIGHTLY}
    refused = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "serve", "--name-suffix", ""],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "nightly/nightly-full" in refused.stderr
    assert POOL in refused.stderr
    assert "--name-suffix" in refused.stderr
    assert {name: _shape(_deployment(server, name)) for name in NIGHTLY} == before
