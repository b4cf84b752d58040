"""`evalkeeper serve` and `prefect deploy --all` side by side on one real Prefect server.

One `prefect server start` (127.0.0.1, a free port, its database in tmp) serves the whole
module; each test starts from no deployments. The flows run a tiny dataset against
`fake_targets:instant`, so a flow run costs a few seconds, mostly Python start-up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from deployments.schedules import NIGHTLY, SERVE_SUFFIX
from tests.helpers import write_dataset
from tests.prefect_server import POOL, ROOT, Server, cli, prefect_server, start, stop, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FLOW = "nightly"
FLOW_RUN_S = 240.0  # a flow run in a fresh process: imports, engine, tiny suite
FAST = ("--target", "fake_targets:instant")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"EVALKEEPER_GIT_BRANCH": "main", "EVALKEEPER_GIT_COMMIT": "0123456789abcdef"}
    with prefect_server(tmp_path_factory.mktemp("prefect"), env=env) as srv:
        yield srv


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
            stop(proc)


def _start(server: Server, ctx: dict[str, Any], label: str, args: list[str]) -> Path:
    env = {"EVALKEEPER_WAREHOUSE": str(ctx["warehouse"])}
    return start(server, ctx["procs"], ctx["tmp"] / f"{label}.log", label, args, env)


def _serve(server: Server, ctx: dict[str, Any], *extra: str) -> Path:
    return _start(
        server,
        ctx,
        "evalkeeper serve",
        ["-m", "evalkeeper.cli", "serve", "--dataset", str(ctx["dataset"]), *FAST, *extra],
    )


def _deploy(server: Server) -> None:
    cli(server, "prefect deploy --all", ["-m", "prefect", "deploy", "--all"])


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
        name: wait(server, f"served deployment {name}", lambda n=name: _deployment(server, n), 120)
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

    return wait(server, f"flow runs {ids}", final, FLOW_RUN_S)


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
