"""One rollback per window across processes (issue 17, item 1), and a rollback decided with
no channel configured (item 16).

Seen before: two `evalkeeper monitor tick` processes started together sent two rollback
POSTs per window (4 runs of 4), and a decision taken with no channel configured failed
every later tick, even once a channel was configured (the channels were frozen in the
decision). Here real processes tick one warehouse file together against a receiver on
127.0.0.1 that fails its first requests, and each window gets exactly one 2xx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.monitor.rollback import NO_CHANNEL, deliver_pending
from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window, window_status
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.conftest import ROOT
from tests.helpers import run_flow
from tests.monitor.conftest import DEPLOY, ROLLBACK_SECRET, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic

WINDOWS = ("d-one", "d-two", "d-three")


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALKEEPER_", "PREFECT_"))}
    env.update(
        {
            "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
            "EVALKEEPER_TRACES": settings.monitor.traces or "",
            "EVALKEEPER_MONITORS_DIR": str(settings.monitor.monitors_dir),
            "EVALKEEPER_REDACTION_KEY": "a-fixed-redaction-key-for-the-tests",
            "EVALKEEPER_ROLLBACK_URL": settings.monitor.rollback_url or "",
            "EVALKEEPER_ROLLBACK_SECRET": ROLLBACK_SECRET,
            "EVALKEEPER_ROLLBACK_BACKOFF_S": "0",
            "EVALKEEPER_ROLLBACK_ATTEMPTS": "1",
            "EVALKEEPER_LOCK_WAIT_S": "60",
            **extra,
        }
    )
    return env


def _ticks(settings: Settings, n: int, now: datetime) -> list[subprocess.CompletedProcess[str]]:
    """`n` `evalkeeper monitor tick` processes, started together on one warehouse file."""
    cmd = [sys.executable, "-m", "evalkeeper.cli", "monitor", "tick", "--now", _iso(now)]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        out.append(subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr))
    return out


def _open(settings: Settings, deploy_id: str) -> str:
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id=deploy_id, time=DEPLOY
    )
    return open_window(settings, event, "cli").window.window_id


def _ok_per_window(receiver: Receiver) -> Counter[str]:
    return Counter(c["headers"]["webhook-id"] for c in receiver.delivered)


def test_concurrent_tick_processes_deliver_each_rollback_exactly_once(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    ids = [_open(mon_settings, d) for d in WINDOWS]
    receiver.fail_next = 2  # the first two POSTs get 503: their ticks fail, later ones retry
    rounds = []
    for hours in (3, 4, 5):  # each round: 4 processes at once, deciding and delivering
        rounds.append(_ticks(mon_settings, 4, DEPLOY + timedelta(hours=hours)))
        for done in rounds[-1]:
            assert done.returncode in (0, 1), done.stderr  # 1: this process's POST got 503
    assert _ok_per_window(receiver) == dict.fromkeys(ids, 1), receiver.calls
    assert [c["status"] for c in receiver.calls].count(503) == 2
    assert all(r["rollback_delivered"] for r in window_status(mon_settings))
    wh = Warehouse.from_settings(mon_settings)
    assert wh.rows("SELECT count(*) FROM monitoring_claims") == [(0,)]  # all released
    ok = wh.rows("SELECT window_id, count(*) FROM monitoring_deliveries WHERE ok GROUP BY ALL")
    assert dict(ok) == dict.fromkeys(ids, 1)


_CRASHING_CLAIMER = """
import os
from evalkeeper.monitor.rollback import claim
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
settings = Settings()
claims, _ = claim(settings, Warehouse.from_settings(settings))
assert [c.window_id for c in claims] == [{window!r}], claims
os._exit(9)  # dies holding the claim, before any delivery
"""


def test_a_crashed_claimers_delivery_is_taken_over_once_its_claim_expires(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    window_id = _open(mon_settings, "d-crash")
    summary = asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=3), deliver=False))
    assert summary.windows[0].rollback_decided
    claim_s = {"EVALKEEPER_ROLLBACK_CLAIM_S": "4", "EVALKEEPER_ROLLBACK_TIMEOUT_S": "1",
               "EVALKEEPER_LOCK_WAIT_S": "1"}  # fmt: skip
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_CLAIMER.format(window=window_id)],
        cwd=ROOT, env=_env(mon_settings, **claim_s), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == 9, crashed.stderr
    settings = mon_settings.model_copy(
        update={
            "lock_wait_s": 1.0,
            "monitor": mon_settings.monitor.model_copy(
                update={"rollback_claim_s": 4.0, "rollback_timeout_s": 1.0}
            ),
        }
    )
    (held,) = asyncio.run(deliver_pending(settings))
    assert held.status == "claimed" and "another tick" in (held.problem or "")
    assert receiver.calls == []  # the claim is live: nobody else delivers
    (row,) = Warehouse.from_settings(settings).rows("SELECT expires_at FROM monitoring_claims")
    while datetime.now(row[0].tzinfo) <= row[0]:
        time.sleep(0.1)
    (taken,) = asyncio.run(deliver_pending(settings))
    assert taken.status == "delivered" and taken.complete
    assert asyncio.run(deliver_pending(settings)) == []  # delivered: nothing pending
    assert _ok_per_window(receiver) == {window_id: 1} and len(receiver.calls) == 1


def _cli_tick(settings: Settings, now: datetime, **extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "evalkeeper.cli", "monitor", "tick", "--now", _iso(now)]
    return subprocess.run(
        cmd, cwd=ROOT, env=_env(settings, **extra), capture_output=True, text=True, timeout=240
    )


def _status(settings: Settings) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "evalkeeper.cli", "monitor", "status", "--format", "json"]
    done = subprocess.run(
        cmd, cwd=ROOT, env=_env(settings), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    return dict(row)


def test_a_rollback_with_no_channel_is_said_once_never_fails_a_tick_and_is_delivered_later(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    window_id = _open(mon_settings, "d-nochannel")
    first = _cli_tick(mon_settings, DEPLOY + timedelta(hours=3), EVALKEEPER_ROLLBACK_URL="")
    assert first.returncode == 0, first.stderr  # recorded and said, not a failed tick
    assert "no rollback channel is configured" in first.stderr
    row = _status(mon_settings)
    assert row["decision"] == "rollback" and row["rollback_delivered"] is False
    assert row["last_delivery_error"] == NO_CHANNEL
    again = _cli_tick(mon_settings, DEPLOY + timedelta(hours=4), EVALKEEPER_ROLLBACK_URL="")
    assert again.returncode == 0, again.stderr
    assert "no rollback channel" not in again.stderr  # said once
    assert receiver.calls == []
    later = _cli_tick(mon_settings, DEPLOY + timedelta(hours=5))  # EVALKEEPER_ROLLBACK_URL set
    assert later.returncode == 0, later.stderr
    assert f"rollback of {window_id} delivered on http" in later.stdout
    assert _status(mon_settings)["rollback_delivered"] is True
    _cli_tick(mon_settings, DEPLOY + timedelta(hours=6))
    assert _ok_per_window(receiver) == {window_id: 1} and len(receiver.calls) == 1


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, mon_settings: Settings) -> Settings:
    """The flows build Settings from the environment; no channel is configured."""
    for key, value in _env(mon_settings, EVALKEEPER_ROLLBACK_URL="").items():
        if key.startswith("EVALKEEPER_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return mon_settings


def test_the_monitor_tick_flow_completes_with_a_rollback_it_has_no_channel_for(
    prefect_harness: None, flow_env: Settings, traces_file: Path, receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from flows.monitor import monitor_tick

    traffic(traces_file, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    window_id = _open(flow_env, "d-flow-nochannel")
    for hours in (3, 4):  # before: RollbackUndelivered, every run
        done = run_flow(monitor_tick, now=DEPLOY + timedelta(hours=hours))
        (d,) = done["deliveries"]
        assert d["status"] == "no_channel"
    assert receiver.calls == []
    monkeypatch.setenv("EVALKEEPER_ROLLBACK_URL", flow_env.monitor.rollback_url or "")
    done = run_flow(monitor_tick, now=DEPLOY + timedelta(hours=5))
    assert done["deliveries"][0]["status"] == "delivered"
    assert _ok_per_window(receiver) == {window_id: 1}
