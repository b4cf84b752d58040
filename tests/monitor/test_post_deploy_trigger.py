"""A deploy webhook on `evalkeeper listen` becomes a `post-deploy-monitor` flow run on a real
Prefect server: the app emits `evalkeeper.deploy.completed` (its id derived from the
window), the trigger that `prefect deploy` made from prefect.yaml runs the deployment, a
worker runs the flow, and the flow ticks the window in the warehouse.

The server runs its event services (event persister, triggers, actions) but no scheduler;
the webhook is signed by the `standardwebhooks` package's own signer."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from evalkeeper.monitor.rollback import DEPLOY_EVENT, event_id
from evalkeeper.settings import Settings
from tasks.events import prefect_emitter
from tests.monitor.conftest import WEBHOOK_SECRET
from tests.monitor.monitor_traffic import SERVICE, traffic
from tests.prefect_server import (
    EVENT_SERVICES_ENV,
    POOL,
    Server,
    cli,
    free_port,
    prefect_server,
    start,
    stop,
    wait,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEPLOYMENT = "post-deploy-monitor/post-deploy-monitor"
STEP_S = 60.0  # one step: an event through the services, a flow run in a fresh process


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Prefect server with its event services, the `post-deploy-monitor` deployment from
    prefect.yaml, a worker on its pool, and `evalkeeper listen` pointed at the server."""
    deployed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    traces = tmp_path / "traces" / "app.jsonl"
    traffic(
        traces, version="v1", start=deployed_at - timedelta(days=1), hours=24, per_hour=20,
        slow_rate=0.05, seed=1,
    )  # fmt: skip
    traffic(
        traces, version="v2", start=deployed_at, hours=0.5, per_hour=100, slow_rate=0.05, seed=2
    )
    env = {
        "EVALKEEPER_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "EVALKEEPER_TRACES": f"jsonl:{traces}",
        "EVALKEEPER_MONITORS_DIR": str(tmp_path / "monitors"),
        "EVALKEEPER_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "EVALKEEPER_REDACTION_KEY": "a-fixed-redaction-key-for-the-tests",
        "EVALKEEPER_LOCK_WAIT_S": "30",
    }
    procs: list[subprocess.Popen[bytes]] = []
    with prefect_server(tmp_path / "prefect", services=EVENT_SERVICES_ENV, env=env) as srv:
        try:
            cli(srv, "prefect deploy", ["-m", "prefect", "deploy", "--name", "post-deploy-monitor"])
            start(
                srv, procs, tmp_path / "worker.log", "prefect worker",
                ["-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
            )  # fmt: skip
            port = free_port()
            start(
                srv, procs, tmp_path / "listen.log", "evalkeeper listen",
                ["-m", "evalkeeper.cli", "listen", "--port", str(port)],
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            wait(srv, "evalkeeper listen /health", lambda: _healthy(base), STEP_S)
            yield {"server": srv, "base": base, "deployed_at": deployed_at, "env": env}
        finally:
            for proc in procs:
                stop(proc)


def _healthy(base: str) -> bool | None:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200 or None
    except httpx.HTTPError:
        return None


def _post_deploy(base: str, deploy_id: str, deployed_at: datetime, msg_id: str) -> httpx.Response:
    raw = json.dumps(
        {
            "service": SERVICE,
            "environment": "prod",
            "version": "v2",
            "previous_version": "v1",
            "deploy_id": deploy_id,
            "time": deployed_at.isoformat().replace("+00:00", "Z"),
        }
    )
    when = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(WEBHOOK_SECRET).sign(msg_id, when, raw),
        "content-type": "application/json",
    }
    return httpx.post(f"{base}/hooks/deploy", content=raw, headers=headers, timeout=30)


def _events(srv: Server) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    since = datetime.now(UTC) - timedelta(hours=1)
    with srv.client() as client:
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(since=since),
                event=EventNameFilter(name=[DEPLOY_EVENT]),
            ),
            limit=50,
        )
    return list(page.events)


def _runs(srv: Server) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with srv.client() as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
        )


def _finished(srv: Server, deploy_id: str) -> Any | None:
    runs = [r for r in _runs(srv) if r.parameters.get("deploy_id") == deploy_id]
    return runs[0] if runs and runs[0].state is not None and runs[0].state.is_final() else None


def _window(warehouse: str, window_id: str) -> tuple[Any, ...] | None:
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute(
            "SELECT deploy_id, service, version, previous_version, state, last_tick_at "
            "FROM monitoring_windows WHERE window_id = ?",
            [window_id],
        ).fetchone()


def test_a_deploy_webhook_triggers_one_post_deploy_monitor_run(stack: dict[str, Any]) -> None:
    srv: Server = stack["server"]
    with srv.client() as client:
        (automation,) = client.read_automations_by_name("post-deploy-monitor__automation_1")
    assert automation.enabled

    first = _post_deploy(stack["base"], "deploy-1", stack["deployed_at"], "msg-1")
    assert first.status_code == 202, first.text
    window_id = first.json()["window_id"]
    assert first.json()["created"] is True

    # the event reaches the server under the id derived from the window
    (event,) = wait(srv, f"event {DEPLOY_EVENT}", lambda: _events(srv) or None, STEP_S)
    assert event.id == event_id("deploy", window_id)
    assert event.resource.id == f"evalkeeper.deploy.{window_id}"
    assert event.payload["deploy_id"] == "deploy-1" and event.payload["window_id"] == window_id

    # the trigger runs the deployment with the event's payload; the worker completes it
    run = wait(srv, "the post-deploy-monitor run of deploy-1", lambda: _finished(srv, "deploy-1"),
               STEP_S)  # fmt: skip
    assert run.state.is_completed(), f"{run.state.type} {run.state.message}\n{srv.report()}"
    assert run.parameters["service"] == SERVICE and run.parameters["version"] == "v2"
    assert run.parameters["previous_version"] == "v1"

    # the window is in the warehouse, ticked by the flow run
    row = _window(stack["env"]["EVALKEEPER_WAREHOUSE"], window_id)
    assert row is not None, srv.report()
    assert row[:4] == ("deploy-1", SERVICE, "v2", "v1")
    assert row[5] is not None, f"window {window_id} was never ticked\n{srv.report()}"

    # the same webhook again is the same window, and no new event; the same event sent
    # again (its id is the window's) is one event to Prefect and starts no run
    again = _post_deploy(stack["base"], "deploy-1", stack["deployed_at"], "msg-1")
    assert again.status_code == 202 and again.json()["window_id"] == window_id
    assert again.json()["created"] is False
    emit = prefect_emitter(Settings(prefect_api_url=srv.api_url))
    assert emit is not None
    asyncio.run(
        emit(DEPLOY_EVENT, event.resource.id, dict(event.payload), event_id("deploy", window_id))
    )
    # a second deploy is the barrier: once its run is done, the duplicates were handled
    second = _post_deploy(stack["base"], "deploy-2", stack["deployed_at"], "msg-2")
    assert second.status_code == 202 and second.json()["created"] is True
    run2 = wait(srv, "the post-deploy-monitor run of deploy-2", lambda: _finished(srv, "deploy-2"),
                STEP_S)  # fmt: skip
    assert run2.state.is_completed(), f"{run2.state.type} {run2.state.message}\n{srv.report()}"
    ids = sorted(str(e.id) for e in _events(srv))
    assert ids == sorted(
        str(event_id("deploy", w)) for w in (window_id, second.json()["window_id"])
    )
    assert sorted(r.parameters["deploy_id"] for r in _runs(srv)) == ["deploy-1", "deploy-2"]
