"""Alerts end to end on a real `prefect server start` (its event services on): `evalkeeper
alerts setup` makes the blocks and automations, then each event happens for real (a gate
run's regression and inconclusive verdicts, a calibration flow retiring a judge, a monitor
tick deciding a rollback it cannot deliver over HTTP) and Prefect's own automations send
one message per event to a generic webhook and to Slack, both received on 127.0.0.1
(`tests/deployments/receivers.py`: Slack through an HTTPS stand-in for hooks.slack.com).

One server and one set of receivers for the module; every test waits for its messages,
and the last one checks that each event made exactly one message on each channel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.report.html import default_report_path
from evalkeeper.settings import Settings
from tests.deployments.receivers import Inbox, Message, http_receiver, slack_stand_in
from tests.prefect_server import EVENT_SERVICES_ENV, ROOT, Server, prefect_server, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SLACK_URL = "https://hooks.slack.com/services/T0ALERTS/B0ALERTS/slacksecrettoken0001"
WEBHOOK_TOKEN = "hooksecrettoken0002"
STEP_S = 120.0  # a flow run in a fresh process, then an event through the services
CHANNELS = ("slack", "hook")
AUTOMATIONS = sorted(
    f"evalkeeper-alert-{key}-{channel}"
    for key in (
        "regression", "inconclusive", "rollback-decided", "rollback-undelivered", "judge-retired"
    )
    for channel in ("slack", "webhook")
)  # fmt: skip


@dataclass
class Stack:
    srv: Server
    inbox: Inbox
    base: str
    root: Path
    setups: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    """One needle per event made: its message's subject (each channel must get it once)."""


def evalkeeper(stack: Stack, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", *args],
        env={**stack.srv.env, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(stack: Stack, *args: str, env: dict[str, str] | None = None) -> Any:
    done = evalkeeper(stack, *args, env=env)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def python(stack: Stack, script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**stack.srv.env, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.srv.report()}"
    return done


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("alerts")
    inbox = Inbox()
    with (
        http_receiver(inbox) as base,
        slack_stand_in(root / "tls", inbox) as slack_env,
        prefect_server(
            root / "prefect",
            services={**EVENT_SERVICES_ENV, **slack_env},  # the server sends the messages
            env={"EVALKEEPER_GIT_BRANCH": "main"},
        ) as srv,
    ):
        s = Stack(srv=srv, inbox=inbox, base=base, root=root)
        hook = f"{base}/hook/{WEBHOOK_TOKEN}"
        for _ in range(2):  # twice: the second run changes nothing
            s.setups.append(
                ok(s, "alerts", "setup", "--slack-webhook", SLACK_URL, "--webhook", hook)
            )
        yield s


def messages(stack: Stack, needle: str) -> dict[str, list[Message]] | None:
    """The messages holding `needle` per channel, once every channel has one."""
    found = {c: stack.inbox.about(c, needle) for c in CHANNELS}
    return found if all(found.values()) else None


def received(stack: Stack, needle: str) -> dict[str, str]:
    """Wait for `needle` on every channel; the text of its (first) message per channel."""
    stack.expected.append(needle)
    found = wait(stack.srv, f"a message with {needle!r} on {CHANNELS}",
                 lambda: messages(stack, needle), STEP_S)  # fmt: skip
    return {c: found[c][0].text for c in CHANNELS}


def test_setup_twice_is_one_block_and_one_automation_per_channel_and_event(stack: Stack) -> None:
    outputs = "".join(d.stdout + d.stderr for d in stack.setups)
    assert "slacksecrettoken0001" not in outputs and WEBHOOK_TOKEN not in outputs
    first, second = stack.setups[0].stdout, stack.setups[1].stdout
    assert "block evalkeeper-alerts-slack: created (https://hooks.slack.com/…)" in first
    assert f"block evalkeeper-alerts-webhook: created ({stack.base}/…)" in first
    assert first.count(": created") == 12  # per channel: the block and five automations
    assert second.count(": updated") == 12 and ": created" not in second
    with stack.srv.client() as client:
        ours = [a for a in client.read_automations() if a.name.startswith("evalkeeper-alert-")]
        assert sorted(a.name for a in ours) == AUTOMATIONS
        for a in ours:
            (action,) = a.actions
            assert action.type == "send-notification" and a.enabled
    listed = json.loads(ok(stack, "alerts", "list", "--format", "json").stdout)
    assert sorted(r["automation"] for r in listed) == AUTOMATIONS
    urls = {r["channel"]: r["url"] for r in listed}
    assert urls == {"slack": "https://hooks.slack.com/…", "webhook": f"{stack.base}/…"}
    assert {r["event"] for r in listed} == {
        "evalkeeper.verdict.regression", "evalkeeper.verdict.inconclusive",
        "evalkeeper.rollback.triggered", "evalkeeper.rollback.undelivered",
        "evalkeeper.judge.retired",
    }  # fmt: skip

    # fewer events: the others' automations of that channel go; all of them again: back
    narrowed = ok(stack, "alerts", "setup", "--webhook", f"{stack.base}/hook/{WEBHOOK_TOKEN}",
                  "--events", "regression,judge-retired")  # fmt: skip
    assert narrowed.stdout.count(": deleted") == 3, narrowed.stdout
    with stack.srv.client() as client:
        names = {a.name for a in client.read_automations()}
    assert {n for n in names if n.endswith("-webhook")} == {
        "evalkeeper-alert-regression-webhook", "evalkeeper-alert-judge-retired-webhook"
    }  # fmt: skip
    again = ok(stack, "alerts", "setup", "--webhook", f"{stack.base}/hook/{WEBHOOK_TOKEN}")
    assert again.stdout.count(": created") == 3, again.stdout


GATES = """
import asyncio, json, sys
from flows.gate import gate
from flows.nightly import nightly

common = {"suite": "smoke", "dataset": "appointments", "warehouse": sys.argv[1]}
evaluators = ["tool_call_correct", "contains"]
asyncio.run(nightly(**common, target="evalkeeper.demo.agent:v1", evaluators=evaluators))
out = {}
for verdict, target, evs in (
    ("regression", "evalkeeper.demo.agent:v2", evaluators),
    ("inconclusive", "evalkeeper.demo.agent:v1", [*evaluators, "factual_match"]),
):
    state = asyncio.run(gate(**common, baseline="main", target=target, evaluators=evs,
                             return_state=True))
    try:
        state.result()
    except Exception as exc:
        out[verdict] = exc.result
print(json.dumps(out))
"""


def test_a_regression_and_an_inconclusive_gate_run_alert(stack: Stack) -> None:
    warehouse = stack.root / "gate" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    out = json.loads(python(stack, GATES, str(warehouse)).stdout.strip().splitlines()[-1])
    settings = Settings(warehouse=warehouse)
    for verdict in ("regression", "inconclusive"):
        result = out[verdict]
        assert result["verdict"] == verdict
        comparison = result["comparison"]
        experiment, baseline = comparison["experiment_id"], comparison["baseline_id"]
        subject = (
            f"evalkeeper: REGRESSION in experiment {experiment}"
            if verdict == "regression"
            else f"evalkeeper: INCONCLUSIVE verdict for experiment {experiment}"
        )
        texts = received(stack, subject)
        for text in texts.values():
            assert f"verdict: {verdict} (gate flow)" in text
            assert f"experiment: {experiment}, baseline: {baseline}" in text
            assert "suite: smoke, dataset: appointments" in text
            for reason in result["reasons"]:
                assert f"- {reason}" in text
            report = default_report_path(settings, "experiment", experiment)
            assert f"report: {report}" in text
            assert f"event: evalkeeper.verdict.{verdict} " in text
    assert any("INC-2041" in r for r in out["regression"]["reasons"])
    assert any("factual_match" in r for r in out["inconclusive"]["reasons"])


CALIBRATE = """
import asyncio, json, sys
from flows.calibrate import judge_calibration

print(json.dumps(asyncio.run(judge_calibration(
    judges=["factual_match"], since="2020-01-01T00:00:00Z", n=10, out_dir=sys.argv[2],
    warehouse=sys.argv[1],
))))
"""


def test_a_calibration_that_retires_a_judge_alerts(stack: Stack) -> None:
    from evalkeeper.calibration import import_labels
    from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
    from evalkeeper.warehouse import Warehouse
    from tests.calibration.scenario import judge_settings, judged_run, write_labels, write_scenario

    root = stack.root / "calibration"
    with ScriptedLLMServer(policy=Policy(error_rates={"factual_match": 0.5})) as server:
        settings = judge_settings(root, server)
        _, replay = write_scenario(root, 120)
        judged_run(settings, replay, "exp-cal", ["factual_match"])
    import_labels(
        Warehouse.from_settings(settings),
        write_labels(root / "labels.csv", "exp-cal", "factual_match", 120),
    )
    done = python(
        stack, CALIBRATE, str(settings.warehouse), str(root / "annotations"),
        env={"EVALKEEPER_CALIBRATION_BOOTSTRAP_RESAMPLES": "300"},
    )  # fmt: skip
    (judge,) = json.loads(done.stdout.strip().splitlines()[-1])["judges"]
    assert judge["status"] == "retired"
    texts = received(stack, "evalkeeper: judge factual_match RETIRED")
    for text in texts.values():
        assert f"judge: factual_match (prompt {judge['version']}, model {judge['model']})" in text
        assert f"labels of {judge['quarter']}" in text
        assert "the whole interval is below the bar 0.80" in text
        assert "it leaves every verdict until a new version is calibrated healthy" in text
        assert f"report: {default_report_path(settings, 'calibration', 'latest')}" in text


def test_a_rollback_that_cannot_be_delivered_alerts_decided_and_undelivered(
    stack: Stack,
) -> None:
    from tests.monitor.conftest import DEPLOY, ROLLBACK_SECRET
    from tests.monitor.monitor_traffic import SERVICE, traffic

    root = stack.root / "monitor"
    traces = root / "traces" / "app.jsonl"
    traffic(traces, version="v1", start=DEPLOY - timedelta(days=2), hours=48, per_hour=50,
            slow_rate=0.05, seed=1)  # fmt: skip
    traffic(traces, version="v2", start=DEPLOY, hours=3, per_hour=100, slow_rate=0.6, seed=2)
    warehouse = root / "warehouse.duckdb"
    env = {
        "EVALKEEPER_WAREHOUSE": str(warehouse),
        "EVALKEEPER_TRACES": f"jsonl:{traces}",
        "EVALKEEPER_MONITORS_DIR": str(root / "monitors"),
        "EVALKEEPER_REDACTION_KEY": "a-fixed-redaction-key-for-the-tests",
        # the rollback endpoint answers 503: the decision is not delivered over HTTP
        "EVALKEEPER_ROLLBACK_URL": f"{stack.base}/rollback",
        "EVALKEEPER_ROLLBACK_SECRET": ROLLBACK_SECRET,
        "EVALKEEPER_ROLLBACK_ATTEMPTS": "1",
        "EVALKEEPER_ROLLBACK_BACKOFF_S": "0",
    }
    at = DEPLOY.isoformat().replace("+00:00", "Z")
    ok(stack, "monitor", "start", "--service", SERVICE, "--version", "v2", "--environment",
       "prod", "--previous-version", "v1", "--at", at, "--no-tick", env=env)  # fmt: skip
    now = (DEPLOY + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    ticked = evalkeeper(stack, "monitor", "tick", "--now", now, env=env)
    assert ticked.returncode == 1, f"{ticked.stdout}\n{ticked.stderr}"  # not delivered
    (row,) = json.loads(ok(stack, "monitor", "status", "--format", "json", env=env).stdout)
    window_id = row["window_id"]
    assert row["decision"] == "rollback" and row["rollback_delivered"] is False
    assert [m.channel for m in stack.inbox.messages if m.path == "/rollback"] == ["rollback"]
    report = default_report_path(Settings(warehouse=warehouse), "window", window_id)

    decided = received(stack, f"evalkeeper: ROLLBACK decided for {SERVICE} v2")
    for text in decided.values():
        assert f"rollback decided for {SERVICE} v2 (window {window_id}): roll back to v1" in text
        assert f"window: {window_id}, deploy: {row['deploy_id']} (prod)\n" in text
        assert "roll back v2 to v1, decided at " in text
        assert all(f"- {r}" in text for r in row["reasons"]) and row["reasons"]
        assert f"report: {report}" in text
        assert "event: evalkeeper.rollback.triggered " in text
    undelivered = received(stack, f"evalkeeper: rollback of {SERVICE} v2 NOT DELIVERED")
    for text in undelivered.values():
        assert "not delivered on: http; delivered on: event" in text
        assert f"{stack.base}/rollback answered 503" in text
        assert "every tick retries it" in text
        assert f"report: {report}" in text
        assert "event: evalkeeper.rollback.undelivered " in text
    # the next tick fails again, and says so again, but the alert is one per window
    again = evalkeeper(stack, "monitor", "tick", "--now", now, env=env)
    assert again.returncode == 1, f"{again.stdout}\n{again.stderr}"


def test_each_event_made_exactly_one_message_on_each_channel(stack: Stack) -> None:
    """A last event, emitted twice with one id by evalkeeper's own emitter, is the barrier:
    once its message is in, the messages of the events before it are too."""
    from evalkeeper.monitor.rollback import UNDELIVERED_EVENT, event_id
    from tasks.events import prefect_emitter

    emit = prefect_emitter(Settings(prefect_api_url=stack.srv.api_url))
    assert emit is not None
    payload = {
        "window_id": "w-barrier", "service": "barrier", "version": "v9", "missing": ["http"],
        "delivered": [], "reasons": ["the barrier"], "summary": "the barrier",
    }  # fmt: skip
    for _ in range(2):
        asyncio.run(
            emit(UNDELIVERED_EVENT, "evalkeeper.window.w-barrier", payload,
                 event_id("undelivered", "w-barrier"))
        )  # fmt: skip
    received(stack, "evalkeeper: rollback of barrier v9 NOT DELIVERED")
    counts = {
        needle: {c: len(stack.inbox.about(c, needle)) for c in CHANNELS}
        for needle in stack.expected
    }
    assert counts == {needle: {"slack": 1, "hook": 1} for needle in stack.expected}
    assert {m.path for m in stack.inbox.messages if m.channel == "slack"} == {
        "/services/T0ALERTS/B0ALERTS/slacksecrettoken0001"
    }
