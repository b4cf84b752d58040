"""Deploy webhooks of the HTTP app: `POST /hooks/deploy` and `POST /hooks/github`.

- `/hooks/deploy` takes a generic deploy event (`service`, `environment`, `version`,
  `deploy_id`, `time` in ISO 8601, optional `previous_version`) signed per Standard
  Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`; 5 minutes' tolerance,
  several signatures for key rotation). `webhook-id` is its idempotency key.
- `/hooks/github` takes GitHub's `deployment_status` event, verified by
  `X-Hub-Signature-256`; state `success` opens a window (other states and events are
  acknowledged and ignored; `ping` is answered). `X-GitHub-Delivery` is its idempotency
  key. The service is the deployment payload's `service` (else the repository's name), the
  version its `version` (else the commit sha), the deploy id `github:REPO:DEPLOYMENT_ID`.

Both check the body size first (`EVALKEEPER_WEBHOOK_MAX_BODY_BYTES`: 413), then the
signature against `EVALKEEPER_WEBHOOK_SECRET` in constant time (401 unsigned, forged or
stale; 400 unreadable headers or body, JSON nested too deeply included; 503 without a
secret, or with one that cannot be a key: empty, under 16 bytes, bad `whsec_` base64). A refused request changes nothing. An accepted one
is made durable (`evalkeeper.monitor.intake`: journaled, group-committed with the requests
arriving together, then stored as the window's row with the delivery id) before the
answer, 202, which carries the window; the same deploy or delivery again answers with the
existing window.

After a new window is stored: with a Prefect API configured, the event
`evalkeeper.deploy.completed` (event id derived from the window id) is emitted, and the
`post-deploy-monitor` deployment's trigger runs the first tick; without one, the first tick
runs here, in the background.

This module only speaks HTTP: verify, parse, answer. `/hooks/deploy` is a bare ASGI
handler, answered ahead of the framework's middleware and router (a burst of deploys
spends most of its time in those layers); `/hooks/github` is a framework route.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from evalkeeper.errors import EvalkeeperError
from evalkeeper.http.asgi import Receive, Scope, Send, read_body, receive_chunks
from evalkeeper.monitor.config import MonitorConfigError
from evalkeeper.monitor.intake import DeployIntake
from evalkeeper.monitor.signing import (
    MalformedHeaders,
    SignatureError,
    key_problem,
    verify_github,
    verify_standard,
)
from evalkeeper.monitor.windows import DeployEvent, Window, new_window
from evalkeeper.settings import Settings

__all__ = ["DEPLOY_PATH", "DeployWebhooks"]

DEPLOY_PATH = "/hooks/deploy"

log = logging.getLogger(__name__)


class _Refused(EvalkeeperError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DeployWebhooks:
    """The webhooks' HTTP side: each request verified, parsed and answered; the deploys
    accepted go to `intake`, which keeps them and starts their follow-ups."""

    def __init__(self, settings: Settings, intake: DeployIntake) -> None:
        self.settings = settings
        self.intake = intake
        self.max_bytes = settings.monitor.webhook_max_body_bytes
        self.refused = 0
        secret = settings.monitor.webhook_secret
        # `evalkeeper listen` refuses to start with such a secret; an app built otherwise
        # still never verifies with it (an empty key would accept anyone's signature)
        self._secret_problem = (
            key_problem(secret.get_secret_value(), "EVALKEEPER_WEBHOOK_SECRET")
            if secret is not None
            else None
        )

    def counts(self) -> dict[str, int]:
        """What the webhooks did (`GET /health`)."""
        c = self.intake.counts
        return {
            "accepted": c["accepted"],
            "duplicates": c["duplicates"],
            "refused": self.refused,
            "follow_up_failures": c["follow_up_failures"],
        }

    def add_routes(self, app: FastAPI) -> None:
        """`POST /hooks/github` on `app`'s router (`deploy` answers `/hooks/deploy`)."""
        app.post("/hooks/github")(self.github)

    def _secret(self) -> str:
        if self.settings.monitor.webhook_secret is None:
            raise _Refused(
                503,
                "deploy webhooks are off: set EVALKEEPER_WEBHOOK_SECRET on this server",
            )
        if self._secret_problem is not None:
            raise _Refused(503, f"deploy webhooks are off: {self._secret_problem}")
        return self.settings.monitor.webhook_secret.get_secret_value()

    async def _accept(self, window: Window, delivery_id: str) -> tuple[int, dict[str, Any]]:
        opened = await self.intake.open(window, delivery_id)
        w = opened.window
        answer = {
            "window_id": w.window_id,
            "deploy_id": w.deploy_id,
            "service": w.service,
            "version": w.version,
            "state": w.state,
            "decision": w.decision,
            "created": opened.created,
        }
        return 202, answer

    def _refuse(self, status: int, message: str) -> tuple[int, dict[str, Any]]:
        self.refused += 1
        log.info("deploy webhook refused (%d): %s", status, message)
        return status, {"error": message}

    def _too_large(self, _size: int) -> _Refused:
        return _Refused(
            413,
            f"the body is over {self.max_bytes:,} bytes; a deploy event is small "
            "(raise EVALKEEPER_WEBHOOK_MAX_BODY_BYTES if it must be larger)",
        )

    async def deploy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`/hooks/deploy`, a bare ASGI app: POST a deploy event; other methods 405."""
        if scope["method"] != "POST":  # as the framework answers it
            await _send_json(send, 405, {"detail": "Method Not Allowed"}, ((b"allow", b"POST"),))
            return
        self.intake.busy()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await read_body(
                headers.get("content-length"),
                receive_chunks(receive, _went_away),
                self.max_bytes,
                self._too_large,
            )
            msg_id = verify_standard(
                self._secret(), headers, body, tolerance_s=self.settings.monitor.webhook_tolerance_s
            )
            window = _window(self.settings, _parse(body), "webhook")
        except _Refused as exc:
            status, answer = self._refuse(exc.status, str(exc))
        except SignatureError as exc:
            status, answer = self._refuse(401, str(exc))
        except MalformedHeaders as exc:
            status, answer = self._refuse(400, str(exc))
        else:
            status, answer = await self._accept(window, f"standard:{msg_id}")
        await _send_json(send, status, answer)

    async def github(self, request: Request) -> JSONResponse:
        """`POST /hooks/github`: a GitHub `deployment_status` event (and `ping`)."""
        self.intake.busy()
        try:
            body = await read_body(
                request.headers.get("content-length"),
                request.stream(),
                self.max_bytes,
                self._too_large,
            )
            verify_github(self._secret(), request.headers.get("x-hub-signature-256"), body)
            delivery = request.headers.get("x-github-delivery")
            kind = request.headers.get("x-github-event", "")
            if kind == "ping":
                return JSONResponse({"pong": True}, status_code=200)
            if not delivery:
                raise _Refused(400, "X-GitHub-Delivery is missing: it is the idempotency key")
            if kind != "deployment_status":
                return JSONResponse({"ignored": f"event {kind or '(none)'}"}, status_code=202)
            data = _json(body)
            state = (data.get("deployment_status") or {}).get("state")
            if state != "success":
                return JSONResponse({"ignored": f"deployment state {state!r}"}, status_code=202)
            window = _window(self.settings, _github_event(data), "github")
        except _Refused as exc:
            status, answer = self._refuse(exc.status, str(exc))
        except SignatureError as exc:
            status, answer = self._refuse(401, str(exc))
        else:
            status, answer = await self._accept(window, f"github:{delivery}")
        return JSONResponse(answer, status_code=status)


def _went_away() -> _Refused:
    return _Refused(400, "the client went away before sending the whole body")


async def _send_json(
    send: Send, status: int, answer: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    content = json.dumps(answer, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Refused(400, f"the body is not JSON ({exc}); send one JSON object") from None
    except RecursionError:
        raise _Refused(
            400, "the body is JSON nested too deeply to read; a deploy event is a flat object"
        ) from None
    if not isinstance(data, dict):
        raise _Refused(400, "the body is not a JSON object")
    return data


def _parse(body: bytes) -> DeployEvent:
    data = _json(body)
    try:
        return DeployEvent.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '(body)'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise _Refused(
            400,
            f"{problems}; send service, version, deploy_id and time (ISO 8601), optionally "
            "environment and previous_version",
        ) from None


def _github_event(data: dict[str, Any]) -> DeployEvent:
    deployment = data.get("deployment") or {}
    status = data.get("deployment_status") or {}
    repo = data.get("repository") or {}
    given = deployment.get("payload")
    extra: dict[str, Any] = given if isinstance(given, dict) else {}
    try:
        return DeployEvent.model_validate(
            {
                "service": extra.get("service") or repo.get("name"),
                "environment": deployment.get("environment") or status.get("environment"),
                "version": extra.get("version") or deployment.get("sha"),
                "previous_version": extra.get("previous_version"),
                "deploy_id": f"github:{repo.get('full_name', '?')}:{deployment.get('id')}",
                "time": status.get("created_at") or deployment.get("updated_at"),
            }
        )
    except ValidationError as exc:
        raise _Refused(
            400,
            "deployment_status without "
            + ", ".join(str(e["loc"][0]) for e in exc.errors())
            + "; GitHub sends deployment.sha, deployment.id, repository and created_at",
        ) from None


def _window(settings: Settings, event: DeployEvent, opened_by: str) -> Window:
    try:
        return new_window(settings, event, opened_by)
    except MonitorConfigError as exc:
        log.error("deploy of %s refused: %s", event.service, exc)
        raise _Refused(400, str(exc)) from None
