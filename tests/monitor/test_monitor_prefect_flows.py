"""The monitor flows on Prefect's test harness, and their deployments in prefect.yaml."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from evalkeeper.monitor.windows import window_status
from evalkeeper.settings import Settings
from tasks.suite import artifact_key
from tests.conftest import ROOT
from tests.helpers import run_flow
from tests.monitor.conftest import DEPLOY, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic
from tests.report.artifacts import linked_file


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, mon_settings: Settings) -> Settings:
    """The flows build Settings from the environment."""
    assert mon_settings.monitor.rollback_secret is not None
    values = {
        "EVALKEEPER_WAREHOUSE": str(mon_settings.warehouse),
        "EVALKEEPER_TRACES": mon_settings.monitor.traces or "",
        "EVALKEEPER_MONITORS_DIR": str(mon_settings.monitor.monitors_dir),
        "EVALKEEPER_REDACTION_KEY": "a-fixed-redaction-key-for-the-tests",
        "EVALKEEPER_ROLLBACK_URL": mon_settings.monitor.rollback_url or "",
        "EVALKEEPER_ROLLBACK_SECRET": mon_settings.monitor.rollback_secret.get_secret_value(),
        "EVALKEEPER_ROLLBACK_BACKOFF_S": "0",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return mon_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVALKEEPER_ROLLBACK_SECRET", ""),
        ("EVALKEEPER_ROLLBACK_SECRET", "short-key-12"),
        ("EVALKEEPER_REDACTION_KEY", ""),
        ("EVALKEEPER_REDACTION_KEY", "short-key-12"),
    ],
)
def test_the_monitor_flows_refuse_a_secret_that_cannot_be_a_key(
    prefect_harness: None,
    env: Settings,
    traces_file: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    """Issue 17, item 2: a run that may sign a rollback or redact traces with a key that
    cannot be one fails at once, naming the variable (never the value), and does nothing."""
    import asyncio

    from evalkeeper.monitor.signing import WeakSecret
    from flows.monitor import monitor_tick, post_deploy_monitor

    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    monkeypatch.setenv(variable, value)
    now = DEPLOY + timedelta(hours=3)
    opened = asyncio.run(
        post_deploy_monitor(  # type: ignore[call-overload]
            service=SERVICE, version="v2", deploy_id="d-weak", time=DEPLOY, now=now,
            return_state=True,
        )
    )  # fmt: skip
    ticked = asyncio.run(monitor_tick(now=now, return_state=True))  # type: ignore[call-overload]
    for state in (opened, ticked):
        assert state.is_failed(), state
        with pytest.raises(WeakSecret) as raised:
            state.result()
        assert variable in str(raised.value) and "token_urlsafe" in str(raised.value)
        if value:
            assert value not in str(raised.value) and value not in (state.message or "")
    assert window_status(env) == [] and receiver.calls == []  # no window, nothing sent


def test_post_deploy_monitor_then_monitor_tick_roll_back_once(
    prefect_harness: None, env: Settings, traces_file: Path, receiver: Receiver
) -> None:
    from flows.monitor import monitor_tick, post_deploy_monitor

    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    params = dict(
        service=SERVICE,
        version="v2",
        deploy_id="d-flow",
        time=DEPLOY,
        previous_version="None",
        environment="",
    )  # fmt: skip  (as a trigger renders)
    first = run_flow(post_deploy_monitor, now=DEPLOY + timedelta(minutes=30), **params)
    assert first["created"] is True and first["windows"][0]["window_id"] == first["window_id"]
    again = run_flow(post_deploy_monitor, now=DEPLOY + timedelta(minutes=30), **params)
    assert again["created"] is False and again["window_id"] == first["window_id"]
    for hours in (3, 3, 4):
        run_flow(monitor_tick, now=DEPLOY + timedelta(hours=hours))
    assert len(receiver.calls) == 1
    (row,) = window_status(env)
    assert row["decision"] == "rollback" and row["rollback_delivered"] is True
    assert row["previous_version"] is None  # "None" from a trigger is no version


def test_prefect_yaml_schedules_the_tick_and_triggers_the_monitor_on_deploys() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert deployments["monitor-tick"]["schedules"] == [{"cron": "*/15 * * * *", "timezone": "UTC"}]
    (trigger,) = deployments["post-deploy-monitor"]["triggers"]
    assert trigger["expect"] == ["evalkeeper.deploy.completed"]
    assert set(trigger["parameters"]) >= {"service", "version", "deploy_id", "time"}


def test_a_tick_that_fails_on_the_users_input_is_not_retried(
    prefect_harness: None, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick task retries twice, 30 s apart, on a crash; a key that cannot be one is the
    user's input and fails the same way every time: one attempt, then the run fails."""
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from evalkeeper.monitor.signing import WeakSecret
    from tasks.monitor import run_tick

    monkeypatch.setenv("EVALKEEPER_ROLLBACK_SECRET", "short-key-12")

    @flow
    async def tick_task_alone() -> None:
        await run_tick(Settings())

    state = asyncio.run(tick_task_alone(return_state=True))  # type: ignore[call-overload]
    assert state.is_failed()
    with pytest.raises(WeakSecret):
        state.result()

    async def run_counts() -> list[int]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        return [r.run_count for r in runs]

    assert asyncio.run(run_counts()) == [1]  # one attempt (three before)


def test_each_tick_writes_the_windows_report_beside_the_warehouse_and_links_it(
    prefect_harness: None, env: Settings, traces_file: Path, receiver: Receiver
) -> None:
    from evalkeeper.report.html import default_report_path
    from flows.monitor import monitor_tick, post_deploy_monitor

    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    params = dict(service=SERVICE, version="v2", deploy_id="d-report", time=DEPLOY)
    first = run_flow(post_deploy_monitor, now=DEPLOY + timedelta(minutes=20), **params)
    window_id = first["window_id"]
    path = default_report_path(env, "window", window_id)
    assert first["reports"] == {window_id: str(path)} and first["report_failures"] == 0
    assert path.parent == Path(env.warehouse).parent / "reports"
    assert linked_file(artifact_key(f"monitor-report-{window_id}")) == path.resolve()
    assert 'data-verdict="continue"' in path.read_text()

    decided = run_flow(monitor_tick, now=DEPLOY + timedelta(hours=3))
    assert decided["windows"][0]["decision"] == "rollback" and decided["report_failures"] == 0
    assert linked_file(artifact_key(f"monitor-report-{window_id}")) == path.resolve()
    page = path.read_text()
    assert 'data-verdict="rollback"' in page and 'data-delivery="delivered"' in page


def test_a_report_that_cannot_be_written_is_counted_and_changes_no_decision(
    prefect_harness: None, env: Settings, traces_file: Path, receiver: Receiver
) -> None:
    from flows.monitor import post_deploy_monitor

    (Path(env.warehouse).parent / "reports").write_text("a file where the folder would go")
    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    result = run_flow(
        post_deploy_monitor, service=SERVICE, version="v2", deploy_id="d-noreport", time=DEPLOY,
        now=DEPLOY + timedelta(hours=3),
    )  # fmt: skip
    assert result["report_failures"] == 1 and result["reports"] == {}
    assert result["windows"][0]["decision"] == "rollback" and len(receiver.delivered) == 1
    (row,) = window_status(env)
    assert row["rollback_delivered"] is True
