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
stale; 400 unreadable headers or body). A refused request changes nothing. An accepted one
is stored (the window's row, with the delivery id) before the answer, 202, which carries
the window; the same deploy or delivery again answers with the existing window. Stores
are group-committed: requests arriving together share one warehouse transaction.

After a new window is stored: with a Prefect API configured, the event
`evalkeeper.deploy.completed` (event id derived from the window id) is emitted, and the
`post-deploy-monitor` deployment's trigger runs the first tick; without one, the first tick
runs here, in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from evalkeeper import registry
from evalkeeper.models import utcnow
from evalkeeper.monitor.config import MonitorConfigError
from evalkeeper.monitor.journal import DeployJournal, encode, replay
from evalkeeper.monitor.rollback import DEPLOY_EVENT, EventEmitter, event_id
from evalkeeper.monitor.signing import (
    MalformedHeaders,
    SignatureError,
    verify_github,
    verify_standard,
)
from evalkeeper.monitor.windows import DeployEvent, Opened, Window, load_window, new_window
from evalkeeper.run import warehouse_for
from evalkeeper.settings import Settings

__all__ = ["ASGIApp", "Receive", "Scope", "Send", "WebhookHandler", "add_webhook_routes"]

# the ASGI interface's types (as Starlette spells them)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebhookHandler:
    """Journals accepted deploys (group-committed), applies them to the warehouse in the
    background, and starts their first tick.

    One writer task decides, batch by batch, which requests are new (an index of the
    stored and journaled window and delivery ids, loaded once from the warehouse) and
    appends the new ones to the journal (`evalkeeper.monitor.journal`) in a worker thread,
    one fsync per batch; each request awaits its batch, so a 202 is durable and the event
    loop never waits on a disk or the warehouse. An applier task then stores the journaled
    windows (`open_windows`) and runs their follow-ups.

    The applier and the first ticks are Python work in worker threads: they would take the
    GIL from the event loop while it answers. So they wait until the server is idle (no
    request for `IDLE_S`, see `busy()`), for at most `MAX_DEFER_S`, and the first ticks
    check again before each window."""

    IDLE_S = 0.5
    """The server is idle once no request came for this long."""
    MAX_DEFER_S = 30.0
    """Background work waits for an idle server at most this long, then runs anyway."""

    def __init__(
        self,
        settings: Settings,
        *,
        emitter: EventEmitter | None,
        first_tick: bool = True,
        tick_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.emitter = emitter
        self.first_tick = first_tick
        self.tick_clock = tick_clock
        self._queue: asyncio.Queue[tuple[Window, str | None, asyncio.Future[Opened]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._journal = DeployJournal(settings)
        self._started: asyncio.Future[None] | None = None
        self._known: set[str] = set()  # window ids stored or journaled
        self._deliveries: dict[str, str] = {}  # delivery id -> window id
        self._pending: dict[str, Window] = {}  # journaled, not yet applied
        self._apply_wanted = asyncio.Event()
        self._applying = 0
        self._tick_ids: list[str] = []
        self._tick_wanted = asyncio.Event()
        self._last_request = 0.0
        self.asgi_routes: dict[tuple[str, str], ASGIApp] = {}
        """(method, path) -> a bare ASGI app answering it ahead of the framework's router."""
        self.counts = {"accepted": 0, "duplicates": 0, "refused": 0, "follow_up_failures": 0}

    def busy(self) -> None:
        """A request came (any route): background work waits until the server is idle."""
        self._last_request = time.monotonic()

    async def _until_idle(self) -> None:
        deadline = time.monotonic() + self.MAX_DEFER_S
        while True:
            now = time.monotonic()
            wait = self._last_request + self.IDLE_S - now
            if wait <= 0 or now >= deadline:
                return
            await asyncio.sleep(min(wait, deadline - now))

    async def start(self) -> None:
        """Apply what an earlier process journaled, load the index, start the tasks
        (idempotent; the first request does it if the app's startup did not)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await asyncio.to_thread(self._recover)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._write_loop(), name="webhook-journal"),
                asyncio.create_task(self._apply_loop(), name="webhook-windows"),
                asyncio.create_task(self._tick_loop(), name="webhook-first-ticks"),
            ]
            self._started.set_result(None)
        else:
            await asyncio.shield(self._started)

    def _recover(self) -> None:
        replay(self.settings)
        registry.load_builtin()  # imported now, not by the first deploy's config check
        wh = warehouse_for(self.settings)
        with wh.connect() as con:
            self._known = {r[0] for r in con.execute("SELECT window_id FROM monitoring_windows")
                           .fetchall()}  # fmt: skip
            self._deliveries = dict(
                con.execute("SELECT delivery_id, window_id FROM monitoring_webhooks").fetchall()
            )

    async def open(self, window: Window, delivery_id: str | None) -> Opened:
        await self.start()
        assert self._queue is not None
        future: asyncio.Future[Opened] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((window, delivery_id, future))
        opened = await future
        self.counts["accepted" if opened.created else "duplicates"] += 1
        return opened

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            new: list[tuple[Window, str | None]] = []
            duplicates: list[tuple[str, asyncio.Future[Opened]]] = []
            created: list[tuple[Window, asyncio.Future[Opened]]] = []
            for window, delivery, future in items:
                existing = self._deliveries.get(delivery) if delivery else None
                if existing is None and window.window_id in self._known:
                    existing = window.window_id
                if existing is not None:
                    duplicates.append((existing, future))
                    continue
                self._known.add(window.window_id)
                if delivery:
                    self._deliveries[delivery] = window.window_id
                new.append((window, delivery))
                created.append((window, future))
            try:
                await asyncio.to_thread(self._journal.write, encode(new))
            except Exception as exc:
                for window, delivery in new:  # not kept: the sender retries, and may
                    self._known.discard(window.window_id)
                    if delivery:
                        self._deliveries.pop(delivery, None)
                log.exception("deploy journal %s: append failed", self._journal.directory)
                for _, future in created:
                    if not future.done():
                        future.set_exception(exc)
                created = []
            for window, future in created:
                self._pending[window.window_id] = window
                if not future.done():
                    future.set_result(Opened(window=window, created=True))
            if new:
                self._apply_wanted.set()
            for window_id, future in duplicates:
                self._spawn(self._answer_existing(window_id, future))

    async def _answer_existing(self, window_id: str, future: asyncio.Future[Opened]) -> None:
        try:
            window = self._pending.get(window_id)
            if window is None:
                window = await asyncio.to_thread(load_window, self.settings, window_id)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(Opened(window=window, created=False))

    async def _apply_loop(self) -> None:
        delay = 0.5
        while True:
            await self._apply_wanted.wait()
            await self._until_idle()
            self._apply_wanted.clear()
            segment = self._journal.rotate()
            if segment is None:
                continue
            self._applying += 1
            try:
                opened = await asyncio.to_thread(replay, self.settings, segments=[segment])
            except Exception:
                self.counts["follow_up_failures"] += 1
                log.exception(
                    "deploy journal %s: applying it to the warehouse failed; it is kept and "
                    "retried in %.1f s (every tick applies it too)",
                    segment,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                self._apply_later(segment)
                continue
            finally:
                self._applying -= 1
            delay = 0.5
            for result in opened:
                self._pending.pop(result.window.window_id, None)
                if result.created:
                    self._spawn(self._follow_up(result.window))

    def _apply_later(self, segment: Path) -> None:
        async def again() -> None:
            opened = await asyncio.to_thread(replay, self.settings, segments=[segment])
            for result in opened:
                self._pending.pop(result.window.window_id, None)
                if result.created:
                    self._spawn(self._follow_up(result.window))

        self._spawn(again())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _follow_up(self, window: Window) -> None:
        try:
            if self.emitter is not None:
                payload = {
                    "window_id": window.window_id,
                    "deploy_id": window.deploy_id,
                    "service": window.service,
                    "environment": window.environment,
                    "version": window.version,
                    "previous_version": window.previous_version,
                    "time": window.deployed_at.isoformat(),
                }
                await self.emitter(
                    DEPLOY_EVENT,
                    f"evalkeeper.deploy.{window.window_id}",
                    payload,
                    event_id("deploy", window.window_id),
                )
            elif self.first_tick:
                self._tick_ids.append(window.window_id)
                self._tick_wanted.set()
        except Exception:
            self.counts["follow_up_failures"] += 1
            log.exception(
                "window %s is stored, but its %s failed; the next `monitor-tick` advances it",
                window.window_id,
                "event" if self.emitter is not None else "first tick",
            )

    async def _tick_loop(self) -> None:
        """First ticks of new windows: those that arrive together (a burst of deploys)
        are ticked one after the other, in a worker thread with its own event loop, so
        the app's loop keeps answering."""
        while True:
            await self._tick_wanted.wait()
            await self._until_idle()  # a burst's other windows arrive first
            self._tick_wanted.clear()
            ids, self._tick_ids = self._tick_ids, []
            while ids:
                await self._until_idle()
                window_id = ids.pop(0)
                failed = await asyncio.to_thread(asyncio.run, self._first_ticks([window_id]))
                self.counts["follow_up_failures"] += failed

    async def _first_ticks(self, window_ids: list[str]) -> int:
        from evalkeeper.monitor.tick import tick

        failed = 0
        for window_id in window_ids:
            try:
                await tick(self.settings, now=self.tick_clock(), window_id=window_id)
            except Exception:
                failed += 1
                log.exception("the first tick of %s failed; `monitor-tick` retries it", window_id)
        return failed

    async def aclose(self) -> None:
        """Finish: apply what is journaled, wait for the follow-ups, stop the tasks."""
        self._last_request = 0.0  # shutting down: nothing more to wait for
        if self._queue is not None:
            while not self._queue.empty() or self._apply_wanted.is_set() or self._applying:
                await asyncio.sleep(0.01)
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=30)
        for loop_task in self._tasks:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        segment = self._journal.rotate()
        if segment is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(replay, self.settings, segments=[segment])


def add_webhook_routes(
    app: FastAPI,
    settings: Settings,
    *,
    emitter: EventEmitter | None = None,
    first_tick: bool = True,
    tick_clock: Callable[[], datetime] = utcnow,
) -> WebhookHandler:
    """Add the deploy webhooks to `app`; the caller awaits `handler.aclose()` at shutdown."""
    handler = WebhookHandler(
        settings, emitter=emitter, first_tick=first_tick, tick_clock=tick_clock
    )
    max_bytes = settings.monitor.webhook_max_body_bytes

    def secret() -> str:
        if settings.monitor.webhook_secret is None:
            raise _Refused(
                503,
                "deploy webhooks are off: set EVALKEEPER_WEBHOOK_SECRET on this server",
            )
        return settings.monitor.webhook_secret.get_secret_value()

    async def accept(window: Window, delivery_id: str | None) -> JSONResponse:
        status, answer = await answered(window, delivery_id)
        return JSONResponse(answer, status_code=status)

    async def answered(window: Window, delivery_id: str | None) -> tuple[int, dict[str, Any]]:
        opened = await handler.open(window, delivery_id)
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

    async def deploy(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /hooks/deploy` once its body is read: (status, JSON answer)."""
        try:
            msg_id = verify_standard(
                secret(), headers, body, tolerance_s=settings.monitor.webhook_tolerance_s
            )
            event = _parse(body, DeployEvent)
            window = _window(settings, event, "webhook")
        except _Refused as exc:
            return _refused(handler, exc.status, str(exc))
        except SignatureError as exc:
            return _refused(handler, 401, str(exc))
        except MalformedHeaders as exc:
            return _refused(handler, 400, str(exc))
        return await answered(window, f"standard:{msg_id}")

    @app.post("/hooks/deploy")
    async def deploy_hook(request: Request) -> JSONResponse:
        handler.busy()
        try:
            body = await _read_body(request, max_bytes)
        except _Refused as exc:
            return _refuse(handler, exc.status, str(exc))
        status, answer = await deploy(dict(request.headers), body)
        return JSONResponse(answer, status_code=status)

    async def deploy_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /hooks/deploy` as a bare ASGI app: the answers of `deploy_hook`, without
        the framework's per-request layers (a burst of deploys is mostly those)."""
        handler.busy()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await _receive_body(headers.get("content-length"), receive, max_bytes)
        except _Refused as exc:
            status, answer = _refused(handler, exc.status, str(exc))
        else:
            status, answer = await deploy(headers, body)
        content = json.dumps(answer, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    handler.asgi_routes[("POST", "/hooks/deploy")] = deploy_asgi

    @app.post("/hooks/github")
    async def github_hook(request: Request) -> JSONResponse:
        handler.busy()
        try:
            body = await _read_body(request, max_bytes)
            verify_github(secret(), request.headers.get("x-hub-signature-256"), body)
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
            window = _window(settings, _github_event(data), "github")
        except _Refused as exc:
            return _refuse(handler, exc.status, str(exc))
        except SignatureError as exc:
            return _refuse(handler, 401, str(exc))
        return await accept(window, f"github:{delivery}")

    return handler


def _refuse(handler: WebhookHandler, status: int, message: str) -> JSONResponse:
    status, answer = _refused(handler, status, message)
    return JSONResponse(answer, status_code=status)


def _refused(handler: WebhookHandler, status: int, message: str) -> tuple[int, dict[str, Any]]:
    handler.counts["refused"] += 1
    log.info("deploy webhook refused (%d): %s", status, message)
    return status, {"error": message}


def _too_large(max_bytes: int) -> _Refused:
    return _Refused(
        413,
        f"the body is over {max_bytes:,} bytes; a deploy event is small "
        "(raise EVALKEEPER_WEBHOOK_MAX_BODY_BYTES if it must be larger)",
    )


async def _receive_body(declared: str | None, receive: Receive, max_bytes: int) -> bytes:
    """The body of an ASGI request, refused (413) once over `max_bytes`."""
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = _too_large(max_bytes)
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Refused(400, f"the body is not JSON ({exc}); send one JSON object") from None
    if not isinstance(data, dict):
        raise _Refused(400, "the body is not a JSON object")
    return data


def _parse(body: bytes, model: type[DeployEvent]) -> DeployEvent:
    data = _json(body)
    try:
        return model.model_validate(data)
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
