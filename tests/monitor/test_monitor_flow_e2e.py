"""End to end on 127.0.0.1: a signed deploy webhook opens a window, traffic is appended to
the trace file, ticks run as of injected times, and a local receiver gets the rollback
call exactly once, however often the ticks run and when a tick dies between the decision
and its delivery. Unchanged traffic never rolls back; a judge outage is inconclusive."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.http.app import create_app
from evalkeeper.monitor.tick import WindowTick, tick
from evalkeeper.monitor.windows import DeployEvent, open_window, window_id_for
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.conftest import DEPLOY, ROLLBACK_SECRET, WEBHOOK_SECRET, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic
from tests.otlp_helpers import Collected, serve

runner = CliRunner()


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def cli(settings: Settings, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--warehouse", str(settings.warehouse)], env=_env(settings))
    return result


def _env(settings: Settings) -> dict[str, str]:
    return {
        "EVALKEEPER_TRACES": settings.monitor.traces or "",
        "EVALKEEPER_MONITORS_DIR": str(settings.monitor.monitors_dir),
        "EVALKEEPER_REDACTION_KEY": "a-fixed-redaction-key-for-the-tests",
        "EVALKEEPER_ROLLBACK_URL": settings.monitor.rollback_url or "",
        "EVALKEEPER_ROLLBACK_SECRET": ROLLBACK_SECRET,
        "EVALKEEPER_ROLLBACK_BACKOFF_S": "0",
        "EVALKEEPER_ROLLBACK_ATTEMPTS": str(settings.monitor.rollback_attempts),
        "PREFECT_API_URL": "",
    }


def status(settings: Settings) -> list[dict[str, Any]]:
    result = cli(settings, "monitor", "status", "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def signed_deploy(body: dict[str, Any], msg_id: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    now = datetime.now().astimezone()
    signature = Webhook(WEBHOOK_SECRET).sign(msg_id, now, raw.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return raw, headers


def deploy_body(deploy_id: str = "deploy-42") -> dict[str, Any]:
    return {
        "service": SERVICE,
        "environment": "prod",
        "version": "v2",
        "previous_version": "v1",
        "deploy_id": deploy_id,
        "time": _iso(DEPLOY),
    }


def verify_rollback_call(call: dict[str, Any], window_id: str) -> dict[str, Any]:
    """The call is signed per Standard Webhooks (checked by the package) and keyed by the
    window id."""
    payload = Webhook(ROLLBACK_SECRET).verify(call["body"], call["headers"])
    assert call["headers"]["webhook-id"] == window_id
    assert call["headers"]["idempotency-key"] == window_id
    assert payload["window_id"] == window_id
    return dict(payload)


def wait_for_ticks(settings: Settings, window_id: str, n: int) -> None:
    deadline = time.monotonic() + 60
    wh = Warehouse.from_settings(settings)
    while True:
        rows = wh.rows("SELECT count(*) FROM monitoring_ticks WHERE window_id = ?", [window_id])
        if rows[0][0] >= n:
            return
        assert time.monotonic() < deadline, "the first tick did not run"
        time.sleep(0.05)


def rising(path: Path, hours: float = 3) -> None:
    """v2 traffic whose flag rate rises from 5% to 60%."""
    traffic(path, version="v2", start=DEPLOY, hours=hours, per_hour=100, slow_rate=0.6, seed=2)


def test_a_signed_webhook_opens_a_window_and_a_rise_rolls_back_exactly_once(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    http_app = create_app(
        mon_settings, trace_sink=Collected(), emitter=None, tick_clock=lambda: DEPLOY
    )
    with serve(http_app) as base:
        raw, headers = signed_deploy(deploy_body(), "msg-1")
        answer = httpx.post(f"{base}/hooks/deploy", content=raw, headers=headers)
        assert answer.status_code == 202, answer.text
        window_id = answer.json()["window_id"]
        assert answer.json()["created"] is True
        assert window_id == window_id_for(SERVICE, "deploy-42")
        wait_for_ticks(mon_settings, window_id, 1)  # the first tick, run by the app itself
    (first,) = status(mon_settings)
    assert first["state"] == "open" and first["decision"] in ("continue", "inconclusive")
    assert first["rollback_delivered"] is False

    rising(traces_file)
    for hours in (1, 1, 2, 3, 3):  # repeated ticks, and ticks past the decision
        result = cli(
            mon_settings, "monitor", "tick", "--now", _iso(DEPLOY + timedelta(hours=hours))
        )
        assert result.exit_code == 0, result.output
    assert len(receiver.calls) == 1
    payload = verify_rollback_call(receiver.calls[0], window_id)
    assert payload["service"] == SERVICE and payload["rollback_to"] == "v1"
    assert payload["evidence"] and payload["evidence"][0]["evaluator"] == "latency_ok"
    (done,) = status(mon_settings)
    assert done["state"] == "closed" and done["decision"] == "rollback"
    assert done["rollback_delivered"] is True and done["rollback_evaluator"] == "latency_ok"
    # every trace was counted once, however often the ticks ran
    wh = Warehouse.from_settings(mon_settings)
    dupes = wh.rows(
        "SELECT count(*) FROM (SELECT trace_id, evaluator FROM monitoring_scores "
        "GROUP BY ALL HAVING count(*) > 1)"
    )
    assert dupes == [(0,)]
    last = wh.query(
        "SELECT * FROM monitor_ticks WHERE evaluator = 'latency_ok' ORDER BY tick_at DESC LIMIT 1"
    ).row(0, named=True)
    assert (
        last["window_traces"]
        == wh.rows(
            "SELECT count(*) FROM monitoring_scores WHERE phase = 'window' AND evaluator = 'latency_ok'"
        )[0][0]
    )
    assert last["decision"] == "rollback" and last["window_decision"] == "rollback"


class Crash(RuntimeError):
    pass


def _crash(done: WindowTick) -> None:
    if done.rollback_decided:
        raise Crash("killed between the decision and its delivery")


def test_a_tick_killed_between_decision_and_delivery_delivers_once_on_the_next(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    rising(traces_file)
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id="d-crash", time=DEPLOY
    )
    window_id = open_window(mon_settings, event, "cli").window.window_id
    with pytest.raises(Crash):
        asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=3), after_decision=_crash))
    assert receiver.calls == []  # decided and stored, not delivered
    (row,) = status(mon_settings)
    assert row["decision"] == "rollback" and row["rollback_delivered"] is False
    for _ in range(3):
        asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=4)))
    assert len(receiver.calls) == 1
    verify_rollback_call(receiver.calls[0], window_id)
    assert status(mon_settings)[0]["rollback_delivered"] is True


def test_a_failed_delivery_is_retried_by_the_next_tick_and_reported_until_then(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    rising(traces_file)
    receiver.fail_next = 3  # two attempts per tick: the first tick fails, the second delivers
    start = cli(
        mon_settings, "monitor", "start", "--service", SERVICE, "--version", "v2",
        "--previous-version", "v1", "--at", _iso(DEPLOY), "--no-tick",
    )  # fmt: skip
    assert start.exit_code == 0, start.output
    first = cli(mon_settings, "monitor", "tick", "--now", _iso(DEPLOY + timedelta(hours=3)))
    assert first.exit_code == 1, first.output
    assert "NOT DELIVERED" in first.output or "not delivered" in first.output
    (row,) = status(mon_settings)
    assert row["decision"] == "rollback" and row["rollback_delivered"] is False
    assert "503" in row["last_delivery_error"]
    second = cli(mon_settings, "monitor", "tick", "--now", _iso(DEPLOY + timedelta(hours=4)))
    assert second.exit_code == 0, second.output
    assert [c["status"] for c in receiver.calls] == [503, 503, 503, 200]
    assert {c["headers"]["webhook-id"] for c in receiver.calls} == {row["window_id"]}
    assert status(mon_settings)[0]["rollback_delivered"] is True


def test_unchanged_traffic_never_rolls_back_and_ends_stable(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    traffic(traces_file, version="v2", start=DEPLOY, hours=24, per_hour=100, slow_rate=0.05, seed=3)
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id="d-calm", time=DEPLOY
    )
    open_window(mon_settings, event, "cli")
    for hours in range(0, 25, 3):
        asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=hours)))
    asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=30)))  # past the end
    assert receiver.calls == []
    (row,) = status(mon_settings)
    assert row["state"] == "closed" and row["decision"] == "stable"
    assert row["rollback_decided"] is False and row["window_traces"] == 2400


def test_too_small_a_baseline_is_inconclusive_and_never_rolls_back(
    tmp_path: Path, mon_settings: Settings, receiver: Receiver
) -> None:
    small = tmp_path / "small.jsonl"
    traffic(small, version="v1", start=DEPLOY - timedelta(hours=2), hours=2, per_hour=20,
            slow_rate=0.05, seed=4)  # fmt: skip
    traffic(small, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=5)
    settings = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"traces": f"jsonl:{small}"})}
    )
    event = DeployEvent(service=SERVICE, version="v2", deploy_id="d-small", time=DEPLOY)
    open_window(settings, event, "cli")
    summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=3)))
    (w,) = summary.windows
    assert w.decision == "inconclusive" and w.evaluators[0].baseline_n == 40
    assert any("inconclusive" in p for p in summary.problems)
    assert receiver.calls == []
