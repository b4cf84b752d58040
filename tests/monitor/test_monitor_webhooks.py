"""The deploy webhooks on a real server on 127.0.0.1: signed by the `standardwebhooks`
package's own signer and by GitHub's published test vector; forged, stale, replayed,
duplicated, unsigned and oversized requests change nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from evalkeeper.http.app import create_app
from evalkeeper.monitor.journal import replay
from evalkeeper.monitor.signing import github_signature, standard_key, verify_github
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.conftest import WEBHOOK_SECRET
from tests.otlp_helpers import Collected, serve

GITHUB_TEST_SECRET = "It's a Secret to Everybody"
GITHUB_TEST_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.fixture
def base(mon_settings: Settings) -> Iterator[str]:
    settings = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"webhook_max_body_bytes": 4096})}
    )
    with serve(create_app(settings, trace_sink=Collected(), emitter=None, first_tick=False)) as url:
        yield url


def windows(settings: Settings) -> list[tuple[Any, ...]]:
    """The stored windows, once the deploy journal (what a 202 made durable) is applied."""
    replay(settings)
    return Warehouse.from_settings(settings).rows(
        "SELECT window_id, deploy_id FROM monitoring_windows"
    )


def body(deploy_id: str = "deploy-1", **extra: Any) -> bytes:
    data = {
        "service": "scheduler",
        "environment": "prod",
        "version": "v2",
        "previous_version": "v1",
        "deploy_id": deploy_id,
        "time": "2026-11-30T12:00:00Z",
        **extra,
    }
    return json.dumps(data).encode()


def signed(
    raw: bytes,
    msg_id: str = "msg-1",
    *,
    secret: str = WEBHOOK_SECRET,
    at: datetime | None = None,
) -> dict[str, str]:
    when = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, raw.decode()),
        "content-type": "application/json",
    }


OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-configured-secret-000003").decode()


def test_a_signed_deploy_opens_one_window_and_repeats_answer_with_it(
    base: str, mon_settings: Settings
) -> None:
    raw = body()
    first = httpx.post(f"{base}/hooks/deploy", content=raw, headers=signed(raw))
    assert first.status_code == 202, first.text
    assert first.json()["created"] is True and first.json()["state"] == "open"
    window_id = first.json()["window_id"]
    replay = httpx.post(f"{base}/hooks/deploy", content=raw, headers=signed(raw))  # same id
    again = httpx.post(f"{base}/hooks/deploy", content=raw, headers=signed(raw, "msg-2"))
    for answer in (replay, again):
        assert answer.status_code == 202
        assert answer.json() == {**first.json(), "created": False}
    assert windows(mon_settings) == [(window_id, "deploy-1")]


def test_several_signatures_for_key_rotation(base: str, mon_settings: Settings) -> None:
    raw = body("deploy-rotated")
    headers = signed(raw)
    old = signed(raw, secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    answer = httpx.post(f"{base}/hooks/deploy", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text
    assert len(windows(mon_settings)) == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged", 401),
        ("stale", 401),
        ("future", 401),
        ("unsigned", 401),
        ("tampered", 401),
        ("bad-timestamp", 400),
        ("not-json", 400),
        ("naive-time", 400),
        ("missing-field", 400),
        ("oversized", 413),
        ("oversized-chunked", 413),
    ],
)
def test_refused_requests_change_nothing(
    base: str, mon_settings: Settings, case: str, status: int
) -> None:
    raw = body()
    headers = signed(raw)
    if case == "forged":
        headers = signed(raw, secret=OTHER_SECRET)
    elif case == "stale":
        headers = signed(raw, at=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "future":
        headers = signed(raw, at=datetime.now(UTC) + timedelta(minutes=6))
    elif case == "unsigned":
        headers = {"content-type": "application/json"}
    elif case == "tampered":
        raw = body(version="v3")  # signed for v2
    elif case == "bad-timestamp":
        headers["webhook-timestamp"] = "yesterday"
    elif case == "not-json":
        raw = b"service=scheduler"
        headers = signed(raw)
    elif case == "naive-time":
        raw = body(time="2026-11-30T12:00:00")
        headers = signed(raw)
    elif case == "missing-field":
        raw = json.dumps({"service": "scheduler", "version": "v2"}).encode()
        headers = signed(raw)
    elif case in ("oversized", "oversized-chunked"):
        raw = body(notes="x" * 5000)
        headers = signed(raw)
    content: bytes | Iterator[bytes] = raw
    if case == "oversized-chunked":  # no content-length: the limit counts what arrives
        content = iter([raw[:3000], raw[3000:]])
    answer = httpx.post(f"{base}/hooks/deploy", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    assert windows(mon_settings) == []
    assert Warehouse.from_settings(mon_settings).rows(
        "SELECT count(*) FROM monitoring_webhooks"
    ) == [(0,)]


def test_other_methods_on_the_deploy_hook_are_not_allowed(base: str) -> None:
    answer = httpx.get(f"{base}/hooks/deploy")
    assert answer.status_code == 405, answer.text


def test_the_verifier_agrees_with_the_standardwebhooks_package() -> None:
    raw = body()
    headers = signed(raw)
    assert Webhook(WEBHOOK_SECRET).verify(raw, headers)["deploy_id"] == "deploy-1"
    assert standard_key(WEBHOOK_SECRET) == b"deploy-webhook-key-for-tests-0001"


def test_github_test_vector() -> None:
    assert github_signature(GITHUB_TEST_SECRET, b"Hello, World!") == GITHUB_TEST_SIGNATURE
    verify_github(GITHUB_TEST_SECRET, GITHUB_TEST_SIGNATURE, b"Hello, World!")
    with pytest.raises(ValueError, match="forged"):
        verify_github(GITHUB_TEST_SECRET, GITHUB_TEST_SIGNATURE, b"Hello, World?")


def deployment_status(state: str = "success", deployment_id: int = 77) -> bytes:
    return json.dumps(
        {
            "action": "created",
            "deployment_status": {
                "state": state,
                "environment": "production",
                "created_at": "2026-11-30T12:00:00Z",
            },
            "deployment": {
                "id": deployment_id,
                "sha": "a1b2c3d4",
                "environment": "production",
                "payload": {"service": "scheduler", "version": "v2", "previous_version": "v1"},
            },
            "repository": {"name": "scheduler", "full_name": "acme/scheduler"},
        }
    ).encode()


@pytest.fixture
def github(mon_settings: Settings) -> Iterator[tuple[str, Settings]]:
    settings = mon_settings.model_copy(
        update={
            "monitor": mon_settings.monitor.model_copy(
                update={"webhook_secret": SecretStr(GITHUB_TEST_SECRET)}
            )
        }
    )
    with serve(create_app(settings, trace_sink=Collected(), emitter=None, first_tick=False)) as url:
        yield url, settings


def gh_headers(raw: bytes, delivery: str, event: str = "deployment_status") -> dict[str, str]:
    return {
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": github_signature(GITHUB_TEST_SECRET, raw),
        "content-type": "application/json",
    }


def test_github_deployment_status_success_opens_one_window(
    github: tuple[str, Settings],
) -> None:
    url, settings = github
    raw = deployment_status()
    first = httpx.post(f"{url}/hooks/github", content=raw, headers=gh_headers(raw, "g-1"))
    assert first.status_code == 202, first.text
    assert first.json()["created"] is True and first.json()["version"] == "v2"
    redelivered = httpx.post(f"{url}/hooks/github", content=raw, headers=gh_headers(raw, "g-1"))
    assert redelivered.json() == {**first.json(), "created": False}
    assert windows(settings) == [(first.json()["window_id"], "github:acme/scheduler:77")]


def test_github_other_states_events_and_forgeries_open_nothing(
    github: tuple[str, Settings],
) -> None:
    url, settings = github
    pending = deployment_status("in_progress", 78)
    answer = httpx.post(f"{url}/hooks/github", content=pending, headers=gh_headers(pending, "g-2"))
    assert answer.status_code == 202 and "ignored" in answer.json()
    ping = httpx.post(
        f"{url}/hooks/github", content=b"{}", headers=gh_headers(b"{}", "g-3", "ping")
    )
    assert ping.status_code == 200
    raw = deployment_status(deployment_id=79)
    forged = gh_headers(raw, "g-4")
    forged["x-hub-signature-256"] = GITHUB_TEST_SIGNATURE
    assert httpx.post(f"{url}/hooks/github", content=raw, headers=forged).status_code == 401
    unsigned = {k: v for k, v in gh_headers(raw, "g-5").items() if k != "x-hub-signature-256"}
    assert httpx.post(f"{url}/hooks/github", content=raw, headers=unsigned).status_code == 401
    assert windows(settings) == []


def test_without_a_secret_the_webhooks_are_off(mon_settings: Settings) -> None:
    settings = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"webhook_secret": None})}
    )
    with serve(create_app(settings, trace_sink=Collected(), emitter=None)) as url:
        raw = body()
        answer = httpx.post(f"{url}/hooks/deploy", content=raw, headers=signed(raw))
    assert answer.status_code == 503 and "EVALKEEPER_WEBHOOK_SECRET" in answer.json()["error"]
    assert windows(settings) == []


def test_many_deploys_at_once_are_each_stored_once(base: str, mon_settings: Settings) -> None:
    import asyncio

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient() as client:
            reqs = []
            for i in range(40):
                raw = body(f"deploy-{i % 20}")  # every deploy twice
                reqs.append(
                    client.post(f"{base}/hooks/deploy", content=raw, headers=signed(raw, f"m-{i}"))
                )
            return list(await asyncio.gather(*reqs))

    answers = asyncio.run(burst())
    assert {a.status_code for a in answers} == {202}
    assert sum(a.json()["created"] for a in answers) == 20
    assert len(windows(mon_settings)) == 20
