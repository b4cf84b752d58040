"""Rollback delivery: at most one decision per window, delivered on every configured channel.

The tick that decides `rollback` stores the decision (`monitoring_rollbacks`, one row per
window, the first write wins) in the same transaction as its counts, with the channels to
deliver on, and only then does this module deliver it. So a crash between the two never
sends twice: the decision is found undelivered by the next tick, which delivers it. Each
attempt is a row of `monitoring_deliveries` (channel, attempt number, ok, status, error).

Channels:
- `http`: a POST of the decision's JSON to `EVALKEEPER_ROLLBACK_URL`, signed per Standard
  Webhooks with `EVALKEEPER_ROLLBACK_SECRET`; `webhook-id` and `Idempotency-Key` are the
  window id, so a receiver can drop a repeat. Retried with exponential backoff
  (`rollback_attempts`, `rollback_backoff_s` doubling) on a network error, 408, 429 or
  5xx; then left for the next tick.
- `command`: the service's `rollback_command` (or `EVALKEEPER_ROLLBACK_COMMAND`), run with
  the JSON on stdin and `EVALKEEPER_ROLLBACK_WINDOW` in its environment; exit 0 delivers.
- `event`: the Prefect event `evalkeeper.rollback.triggered`, through an `EventEmitter` the
  caller provides (the core never imports Prefect), with an event id derived from the
  window id.

A decision not yet delivered on every channel is retried at every tick, and each failure
is logged as an error and shown by `monitor status` (`rollback_delivered: false`, the
last error); it is never dropped. A decision with no channel configured is reported the
same way: it stays undelivered until one is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import uuid
from datetime import datetime
from typing import Any, Protocol

import httpx
import polars as pl
from pydantic import BaseModel, Field

from evalkeeper.models import canonical_json, utcnow
from evalkeeper.monitor.signing import sign_standard
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame

log = logging.getLogger(__name__)

ROLLBACK_EVENT = "evalkeeper.rollback.triggered"
DEPLOY_EVENT = "evalkeeper.deploy.completed"
EVENT_NAMESPACE = uuid.UUID("5b1f3c2e-8d47-4a7e-9a55-0e3c1d2f6a10")
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class EventEmitter(Protocol):
    """Sends one event to an event bus (Prefect's, provided by the faces)."""

    async def __call__(
        self, event: str, resource_id: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> None: ...


def event_id(kind: str, window_id: str) -> uuid.UUID:
    """The deterministic id of a window's event (`deploy` or `rollback`)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{window_id}")


class Attempt(BaseModel):
    """One delivery attempt on one channel."""

    channel: str = Field(description="http, command or event.")
    ok: bool = Field(description="Delivered.")
    status_code: int | None = Field(None, description="HTTP status, or the command's exit code.")
    error: str | None = Field(None, description="Why it failed.")


class Delivery(BaseModel):
    """Where one window's rollback decision stands after a delivery pass."""

    window_id: str = Field(description="The window.")
    channels: list[str] = Field(description="The channels it must be delivered on.")
    delivered: list[str] = Field(description="Channels delivered (now or before).")
    attempts: list[Attempt] = Field(default_factory=list, description="This pass's attempts.")
    problem: str | None = Field(None, description="Why it is not (fully) delivered.")

    @property
    def complete(self) -> bool:
        return bool(self.channels) and set(self.channels) <= set(self.delivered)


def channels_for(
    settings: Settings, rollback_command: str | None, emitter: EventEmitter | None
) -> list[str]:
    """The channels a decision taken now must be delivered on."""
    out = []
    if settings.monitor.rollback_url:
        out.append("http")
    if rollback_command or settings.monitor.rollback_command:
        out.append("command")
    if emitter is not None or settings.monitor.prefect_api_url:
        out.append("event")
    return out


def rollback_frame(
    window_id: str, decided_at: datetime, evaluator: str, channels: list[str], payload: dict
) -> pl.DataFrame:
    row = {
        "window_id": window_id,
        "decided_at": decided_at,
        "evaluator": evaluator,
        "channels": canonical_json(channels),
        "payload": canonical_json(payload),
        "created_at": utcnow(),
    }
    return table_frame("monitoring_rollbacks", [row], orient="row")


def pending(wh: Warehouse, window_id: str | None = None) -> list[dict[str, Any]]:
    """Rollback decisions not delivered on all their channels, with what was delivered."""
    where = "AND r.window_id = ?" if window_id else ""
    frame = wh.query(
        f"""
        SELECT r.window_id, r.decided_at, r.channels, r.payload,
               w.config->>'$.rollback_command' AS command,
               coalesce(list(DISTINCT d.channel) FILTER (WHERE d.ok), []) AS delivered,
               coalesce(max(d.attempt), 0) AS attempts
        FROM monitoring_rollbacks r
        JOIN monitoring_windows w USING (window_id)
        LEFT JOIN monitoring_deliveries d USING (window_id)
        WHERE true {where}
        GROUP BY ALL
        ORDER BY r.decided_at
        """,
        [window_id] if window_id else [],
    )
    out = []
    for row in frame.iter_rows(named=True):
        channels = json.loads(row["channels"])
        if not channels or not set(channels) <= set(row["delivered"]):
            row["channels"] = channels
            row["payload"] = json.loads(row["payload"])
            out.append(row)
    return out


async def deliver_pending(
    settings: Settings,
    *,
    emitter: EventEmitter | None = None,
    window_id: str | None = None,
    sleep: Any = asyncio.sleep,
) -> list[Delivery]:
    """Deliver every undelivered rollback decision (or the one of `window_id`)."""
    wh = Warehouse.from_settings(settings)
    results = []
    for row in await asyncio.to_thread(pending, wh, window_id):
        results.append(await _deliver(settings, wh, row, emitter, sleep))
    return results


async def _deliver(
    settings: Settings,
    wh: Warehouse,
    row: dict[str, Any],
    emitter: EventEmitter | None,
    sleep: Any,
) -> Delivery:
    window_id, channels, payload = row["window_id"], row["channels"], row["payload"]
    delivered = list(row["delivered"])
    result = Delivery(window_id=window_id, channels=channels, delivered=delivered)
    if not channels:
        result.problem = (
            "no rollback action is configured: set EVALKEEPER_ROLLBACK_URL (and "
            "EVALKEEPER_ROLLBACK_SECRET), a rollback_command, or a Prefect API"
        )
        log.error("rollback of %s NOT DELIVERED: %s", window_id, result.problem)
        return result
    attempt_no = int(row["attempts"])
    for channel in channels:
        if channel in delivered:
            continue
        attempts = await _attempts(settings, channel, window_id, payload, row, emitter, sleep)
        rows = []
        for a in attempts:
            attempt_no += 1
            rows.append(
                {
                    "window_id": window_id,
                    "channel": channel,
                    "attempt": attempt_no,
                    "attempted_at": utcnow(),
                    "ok": a.ok,
                    "status_code": a.status_code,
                    "error": a.error,
                }
            )
        await asyncio.to_thread(
            wh.write,
            {"monitoring_deliveries": table_frame("monitoring_deliveries", rows, orient="row")},
            spool_ok=False,
        )
        result.attempts.extend(attempts)
        if attempts and attempts[-1].ok:
            result.delivered.append(channel)
    missing = [c for c in channels if c not in result.delivered]
    if missing:
        last = next((a.error for a in reversed(result.attempts) if not a.ok), None)
        result.problem = f"not delivered on {', '.join(missing)} ({last}); the next tick retries it"
        log.error("rollback of %s NOT DELIVERED: %s", window_id, result.problem)
    return result


async def _attempts(
    settings: Settings,
    channel: str,
    window_id: str,
    payload: dict[str, Any],
    row: dict[str, Any],
    emitter: EventEmitter | None,
    sleep: Any,
) -> list[Attempt]:
    out: list[Attempt] = []
    delay = settings.monitor.rollback_backoff_s
    for n in range(settings.monitor.rollback_attempts):
        if n:
            await sleep(delay)
            delay *= 2
        if channel == "http":
            attempt, retry = await _post(settings, window_id, payload)
        elif channel == "command":
            attempt, retry = await _command(settings, row.get("command"), window_id, payload)
        else:
            attempt, retry = await _event(emitter, window_id, payload)
        out.append(attempt)
        if attempt.ok or not retry:
            break
    return out


async def _post(
    settings: Settings, window_id: str, payload: dict[str, Any]
) -> tuple[Attempt, bool]:
    if not settings.monitor.rollback_url:
        return Attempt(channel="http", ok=False, error="EVALKEEPER_ROLLBACK_URL is unset"), False
    if settings.monitor.rollback_secret is None:
        return (
            Attempt(
                channel="http",
                ok=False,
                error="EVALKEEPER_ROLLBACK_SECRET is unset: the call would be unsigned; set it",
            ),
            False,
        )
    body = canonical_json(payload).encode()
    headers = sign_standard(
        settings.monitor.rollback_secret.get_secret_value(), window_id, utcnow(), body
    )
    headers.update({"content-type": "application/json", "idempotency-key": window_id})
    try:
        async with httpx.AsyncClient(timeout=settings.monitor.rollback_timeout_s) as client:
            response = await client.post(
                settings.monitor.rollback_url, content=body, headers=headers
            )
    except httpx.HTTPError as exc:
        return Attempt(channel="http", ok=False, error=f"{type(exc).__name__}: {exc}"), True
    if response.is_success:
        return Attempt(channel="http", ok=True, status_code=response.status_code), False
    return (
        Attempt(
            channel="http",
            ok=False,
            status_code=response.status_code,
            error=f"{settings.monitor.rollback_url} answered {response.status_code}",
        ),
        response.status_code in RETRY_STATUS,
    )


async def _command(
    settings: Settings, command: str | None, window_id: str, payload: dict[str, Any]
) -> tuple[Attempt, bool]:
    cmd = command or settings.monitor.rollback_command
    if not cmd:
        return Attempt(channel="command", ok=False, error="no rollback command configured"), False
    env = {**os.environ, "EVALKEEPER_ROLLBACK_WINDOW": window_id}
    try:
        proc = await asyncio.create_subprocess_exec(
            *shlex.split(cmd),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _, err = await asyncio.wait_for(
            proc.communicate(canonical_json(payload).encode()), settings.monitor.rollback_timeout_s
        )
    except (OSError, TimeoutError) as exc:
        return Attempt(channel="command", ok=False, error=f"{cmd!r}: {exc!r}"), True
    if proc.returncode == 0:
        return Attempt(channel="command", ok=True, status_code=0), False
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return (
        Attempt(
            channel="command",
            ok=False,
            status_code=proc.returncode,
            error=f"{cmd!r} exited {proc.returncode}: {tail[0][:200]}",
        ),
        True,
    )


async def _event(
    emitter: EventEmitter | None, window_id: str, payload: dict[str, Any]
) -> tuple[Attempt, bool]:
    if emitter is None:
        return (
            Attempt(
                channel="event",
                ok=False,
                error="no Prefect API in this process to emit the event; run the tick where "
                "PREFECT_API_URL is set",
            ),
            False,
        )
    try:
        await emitter(
            ROLLBACK_EVENT,
            f"evalkeeper.window.{window_id}",
            payload,
            event_id("rollback", window_id),
        )
    except Exception as exc:
        return Attempt(channel="event", ok=False, error=f"{type(exc).__name__}: {exc}"), True
    return Attempt(channel="event", ok=True), False
