"""Judge limits shared by every worker, kept by Prefect's global concurrency limits.

Each worker process has its own `EndpointLimiter` (evalkeeper/llm.py): four workers with a
600 requests/minute judge would send up to 2,400 a minute together. With shared limits,
every judge request also takes its turn from two global concurrency limits on the Prefect
server, named after the endpoint (`limit_names`):

- `evalkeeper-judge-rpm-<host>`: the rate. A limit with slot decay, taken in
  `rate_limit` mode (what `prefect.concurrency.asyncio.rate_limit` does):
  `SLOTS_PER_REQUEST` slots per request, a limit of `burst × SLOTS_PER_REQUEST` and a
  decay of `rpm / 60 × SLOTS_PER_REQUEST` slots a second. The server decays whole slots
  only (`floor(decay × seconds)` at each update, and an update restarts the clock), so
  with one slot per request a busy limit loses up to a request per update: measured
  380-440 requests/minute for a 600 one. Ten slots per request make that loss a tenth of
  a request (575-590 measured).
- `evalkeeper-judge-inflight-<host>`: the calls in flight, a limit of `concurrency`
  without decay, held with a lease for as long as the request runs (the lease calls
  `prefect.concurrency.asyncio.concurrency` makes: increment-with-lease, renew,
  decrement-with-lease). A worker killed while it holds a slot frees it when its lease
  expires (`LEASE_S`).

Both go through the Prefect client's own calls, on one API client per event loop, one
write at a time per process, rather than through Prefect's helpers: `concurrency()` opens
two new API clients per use (each builds an SSL context, ~200 ms of CPU) and a renewal
thread, and the helpers' writes, concurrent with the releases, collide on a SQLite
server (503, retried by the client after ~2 s). See docs/scale.md for the figures.

The limits are created, or updated to the configured values, on a process's first judge
request (`ensure_limits`; idempotent, so every worker may do it), or ahead with
`python -m tasks.limits`. Acquiring is strict: a missing limit fails the request (with the
fix) rather than letting it through unlimited, which is what Prefect does with a limit it
does not know.

`install()` (called when the `tasks` package is imported, so by every flow and worker)
hands `shared_limits` to the core; whether a judge client uses it is the setting's
(`EVALKEEPER_JUDGE_SHARED_LIMITS`): unset means shared when `PREFECT_API_URL` names a
server. A 429 pauses the worker that got it (its local limiter); the others pause on their
own 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx

from evalkeeper import llm
from evalkeeper.llm import JudgeCallError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

log = logging.getLogger(__name__)

PREFIX = "evalkeeper-judge"
SLOTS_PER_REQUEST = 10
"""Slots of the rate limit one request takes (see the module's docstring)."""
LEASE_S = 60.0
"""How long an in-flight slot's lease lasts unrenewed (the server's minimum); renewed at
three quarters of it while the request runs."""
POLL_MAX_S = 0.5
"""The longest wait before asking again for a full in-flight limit. The server's
Retry-After grows with the denied requests and the limit's mean occupancy (2 s until it
has measured it), which left slots idle; a released slot is taken within this."""


@dataclass(frozen=True)
class LimitSpec:
    """One endpoint's two global concurrency limits, as they are on the server."""

    rate_name: str
    rate_limit: int
    rate_decay: float
    inflight_name: str
    inflight_limit: int


def limit_names(base_url: str) -> tuple[str, str]:
    """(rate limit, in-flight limit) of an endpoint: `evalkeeper-judge-rpm-<host>` and
    `evalkeeper-judge-inflight-<host>`, with `-<port>` when the URL names a port. Every
    path on one host shares them (a provider limits per host and key, not per route)."""
    parts = urlsplit(base_url if "//" in base_url else f"//{base_url}")
    host = (parts.hostname or "unknown").lower()
    if parts.port is not None:
        host = f"{host}-{parts.port}"
    host = re.sub(r"[^a-z0-9.\-]+", "-", host).strip("-") or "unknown"
    return f"{PREFIX}-rpm-{host}", f"{PREFIX}-inflight-{host}"


def limit_spec(base_url: str, concurrency: int, rpm: float) -> LimitSpec:
    """The limits for `concurrency` calls in flight and `rpm` requests a minute, with the
    same burst as the local token bucket (`min(concurrency, rpm/60)`, at least 1)."""
    rate_name, inflight_name = limit_names(base_url)
    burst = max(1, int(min(float(concurrency), rpm / 60.0)))
    return LimitSpec(
        rate_name=rate_name,
        rate_limit=burst * SLOTS_PER_REQUEST,
        rate_decay=rpm / 60.0 * SLOTS_PER_REQUEST,
        inflight_name=inflight_name,
        inflight_limit=concurrency,
    )


async def ensure_limits(client: PrefectClient, spec: LimitSpec) -> None:
    """Create both limits, or set them to `spec` (idempotent; safe from many workers)."""
    from prefect.exceptions import ObjectAlreadyExists

    wanted: list[tuple[str, int, float | None]] = [
        (spec.rate_name, spec.rate_limit, spec.rate_decay),
        (spec.inflight_name, spec.inflight_limit, 0.0),
    ]
    for name, limit, decay in wanted:
        try:
            await client.upsert_global_concurrency_limit_by_name(name, limit, decay)
        except ObjectAlreadyExists:  # another worker created it meanwhile: set it
            await client.upsert_global_concurrency_limit_by_name(name, limit, decay)


def _server_configured() -> bool:
    """Whether this process's environment names a Prefect server (`PREFECT_API_URL`), as
    a work pool's worker gives every flow run it starts. (Not Prefect's settings object: a
    test harness's temporary server is no server to share limits through.)"""
    return bool(os.environ.get("PREFECT_API_URL"))


class PrefectLimits:
    """An endpoint's shared limits on the Prefect server (a `Limiter`)."""

    def __init__(self, base_url: str, concurrency: int, rpm: float) -> None:
        self.base_url = base_url
        self.spec = limit_spec(base_url, concurrency, rpm)
        self._ensured = False
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]
        self._loops = weakref.WeakKeyDictionary()

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState()
            return state

    def _fail(self, what: str, exc: BaseException) -> JudgeCallError:
        return JudgeCallError(
            f"judge endpoint {self.base_url}: shared limit {what}: {type(exc).__name__}: "
            f"{exc}. Check the Prefect server (PREFECT_API_URL), or set "
            "EVALKEEPER_JUDGE_SHARED_LIMITS=false to use each process's limits alone."
        )

    async def _client(self, state: _LoopState) -> PrefectClient:
        async with state.setup:
            if state.client is None:
                from prefect.client.orchestration import get_client

                client = get_client()
                await client.__aenter__()
                state.client = client
            if not self._ensured:
                await ensure_limits(state.client, self.spec)
                self._ensured = True
            return state.client

    async def _take(
        self, state: _LoopState, client: PrefectClient, name: str, slots: int, mode: str
    ) -> dict[str, Any]:
        """Slots of one limit; waits while it is full. The server refuses a full limit with
        423 and a Retry-After: the rate limit's (its decay) is followed, the in-flight
        limit's is capped at `POLL_MAX_S`. One request at a time per process and limit
        (as Prefect's own acquisition service), and one write at a time per process."""
        waiting = state.waiting.setdefault(name, asyncio.Lock())
        async with waiting:
            while True:
                try:
                    async with state.writing:
                        if mode == "rate_limit":
                            response = await client.increment_concurrency_slots(
                                names=[name], slots=slots, mode="rate_limit"
                            )
                        else:
                            response = await client.increment_concurrency_slots_with_lease(
                                names=[name], slots=slots, mode="concurrency",
                                lease_duration=LEASE_S,
                            )  # fmt: skip
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 423:
                        raise
                    after = float(exc.response.headers.get("Retry-After") or POLL_MAX_S)
                    if mode != "rate_limit":
                        after = min(after, POLL_MAX_S) * (0.5 + random.random() / 2)
                    await asyncio.sleep(after)
                    continue
                body: Any = response.json()
                granted = body.get("limits") if isinstance(body, dict) else body
                if not granted:  # deleted since `ensure_limits`: never unlimited
                    raise RuntimeError(f"global concurrency limit {name!r} does not exist")
                return body if isinstance(body, dict) else {"limits": body}

    async def _renew(self, client: PrefectClient, lease: UUID) -> None:
        while True:
            await asyncio.sleep(LEASE_S * 0.75)
            try:
                await client.renew_concurrency_lease(lease_id=lease, lease_duration=LEASE_S)
            except Exception as exc:  # the call goes on; the slot may be given away
                log.warning("renewing the lease of a judge in-flight slot failed: %s", exc)

    async def _release(self, state: _LoopState, client: PrefectClient, lease: UUID) -> None:
        try:
            async with state.writing:
                await client.release_concurrency_slots_with_lease(lease_id=lease)
        except Exception as exc:  # the lease expires on its own within LEASE_S
            log.warning("releasing a judge in-flight slot failed (it expires): %s", exc)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        spec = self.spec
        state = self._state()
        try:
            client = await self._client(state)
            held = await self._take(state, client, spec.inflight_name, 1, "concurrency")
            lease = UUID(str(held["lease_id"]))
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
            raise self._fail(f"{spec.inflight_name!r} not available", exc) from exc
        renew = asyncio.ensure_future(self._renew(client, lease))
        try:
            try:
                await self._take(state, client, spec.rate_name, SLOTS_PER_REQUEST, "rate_limit")
            except (httpx.HTTPError, RuntimeError) as exc:
                raise self._fail(f"{spec.rate_name!r} not available", exc) from exc
            yield
        finally:
            renew.cancel()
            await asyncio.shield(self._release(state, client, lease))

    def pause(self, seconds: float) -> None:
        """Nothing shared: the worker that got the 429 pauses (its local limiter)."""


@dataclass
class _LoopState:
    """Per event loop: the API client (it belongs to the loop) and the locks."""

    client: PrefectClient | None = None

    def __post_init__(self) -> None:
        self.setup = asyncio.Lock()
        self.writing = asyncio.Lock()
        self.waiting: dict[str, asyncio.Lock] = {}


_SHARED: dict[tuple[str, int, float], PrefectLimits] = {}
_SHARED_LOCK = threading.Lock()


def shared_limits(
    base_url: str, concurrency: int, rpm: float, required: bool
) -> PrefectLimits | None:
    """The source of shared limits the flows install (`llm.SharedLimits`): the endpoint's
    `PrefectLimits` when a Prefect server is configured (`PREFECT_API_URL`), else None. An
    ephemeral server lives and dies with one process: there is nothing to share there."""
    if not _server_configured():
        return None
    key = (base_url, concurrency, rpm)
    with _SHARED_LOCK:
        limits = _SHARED.get(key)
        if limits is None:
            limits = _SHARED[key] = PrefectLimits(base_url, concurrency, rpm)
        return limits


def install() -> None:
    """Make Prefect's global concurrency limits this process's shared judge limits."""
    llm.use_shared_limits(shared_limits)


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.limits`: create or update the judge endpoint's shared limits from
    the settings (EVALKEEPER_JUDGE_BASE_URL, _RPM, _CONCURRENCY) and print them."""
    from prefect.client.orchestration import get_client

    from evalkeeper.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m tasks.limits", description=main.__doc__)
    parser.parse_args(argv)
    settings = Settings()
    if not settings.judge.base_url:
        print("EVALKEEPER_JUDGE_BASE_URL is not set: no judge endpoint to limit")
        return 2
    if not _server_configured():
        print("PREFECT_API_URL is not set: shared limits live on a Prefect server")
        return 2
    spec = limit_spec(settings.judge.base_url, settings.judge.concurrency, settings.judge.rpm)

    async def run() -> None:
        async with get_client() as client:
            await ensure_limits(client, spec)

    asyncio.run(run())
    print(f"{spec.rate_name}: limit {spec.rate_limit}, slot decay {spec.rate_decay:g}/s")
    print(f"{spec.inflight_name}: limit {spec.inflight_limit}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
