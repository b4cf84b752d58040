"""`evalkeeper listen` under attack (issue 17, items 2, 3 and 8), with real processes and
real HTTP on 127.0.0.1:

- a secret that cannot be a key (empty, `whsec_` alone, bad base64, too short) stops
  `listen` at start (exit 2, the variable named), so no deploy can open a window with it;
  an app built with one anyway refuses to verify (503), where it used to accept a deploy
  and a GitHub delivery signed with the empty key;
- with `EVALKEEPER_OTLP_TOKENS`, the SDK's own exporter gets its spans stored only with
  `Authorization: Bearer <token>` (either token of a rotation); no token or a wrong one is
  401 and nothing is stored; a non-loopback `--host` without tokens is refused unless
  `--insecure-no-otlp-auth`;
- JSON nested thousands of levels deep is a 400 that says so on every route, not a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from standardwebhooks.webhooks import Webhook

from evalkeeper.http.app import create_app
from evalkeeper.monitor.journal import replay
from evalkeeper.monitor.signing import github_signature
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.conftest import ROOT
from tests.helpers import wait_for_listen
from tests.otlp_helpers import Collected, serve, tracer

KEY = "whsec_" + base64.b64encode(b"deploy-webhook-key-for-tests-0001").decode()
TOKEN_1 = "otlp-token-one-0123456789abcdef"
TOKEN_2 = "otlp-token-two-fedcba9876543210"
DEPLOY = {
    "service": "scheduler",
    "environment": "prod",
    "version": "v2",
    "deploy_id": "deploy-1",
    "time": "2026-11-30T12:00:00Z",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALKEEPER_", "OTEL_"))}
    env.update(
        EVALKEEPER_WAREHOUSE=str(tmp_path / "w.duckdb"),
        EVALKEEPER_MONITORS_DIR=str(tmp_path / "monitors"),
        EVALKEEPER_OTLP_SETTLE_S="60",  # nothing completes before the Ctrl-C
        **extra,
    )
    env.pop("PREFECT_API_URL", None)  # no Prefect API: nothing is emitted
    return env


def _listen(tmp_path: Path, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evalkeeper.cli", "listen", "--port", str(port), *args],
        cwd=tmp_path,
        env={**_env(tmp_path, **env), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_up(proc: subprocess.Popen[str], port: int) -> None:
    wait_for_listen(proc, f"http://127.0.0.1:{port}")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    return output


def _signed_deploy(secret: str, raw: bytes, msg_id: str = "msg-1") -> dict[str, str]:
    """Standard Webhooks headers; `secret=""`: signed with the empty key (which the
    `standardwebhooks` signer refuses to do, so by hand, as an attacker would)."""
    when = datetime.now(UTC)
    stamp = str(int(when.timestamp()))
    if secret:
        signature = Webhook(secret).sign(msg_id, when, raw.decode())
    else:
        mac = hmac.new(b"", f"{msg_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(mac).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def _github(secret: str, raw: bytes) -> dict[str, str]:
    return {
        "x-hub-signature-256": github_signature(secret, raw),
        "x-github-event": "deployment_status",
        "x-github-delivery": "delivery-1",
        "content-type": "application/json",
    }


def _github_body(**extra: Any) -> bytes:
    return json.dumps(
        {
            "deployment_status": {"state": "success", "created_at": "2026-11-30T12:00:00Z"},
            "deployment": {"id": 7, "sha": "abc123", "environment": "prod"},
            "repository": {"name": "scheduler", "full_name": "acme/scheduler"},
            **extra,
        }
    ).encode()


def _windows(settings: Settings) -> list[tuple[Any, ...]]:
    if not settings.warehouse.exists():
        return []
    replay(settings)
    return Warehouse.from_settings(settings).rows("SELECT window_id FROM monitoring_windows")


# -- item 2: an empty secret is a secret -------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("EVALKEEPER_WEBHOOK_SECRET", "", "empty"),
        ("EVALKEEPER_WEBHOOK_SECRET", "whsec_", "empty"),
        ("EVALKEEPER_WEBHOOK_SECRET", "whsec_a", "not base64"),
        ("EVALKEEPER_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"short").decode(), "5 byte"),
        ("EVALKEEPER_ROLLBACK_SECRET", "", "empty"),
        ("EVALKEEPER_ROLLBACK_SECRET", "short-key-12", "12 byte"),
        ("EVALKEEPER_REDACTION_KEY", "", "empty"),
        ("EVALKEEPER_REDACTION_KEY", "k", "1 byte"),
        ("EVALKEEPER_OTLP_TOKENS", " , ", "no token"),
    ],
)
def test_listen_refuses_to_start_with_a_secret_that_cannot_be_a_key(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    port = _free_port()
    env = {"EVALKEEPER_WEBHOOK_SECRET": KEY, variable: value}
    proc = _listen(tmp_path, port, "--jsonl", str(tmp_path / "t.jsonl"), **env)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, output
    (line,) = output.strip().splitlines()  # one line, naming the variable, never the value
    assert line.startswith("error:") and variable in line and says in line, line
    if len(value) > len("whsec_"):
        assert value not in line
    # it never served: nothing answers on the port, and no window was opened
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{port}/hooks/deploy", content=b"{}", timeout=2)
    assert _windows(Settings(warehouse=tmp_path / "w.duckdb")) == []


@pytest.mark.parametrize("secret", ["", "whsec_"])
def test_an_app_with_an_empty_webhook_secret_accepts_no_deploy(tmp_path: Path, secret: str) -> None:
    """What was seen: a deploy and a GitHub delivery signed with the empty key were
    accepted (202, window opened). Now both are 503 and nothing is opened."""
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        monitors_dir=tmp_path / "monitors",
        webhook_secret=secret,
        prefect_api_url=None,
    )
    app = create_app(settings, trace_sink=Collected(), emitter=None, first_tick=False)
    raw, gh = json.dumps(DEPLOY).encode(), _github_body()
    with serve(app) as base:
        deploy = httpx.post(f"{base}/hooks/deploy", content=raw, headers=_signed_deploy("", raw))
        github = httpx.post(f"{base}/hooks/github", content=gh, headers=_github("", gh))
    for answer in (deploy, github):
        assert answer.status_code == 503, answer.text
        assert "EVALKEEPER_WEBHOOK_SECRET" in answer.json()["error"]
    assert _windows(settings) == []


# -- item 3: traces are authenticated ----------------------------------------------------


def _spans(conversation: str) -> tuple[list[Any], str]:
    provider, memory = tracer()
    with provider.get_tracer("t").start_as_current_span("agent") as root:
        root.set_attribute("gen_ai.conversation.id", conversation)
    return list(memory.get_finished_spans()), f"{root.get_span_context().trace_id:032x}"


def test_the_sdk_exporter_needs_a_bearer_token_and_either_rotated_token_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, out = _free_port(), tmp_path / "otlp.jsonl"
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    proc = _listen(
        tmp_path,
        port,
        "--jsonl",
        str(out),
        "--log-level",
        "warning",
        EVALKEEPER_OTLP_TOKENS=f"{TOKEN_1}, {TOKEN_2}",
    )
    try:
        _wait_up(proc, port)
        stored = []
        # the documented line: OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token>"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {TOKEN_1}")
        spans, trace_id = _spans("with-token-1")
        exporter = OTLPSpanExporter(endpoint=endpoint)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        stored.append(trace_id)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS")
        # the second token of the rotation, URL-encoded as the OTLP spec writes it
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{TOKEN_2}")
        spans, trace_id = _spans("with-token-2")
        assert OTLPSpanExporter(endpoint=endpoint).export(spans) is SpanExportResult.SUCCESS
        stored.append(trace_id)
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS")
        for headers in ({}, {"Authorization": "Bearer not-a-token-0123456789"}):
            spans, _ = _spans("refused")
            exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers)
            assert exporter.export(spans) is SpanExportResult.FAILURE
        # what a client is told: 401, in the request's encoding, nothing read
        for auth in (None, f"Basic {TOKEN_1}", f"Bearer {TOKEN_1}x"):
            answer = httpx.post(
                endpoint,
                content=json.dumps({"resourceSpans": []}),
                headers={"content-type": "application/json"}
                | ({"authorization": auth} if auth else {}),
            )
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            assert "EVALKEEPER_OTLP_TOKENS" in answer.json()["message"]
            assert TOKEN_1 not in answer.text
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["assembler"]["spans_received"] == 2, health
    finally:
        output = _stop(proc)
    assert "bearer tokens required" in output and TOKEN_1 not in output
    traces = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(t["trace_id"] for t in traces) == sorted(stored)
    assert {t["conversation_id"] for t in traces} == {"with-token-1", "with-token-2"}


def test_listen_on_a_public_address_needs_tokens_or_the_loud_opt_out(tmp_path: Path) -> None:
    port = _free_port()
    refused = _listen(tmp_path, port, "--host", "0.0.0.0", "--jsonl", str(tmp_path / "t.jsonl"))
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2, output
    (line,) = output.strip().splitlines()
    assert "EVALKEEPER_OTLP_TOKENS" in line and "--insecure-no-otlp-auth" in line, line

    proc = _listen(
        tmp_path,
        port,
        "--host",
        "0.0.0.0",
        "--insecure-no-otlp-auth",
        "--jsonl",
        str(tmp_path / "t.jsonl"),
    )
    try:
        _wait_up(proc, port)
        spans, _ = _spans("open")
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        output = _stop(proc)
    assert "warning" in output and "--insecure-no-otlp-auth" in output, output

    # tokens make a public address fine
    proc = _listen(
        tmp_path,
        port,
        "--host",
        "0.0.0.0",
        "--jsonl",
        str(tmp_path / "t.jsonl"),
        EVALKEEPER_OTLP_TOKENS=TOKEN_1,
    )
    try:
        _wait_up(proc, port)
    finally:
        _stop(proc)


# -- item 8: deep nesting ----------------------------------------------------------------

DEEP = 5_000


def test_json_nested_thousands_deep_is_a_400_on_every_route(tmp_path: Path) -> None:
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        monitors_dir=tmp_path / "monitors",
        webhook_secret=KEY,
        prefect_api_url=None,
    )
    sink = Collected()
    app = create_app(settings, trace_sink=sink, emitter=None, first_tick=False)
    deep_list = "[" * DEEP + "]" * DEEP
    deep_object = '{"a":' * DEEP + "1" + "}" * DEEP
    with serve(app) as base:
        for deep in (deep_list, deep_object):
            traces = httpx.post(
                f"{base}/v1/traces",
                content=f'{{"resourceSpans":{deep}}}',
                headers={"content-type": "application/json"},
            )
            assert traces.status_code == 400, traces.text
            assert "nested too deeply" in traces.json()["message"]

            raw = json.dumps(DEPLOY)[:-1].encode() + f',"extra":{deep}}}'.encode()
            deploy = httpx.post(
                f"{base}/hooks/deploy", content=raw, headers=_signed_deploy(KEY, raw)
            )
            assert deploy.status_code == 400, deploy.text
            assert "nested too deeply" in deploy.json()["error"]

            raw = _github_body()[:-1] + f',"extra":{deep}}}'.encode()
            github = httpx.post(f"{base}/hooks/github", content=raw, headers=_github(KEY, raw))
            assert github.status_code == 400, github.text
            assert "nested too deeply" in github.json()["error"]
        health = httpx.get(f"{base}/health").json()
    assert health["assembler"]["spans_received"] == 0 and health["webhooks"]["accepted"] == 0
    assert sink.traces == [] and _windows(settings) == []
