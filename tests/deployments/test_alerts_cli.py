"""`evalkeeper alerts` without a server: the mistakes it refuses (exit 2, one line with the
fix), and the message templates rendered by Prefect's own template engine (the one its
automations use) from events shaped like the ones evalkeeper sends. The automations on a
real server: tests/deployments/test_alerts.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from deployments.alerts import ALERTS, AlertSetupError, mask_url, parse_keys
from tests.prefect_server import ROOT, free_port

SECRET = "tokentokentoken"


def evalkeeper(
    tmp_path: Path, *args: str, api: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVALKEEPER_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile with an API URL
    if api is not None:
        env["PREFECT_API_URL"] = api
    return subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "alerts", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_without_a_prefect_api_it_says_to_start_one(tmp_path: Path) -> None:
    done = evalkeeper(tmp_path, "setup", "--webhook", f"https://example.invalid/{SECRET}")
    assert done.returncode == 2, done.stderr
    assert "PREFECT_API_URL is not set" in done.stderr and "prefect server start" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_an_api_that_does_not_answer_is_named_with_the_fix(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    done = evalkeeper(tmp_path, "list", api=api)
    assert done.returncode == 2, done.stderr
    assert f"Prefect API at {api}: cannot connect" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["setup"], "give --slack-webhook URL, --webhook URL or both"),
        (["setup", "--webhook", "https://a", "--events", "regresion"], "unknown event regresion"),
        (["remove", "--channel", "email"], "--channel 'email': use slack, webhook or all"),
    ],
)
def test_mistakes_are_refused_before_any_call(args: list[str], says: str) -> None:
    from typer.testing import CliRunner

    from evalkeeper.cli import app

    done = CliRunner().invoke(app, ["alerts", *args])
    assert done.exit_code == 2 and says in done.output, done.output


def test_events_and_urls() -> None:
    assert parse_keys(None) == list(ALERTS) == parse_keys("all")
    assert parse_keys("judge-retired, regression") == ["regression", "judge-retired"]
    with pytest.raises(AlertSetupError, match="use a comma-separated list of regression"):
        parse_keys(",")
    url = SecretStr(f"https://user:pw@hooks.slack.com/services/T/B/{SECRET}")
    assert mask_url(url) == "https://hooks.slack.com/…"
    assert mask_url("not a url") == "…"


def _render(template: str, event: dict[str, Any]) -> str:
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.server.utilities.user_templates import render_user_template_sync

    received = ReceivedEvent.model_validate({"id": uuid.uuid4(), **event})
    return render_user_template_sync(template, {"event": received})


def test_a_rollback_without_environment_or_report_renders_without_gaps() -> None:
    alert = ALERTS["rollback-undelivered"]
    event = {
        "event": alert.event,
        "occurred": "2026-12-07T12:00:00Z",
        "resource": {"prefect.resource.id": "evalkeeper.window.win-1"},
        "payload": {
            "window_id": "win-1", "deploy_id": "d-1", "service": "svc", "version": "v2",
            "environment": None, "missing": ["http", "command"], "delivered": [],
            "reasons": ["latency_ok: 0.60 > 0.09"], "summary": "S",
        },
    }  # fmt: skip
    assert _render(alert.subject, event) == "evalkeeper: rollback of svc v2 NOT DELIVERED"
    body = _render(alert.body, event)
    assert body.splitlines()[:3] == [
        "S",
        "window: win-1, deploy: d-1",
        "not delivered on: http, command; delivered on: nothing",
    ]
    assert "- latency_ok: 0.60 > 0.09\n" in body and "report:" not in body
    assert body.splitlines()[-1].startswith(f"event: {alert.event} ")


def test_a_verdict_message_lists_every_reason_and_a_missing_baseline_as_none() -> None:
    alert = ALERTS["inconclusive"]
    event = {
        "event": alert.event,
        "occurred": "2026-12-07T12:00:00Z",
        "resource": {"prefect.resource.id": "evalkeeper.experiment.e-1"},
        "payload": {
            "flow": "nightly", "verdict": "inconclusive", "experiment_id": "e-1",
            "baseline_id": None, "suite": "full", "dataset": "d", "summary": "S",
            "reasons": ["r <1>", "r & 2"], "report_path": "/w/reports/experiment-e-1.html",
        },
    }  # fmt: skip
    body = _render(alert.body, event)
    assert "experiment: e-1, baseline: none\n" in body
    assert "reasons:\n- r <1>\n- r & 2\nreport: /w/reports/experiment-e-1.html\n" in body
