"""Rollback delivery: at most one decision per window, delivered once on every channel.

The tick that decides `rollback` stores the decision (`monitoring_rollbacks`, one row per
window, the first write wins) in the same transaction as its counts, and only then does
this module deliver it. So a crash between the two never sends twice: the decision is
found undelivered by a later tick, which delivers it. Each attempt is a row of
`monitoring_deliveries` (channel, attempt number, ok, status, error).

One delivery across processes: a tick first *claims* the pending decisions (`claim`): in
one transaction, holding the warehouse's write lock (one writer process at a time), it
takes each decision that has no live claim in `monitoring_claims`, for
`rollback_claim_s`. Two ticks can never both win one. The claimer delivers, writes the
outcome (through the spool if the lock is held: the next claim ingests the spool first),
and releases the claim; a crashed claimer's claim expires and is taken over. A claimer
starts no attempt that could end after its claim. A claim never goes through the spool:
when the warehouse stays locked, `deliver_pending` raises `WarehouseLocked` and the tick
skips delivery until the next one.

The channels are those configured in the delivering tick (`channels_for`), plus those the
decision was already delivered on; they are stored on the decision when claimed:
- `http`: a POST of the decision's JSON to `EVALKEEPER_ROLLBACK_URL`, signed per Standard
  Webhooks with `EVALKEEPER_ROLLBACK_SECRET`; `webhook-id` and `Idempotency-Key` are the
  window id, so a receiver can drop a repeat. Retried with exponential backoff
  (`rollback_attempts`, `rollback_backoff_s` doubling) on a network error, 408, 429 or
  5xx; then left for the next tick.
- `command`: the service's `rollback_command` (or `EVALKEEPER_ROLLBACK_COMMAND`), run with
  the JSON on stdin and `EVALKEEPER_ROLLBACK_WINDOW` in its environment; exit 0 delivers.
- `event`: the Prefect event `evalkeeper.rollback.triggered`, through an `EventEmitter` the
  caller provides (the core never imports Prefect), with an event id derived from the
  window id. Sent by the first delivery pass, right after the decision: it is also what
  an alert on "rollback decided" listens for (docs/alerts.md).

A failed attempt is logged as an error, shown by `monitor status` (`rollback_delivered:
false`, the last error) and retried at every tick; it is never dropped. A decision with no
channel configured is recorded once (a `monitoring_deliveries` row of channel `none`,
which `monitor status` shows), said once (`Delivery.first_notice`), fails no tick, and is
delivered by the first tick that has a channel.

A pass that leaves a decision undelivered on a channel (its attempts failed) also emits
`evalkeeper.rollback.undelivered` through the emitter, when there is one: the alert that
the rollback did not happen. Its id is derived from the window id, so it is one event per
window however many ticks retry (`monitor status` shows where it stands). A decision with
no channel at all has no emitter to say it with (a process with Prefect's API always has
the `event` channel): the tick's problems and `monitor status` say it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import duckdb
import httpx
import polars as pl
from pydantic import BaseModel, Field

from evalkeeper.models import canonical_json, utcnow
from evalkeeper.monitor.signing import sign_standard
from evalkeeper.settings import Settings
from evalkeeper.traces.model import iso_utc
from evalkeeper.warehouse import Warehouse, WarehouseLocked
from evalkeeper.warehouse.tables import table_frame

log = logging.getLogger(__name__)

ROLLBACK_EVENT = "evalkeeper.rollback.triggered"
UNDELIVERED_EVENT = "evalkeeper.rollback.undelivered"
DEPLOY_EVENT = "evalkeeper.deploy.completed"
EVENT_NAMESPACE = uuid.UUID("5b1f3c2e-8d47-4a7e-9a55-0e3c1d2f6a10")
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class EventEmitter(Protocol):
    """Sends one event to an event bus (Prefect's, provided by the faces)."""

    async def __call__(
        self, event: str, resource_id: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> None: ...


def event_id(kind: str, window_id: str) -> uuid.UUID:
    """The deterministic id of a window's event (`deploy`, `rollback` or `undelivered`)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{window_id}")


class Attempt(BaseModel):
    """One delivery attempt on one channel."""

    channel: str = Field(description="http, command or event.")
    ok: bool = Field(description="Delivered.")
    status_code: int | None = Field(None, description="HTTP status, or the command's exit code.")
    error: str | None = Field(None, description="Why it failed.")


DeliveryStatus = Literal["delivered", "failed", "no_channel", "claimed"]


class Delivery(BaseModel):
    """Where one window's rollback decision stands after a delivery pass."""

    window_id: str = Field(description="The window.")
    channels: list[str] = Field(description="The channels it must be delivered on.")
    delivered: list[str] = Field(description="Channels delivered (now or before).")
    attempts: list[Attempt] = Field(default_factory=list, description="This pass's attempts.")
    status: DeliveryStatus = Field(
        "failed",
        description="delivered; failed (an attempt of this pass failed: the next tick "
        "retries); no_channel (none configured: recorded, delivered once one is); claimed "
        "(another tick is delivering it now).",
    )
    problem: str | None = Field(None, description="Why it is not (fully) delivered.")
    first_notice: bool = Field(
        False, description="The problem is new (shown once: a no_channel decision's first tick)."
    )

    @property
    def complete(self) -> bool:
        return bool(self.channels) and set(self.channels) <= set(self.delivered)


NO_CHANNEL = (
    "no rollback channel is configured: set EVALKEEPER_ROLLBACK_URL (and "
    "EVALKEEPER_ROLLBACK_SECRET), EVALKEEPER_ROLLBACK_COMMAND or the service's "
    "rollback_command, or run the tick where PREFECT_API_URL is set (the monitor-tick flow); "
    "the next tick that has one delivers it"
)


def channels_for(
    settings: Settings, rollback_command: str | None, emitter: EventEmitter | None
) -> list[str]:
    """The channels a decision delivered now must be delivered on (the configuration of the
    delivering tick, not of the deciding one)."""
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


_PENDING = """
    SELECT r.window_id, r.decided_at, r.channels, r.payload,
           w.config->>'$.rollback_command' AS command,
           coalesce(list(DISTINCT d.channel) FILTER (WHERE d.ok), []) AS delivered,
           coalesce(list(DISTINCT d.channel), []) AS tried,
           coalesce(max(d.attempt), 0) AS attempts
    FROM monitoring_rollbacks r
    JOIN monitoring_windows w USING (window_id)
    LEFT JOIN monitoring_deliveries d USING (window_id)
    WHERE true {where}
    GROUP BY ALL
    ORDER BY r.decided_at
"""


def _pending(con: duckdb.DuckDBPyConnection, window_id: str | None) -> list[dict[str, Any]]:
    where = "AND r.window_id = ?" if window_id else ""
    frame = con.sql(_PENDING.format(where=where), params=[window_id] if window_id else None).pl()
    out = []
    for row in frame.iter_rows(named=True):
        channels = json.loads(row["channels"])
        if not channels or not set(channels) <= set(row["delivered"]):
            row["channels"] = channels
            row["payload"] = json.loads(row["payload"])
            out.append(row)
    return out


def pending(wh: Warehouse, window_id: str | None = None) -> list[dict[str, Any]]:
    """Rollback decisions not delivered on all their channels, with what was delivered."""
    with wh.connect() as con:
        return _pending(con, window_id)


class Claim(BaseModel):
    """This process's claim on one window's delivery: no other tick delivers it before
    `expires_at`, and this one starts no attempt that could end after it."""

    window_id: str
    claim_id: str
    expires_at: datetime
    deadline: float = Field(description="time.monotonic() at which the claim expires.")
    row: dict[str, Any]
    channels: list[str]


def claimant() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(
    settings: Settings,
    wh: Warehouse,
    *,
    emitter: EventEmitter | None = None,
    window_id: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[list[Claim], list[Delivery]]:
    """Claim the delivery of every pending decision (or `window_id`'s) that no live claim
    holds, in one transaction: the warehouse lets one process write at a time, so two
    ticks can never both win a window. Returns the claims won, and what stands for the
    decisions not claimed (held by another tick; no channel configured).

    A decision's channels are those configured now (plus those it was delivered on):
    a decision taken with none is delivered by the first tick that has one. Raises
    `WarehouseLocked` when the lock stays taken: nothing is claimed, the next tick retries.
    """
    claims: list[Claim] = []
    others: list[Delivery] = []
    with wh.connect() as con:
        wh.ingest_spool()  # delivery rows a claimer spooled count before anything is claimed
        now = clock()
        started = time.monotonic()
        con.execute("BEGIN TRANSACTION")
        try:
            live = {
                wid: f"{who}, its claim expires at {iso_utc(until)}"
                for wid, who, until in con.execute(
                    "SELECT window_id, claimant, expires_at FROM monitoring_claims "
                    "WHERE expires_at > ?",
                    [now],
                ).fetchall()
            }
            for row in _pending(con, window_id):
                wid = row["window_id"]
                delivered = list(row["delivered"])
                if wid in live:
                    others.append(
                        Delivery(
                            window_id=wid,
                            channels=row["channels"],
                            delivered=delivered,
                            status="claimed",
                            problem=f"being delivered by another tick ({live[wid]})",
                        )
                    )
                    continue
                now_channels = channels_for(settings, row["command"], emitter)
                channels = sorted(set(delivered) | set(now_channels))
                if not channels:
                    others.append(_no_channel(con, row, now))
                    continue
                if channels != row["channels"]:
                    con.execute(
                        "UPDATE monitoring_rollbacks SET channels = ? WHERE window_id = ?",
                        [canonical_json(channels), wid],
                    )
                claim_id = uuid.uuid4().hex
                expires = now + timedelta(seconds=settings.monitor.rollback_claim_s)
                con.execute(
                    "INSERT OR REPLACE INTO monitoring_claims VALUES (?, ?, ?, ?, ?)",
                    [wid, claim_id, claimant(), now, expires],
                )
                claims.append(
                    Claim(
                        window_id=wid,
                        claim_id=claim_id,
                        expires_at=expires,
                        deadline=started + settings.monitor.rollback_claim_s,
                        row=row,
                        channels=channels,
                    )
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return claims, others


def _no_channel(con: duckdb.DuckDBPyConnection, row: dict[str, Any], now: datetime) -> Delivery:
    """A decision with no channel to deliver on: recorded once (a `monitoring_deliveries`
    row of channel `none`, which `monitor status` shows as its last error), said once."""
    wid = row["window_id"]
    first = "none" not in row["tried"]
    if first:
        con.execute(
            "INSERT INTO monitoring_deliveries VALUES (?, 'none', ?, ?, false, NULL, ?)",
            [wid, int(row["attempts"]) + 1, now, NO_CHANNEL],
        )
        log.error("rollback of %s NOT DELIVERED: %s", wid, NO_CHANNEL)
    else:
        log.debug("rollback of %s still not delivered: %s", wid, NO_CHANNEL)
    return Delivery(
        window_id=wid,
        channels=[],
        delivered=[],
        status="no_channel",
        problem=NO_CHANNEL,
        first_notice=first,
    )


def release(wh: Warehouse, held: Claim) -> None:
    """End a claim (if it is still this one's); a locked warehouse leaves it to expire."""
    try:
        with wh.connect() as con:
            con.execute(
                "DELETE FROM monitoring_claims WHERE window_id = ? AND claim_id = ?",
                [held.window_id, held.claim_id],
            )
    except WarehouseLocked:
        log.warning("claim on %s left to expire at %s", held.window_id, held.expires_at)


async def deliver_pending(
    settings: Settings,
    *,
    emitter: EventEmitter | None = None,
    window_id: str | None = None,
    sleep: Any = asyncio.sleep,
    clock: Callable[[], datetime] = utcnow,
) -> list[Delivery]:
    """Deliver every undelivered rollback decision (or the one of `window_id`) that this
    process can claim. Raises `WarehouseLocked` when nothing could be claimed for the lock."""
    wh = Warehouse.from_settings(settings)
    claims, results = await asyncio.to_thread(
        claim, settings, wh, emitter=emitter, window_id=window_id, clock=clock
    )
    for held in claims:
        try:
            done = await _deliver(settings, wh, held, emitter, sleep)
            results.append(done)
        finally:
            await asyncio.to_thread(release, wh, held)
        if done.status == "failed" and emitter is not None:
            await _say_undelivered(emitter, done, held.row["payload"])
    return results


def undelivered_payload(delivery: Delivery, decision: dict[str, Any]) -> dict[str, Any]:
    """The `evalkeeper.rollback.undelivered` payload: the window, the deploy to roll back,
    the channels and what failed, and a one-line summary."""
    missing = [c for c in delivery.channels if c not in delivery.delivered]
    service, version = decision.get("service"), decision.get("version")
    return {
        "window_id": delivery.window_id,
        "deploy_id": decision.get("deploy_id"),
        "service": service,
        "environment": decision.get("environment"),
        "version": version,
        "rollback_to": decision.get("rollback_to"),
        "decided_at": decision.get("decided_at"),
        "reasons": decision.get("reasons") or [],
        "channels": delivery.channels,
        "delivered": delivery.delivered,
        "missing": missing,
        "problem": delivery.problem,
        "summary": f"rollback of {service} {version} (window {delivery.window_id}) NOT "
        f"DELIVERED on {', '.join(missing)}: {delivery.problem}",
    }


async def _say_undelivered(
    emitter: EventEmitter, delivery: Delivery, decision: dict[str, Any]
) -> None:
    """Emit `UNDELIVERED_EVENT` (once per window: its id is the window's); a failure to
    emit is logged, the delivery's own failure is already recorded and retried."""
    try:
        await emitter(
            UNDELIVERED_EVENT,
            f"evalkeeper.window.{delivery.window_id}",
            undelivered_payload(delivery, decision),
            event_id("undelivered", delivery.window_id),
        )
    except Exception as exc:
        log.warning("could not emit %s for %s: %r", UNDELIVERED_EVENT, delivery.window_id, exc)


async def _deliver(
    settings: Settings,
    wh: Warehouse,
    held: Claim,
    emitter: EventEmitter | None,
    sleep: Any,
) -> Delivery:
    row = held.row
    window_id, channels, payload = held.window_id, held.channels, row["payload"]
    delivered = list(row["delivered"])
    result = Delivery(window_id=window_id, channels=channels, delivered=delivered)
    attempt_no = int(row["attempts"])  # stable: only the claim holder adds attempts
    for channel in channels:
        if channel in delivered:
            continue
        attempts = await _attempts(settings, channel, window_id, payload, row, emitter, sleep,
                                   held.deadline)  # fmt: skip
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
        # spooled when the lock is held: the claim then stays until it expires, and the
        # next claimer ingests the spool before it claims, so it sees this outcome
        await asyncio.to_thread(
            wh.write,
            {"monitoring_deliveries": table_frame("monitoring_deliveries", rows, orient="row")},
        )
        result.attempts.extend(attempts)
        if attempts and attempts[-1].ok:
            result.delivered.append(channel)
    missing = [c for c in channels if c not in result.delivered]
    if missing:
        last = next((a.error for a in reversed(result.attempts) if not a.ok), None)
        result.problem = f"not delivered on {', '.join(missing)} ({last}); the next tick retries it"
        log.error("rollback of %s NOT DELIVERED: %s", window_id, result.problem)
    else:
        result.status = "delivered"
    return result


async def _attempts(
    settings: Settings,
    channel: str,
    window_id: str,
    payload: dict[str, Any],
    row: dict[str, Any],
    emitter: EventEmitter | None,
    sleep: Any,
    deadline: float,
) -> list[Attempt]:
    out: list[Attempt] = []
    delay = settings.monitor.rollback_backoff_s
    # an attempt may take its timeout, and its outcome the lock wait to be written
    needs = settings.monitor.rollback_timeout_s + settings.lock_wait_s
    for n in range(settings.monitor.rollback_attempts):
        if n:
            await sleep(delay)
            delay *= 2
        if time.monotonic() + needs >= deadline:
            out.append(
                Attempt(
                    channel=channel,
                    ok=False,
                    error="not attempted: the delivery claim would expire first "
                    f"(EVALKEEPER_ROLLBACK_CLAIM_S={settings.monitor.rollback_claim_s:g} must "
                    "exceed EVALKEEPER_ROLLBACK_TIMEOUT_S + EVALKEEPER_LOCK_WAIT_S and the "
                    "backoff)",
                )
            )
            break
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
            response = await asyncio.wait_for(
                client.post(settings.monitor.rollback_url, content=body, headers=headers),
                settings.monitor.rollback_timeout_s,  # in all: httpx's is per read or write
            )
    except TimeoutError:
        return Attempt(channel="http", ok=False, error="timed out"), True
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
