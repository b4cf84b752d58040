"""The judge client: one `complete` method over the official `openai.AsyncOpenAI`.

Any OpenAI-compatible chat endpoint works (OpenAI, vLLM, Ollama, a LiteLLM proxy). The
client owns what makes judge calls trustworthy and cheap:

- **Pinned models.** `check_pin` refuses a moving alias (`gpt-4o`); see `is_pinned` for
  the rule. `EVALKEEPER_JUDGE_ALLOW_UNPINNED=true` accepts one anyway.
- **Client-side limits per endpoint.** All clients of one base URL in the process share an
  `EndpointLimiter`: a concurrency bound (`judge_concurrency`) and a requests-per-minute
  token bucket (`judge_rpm`). A 429 with `Retry-After` pauses the whole endpoint, not just
  the one request.
- **Limits shared across processes.** With a source of shared limits installed
  (`use_shared_limits`; the flows install Prefect's global concurrency limits, see
  `tasks/limits.py`), each request also takes its turn from that `Limiter`, after the
  process's own: every worker of a suite then stays within one `judge_rpm` and one
  `judge_concurrency` together (`EVALKEEPER_JUDGE_SHARED_LIMITS`).
- **Our own retries.** The SDK's retries are off (`max_retries=0`); 429, 5xx and connection
  errors/timeouts are retried here with exponential backoff and jitter, honouring
  `Retry-After`/`retry-after-ms`, at most `judge_max_retries` times; then `JudgeCallError`.
  Other 4xx are not retried.
- **A circuit breaker.** After `breaker_failures` (8) calls in a row failed, retries
  included, calls fail at once for `breaker_cooldown_s` (30 s), then one is tried again: a
  dead endpoint turns a suite's judge scores into errors quickly, and the run goes on.
- **Structured answers.** With `response_schema` the answer must be a JSON object matching
  it; a malformed answer is retried once with a repair instruction, then `MalformedAnswer`.
- **Accounting.** Tokens, latency, and cost when the model is in `PRICES`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import jsonschema

from evalkeeper.errors import EvalkeeperError, InputError

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletion

    from evalkeeper.settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, str]

# USD per million tokens (input, output), keyed by model-name prefix; the longest matching
# prefix wins. List prices as published by the vendors (2024-2025); extend or override
# with `JudgeClient(prices=...)`. A model not listed has cost None (unknown), never 0.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
}

REPAIR_INSTRUCTION = (
    "Your previous answer could not be used: {problem}. Reply again with only one JSON "
    "object, no prose and no code fences, that matches this JSON schema:\n{schema}"
)

MAX_RETRY_AFTER_S = 120.0
"""A `Retry-After` longer than this is not waited for: the call fails at once."""

MAX_BACKOFF_S = 30.0


class JudgeError(EvalkeeperError, RuntimeError):
    """A judge call could not produce an answer."""


class ModelNotPinned(InputError, ValueError):
    """The judge model is a moving alias and unpinned models are not allowed."""


class JudgeCallError(JudgeError):
    """The endpoint kept failing (after retries) or refused the request."""

    def __init__(self, message: str, *, status: int | None = None, requests: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.requests = requests


class MalformedAnswer(JudgeError):
    """The answer was not JSON matching the schema, even after one repair request."""

    def __init__(
        self,
        message: str,
        *,
        text: str,
        requests: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        cost_usd: float | None,
    ) -> None:
        super().__init__(message)
        self.text = text
        self.requests = requests
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cost_usd = cost_usd


# -- model pins ---------------------------------------------------------------------------

_DATE = re.compile(r"(?<!\d)(?:20\d\d-[01]\d-[0-3]\d|20\d\d[01]\d[0-3]\d)(?!\d)")
_SNAPSHOT = re.compile(r"-(?:\d{4}|\d{3})$")  # gpt-4-0613, mistral-large-2407, gemini-…-002
_VERSION = re.compile(r"-v\d+(?:[.:]\d+)+$")  # …-v0.3, bedrock …-v1:0
_REVISION = re.compile(r"@[0-9A-Za-z][\w.\-]*$")  # org/model@<revision or commit>
_TAG = re.compile(r":(?P<tag>[\w.\-]+)$")  # ollama/vLLM tags: llama3.1:8b-instruct-q4_0


def is_pinned(model: str) -> bool:
    """Whether `model` names a fixed snapshot rather than a moving alias.

    The rule, in order:

    1. A name ending in `latest` (`-latest`, `:latest`) is a moving alias: not pinned.
    2. A date stamp anywhere pins it: `YYYY-MM-DD` or `YYYYMMDD`
       (`gpt-4o-2024-08-06`, `claude-3-5-sonnet-20241022`).
    3. So does an explicit version suffix: a 4-digit snapshot `-MMDD`/`-YYMM`
       (`gpt-4-0613`, `mistral-large-2407`), a 3-digit revision (`gemini-1.5-pro-002`),
       `-vN.N` (`mistral-7b-instruct-v0.3`, `…-v1:0`), or `@revision` (`org/model@3f2a1b0`).
    4. So does an explicit tag after `:` (`llama3.1:8b-instruct-q4_0`): Ollama and vLLM
       serve exactly that build under that tag.

    Anything else (`gpt-4o`, `llama3.1`, `claude-3-5-sonnet`) is not pinned.
    """
    name = model.strip()
    if not name or name.lower().endswith("latest"):
        return False
    if _DATE.search(name):
        return True
    if _SNAPSHOT.search(name) or _VERSION.search(name) or _REVISION.search(name):
        return True
    return bool(_TAG.search(name))


def check_pin(model: str, *, allow_unpinned: bool = False) -> None:
    """Raise `ModelNotPinned` (with the fix) unless `model` is pinned or allowed."""
    if allow_unpinned or is_pinned(model):
        return
    raise ModelNotPinned(
        f"judge model {model!r} is not pinned: an alias can move to a new snapshot and change "
        "every verdict without any change on our side. Set EVALKEEPER_JUDGE_MODEL to a dated "
        "snapshot or versioned tag (e.g. gpt-4o-2024-08-06, claude-3-5-sonnet-20241022, "
        "llama3.1:8b-instruct-q4_0), or set EVALKEEPER_JUDGE_ALLOW_UNPINNED=true to accept it."
    )


def price_for(
    model: str, prices: Mapping[str, tuple[float, float]] = PRICES
) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for the longest matching prefix, or None."""
    best = max((p for p in prices if model.startswith(p)), key=len, default=None)
    return prices[best] if best is not None else None


def cost_of(
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    prices: Mapping[str, tuple[float, float]] = PRICES,
) -> float | None:
    price = price_for(model, prices)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


# -- endpoint limits ----------------------------------------------------------------------


class Limiter(Protocol):
    """What a judge request goes through before it is sent: `slot()` is one request's turn
    (entered before the request, left when its answer is in), `pause(seconds)` holds new
    requests after a 429. `EndpointLimiter` (this process) and the shared limits of
    `tasks/limits.py` (every worker, through Prefect) are both one."""

    def slot(self) -> AbstractAsyncContextManager[None]: ...

    def pause(self, seconds: float) -> None: ...


class SharedLimitsUnavailable(JudgeError, InputError):
    """`EVALKEEPER_JUDGE_SHARED_LIMITS=true` but nothing in this process can share limits."""


class EndpointLimiter:
    """Concurrency bound + requests-per-minute token bucket for one endpoint.

    Shared by every client of the same endpoint (and limits) in the process, across event
    loops and threads: the bucket is a reservation under a thread lock, and each event loop
    gets its own semaphore of the same size. The bucket holds up to
    `min(concurrency, rpm/60)` tokens (at least 1), so a burst of that size goes out at
    once and the long-run rate is `rpm`.
    """

    def __init__(
        self, concurrency: int, rpm: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.concurrency = concurrency
        self.rate = rpm / 60.0
        self.capacity = max(1.0, min(float(concurrency), self.rate))
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = self._semaphores[loop] = asyncio.Semaphore(self.concurrency)
            return sem

    def _reserve(self) -> float:
        """Take one token (possibly in advance); return how long to wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            return max(wait, self._paused_until - now)

    def pause(self, seconds: float) -> None:
        """Hold every new request to this endpoint for `seconds` (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One request's turn: a concurrency slot, then a rate token."""
        async with self._semaphore():
            wait = self._reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            yield


class LayeredLimiter:
    """The process's own limiter, then a shared one: a request holds both while it runs.

    The local limiter stays in front, so one process never sends more than its own limits
    however the shared ones behave, and a shared slot is only asked for by a request that
    is ready to go. A 429 pauses both."""

    def __init__(self, local: Limiter, shared: Limiter) -> None:
        self.local = local
        self.shared = shared

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.local.slot(), self.shared.slot():
            yield

    def pause(self, seconds: float) -> None:
        self.local.pause(seconds)
        self.shared.pause(seconds)


SharedLimits = Callable[[str, int, float, bool], Limiter | None]
"""`(base_url, concurrency, rpm, required)` -> the limiter shared by every process for
that endpoint, or None when there is none to share (`required` False: the setting is auto)."""

_LIMITERS: dict[tuple[str, int, float], EndpointLimiter] = {}
_LAYERED: dict[tuple[str, int, float, SharedLimits], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()
_SHARED: list[SharedLimits] = []


def use_shared_limits(source: SharedLimits | None) -> None:
    """Install the process's source of shared limits (None removes it). The flows install
    Prefect's (`tasks.limits.install`); the core alone has none."""
    with _LIMITERS_LOCK:
        _SHARED[:] = [] if source is None else [source]
        _LAYERED.clear()


def limiter_for(
    base_url: str, concurrency: int, rpm: float, *, shared: bool | None = False
) -> Limiter:
    """The process-wide limiter of an endpoint (keyed by base URL and its limits).

    `shared` False: this process's `EndpointLimiter` alone. True: layered with the shared
    limits of the installed source (`SharedLimitsUnavailable` when none is installed, or it
    has none). None (auto): layered when the source has shared limits to offer."""
    key = (base_url.rstrip("/"), concurrency, rpm)
    with _LIMITERS_LOCK:
        local = _LIMITERS.get(key)
        if local is None:
            local = _LIMITERS[key] = EndpointLimiter(concurrency, rpm)
        source = _SHARED[0] if _SHARED else None
        if shared is False:
            return local
        if source is not None:
            layered = _LAYERED.get((*key, source))
            if layered is not None:
                return layered
    other = source(key[0], concurrency, rpm, shared is True) if source is not None else None
    if other is None:
        if shared is True:
            raise SharedLimitsUnavailable(
                f"judge endpoint {base_url}: EVALKEEPER_JUDGE_SHARED_LIMITS=true, but this "
                "process has no shared limits: they live on a Prefect server, so run the "
                "suite through the flows with PREFECT_API_URL set, or unset "
                "EVALKEEPER_JUDGE_SHARED_LIMITS (auto) to use this process's limits alone"
            )
        return local
    with _LIMITERS_LOCK:
        assert source is not None
        return _LAYERED.setdefault((*key, source), LayeredLimiter(local, other))


# -- the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """One judge answer and what it cost."""

    text: str
    """The answer's text (the final one, after a repair request if there was one)."""
    parsed: Any
    """The answer as JSON (validated against `response_schema`), or None without a schema."""
    model: str
    """The model pin that was requested."""
    response_model: str | None
    """The model the endpoint says answered (may differ from the pin, e.g. behind a proxy)."""
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    """Latency of the answering request(s), excluding waits for limits and backoff."""
    wall_ms: float
    """Wall time of the whole `complete` call, waits and retries included."""
    cost_usd: float | None
    """Cost from `PRICES`, or None when the model's price is unknown."""
    requests: int
    """HTTP requests made: retries and the repair request included."""
    repaired: bool = False
    request_id: str | None = None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def _parse_json(text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):  # tolerate a fenced answer
        body = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", body)
    return json.loads(body)


_VALIDATORS: dict[str, Any] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    """A compiled validator per schema (checking the schema itself is the slow part)."""
    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS[key] = cls(dict(schema))
    return validator


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


class JudgeClient:
    """An OpenAI-compatible chat endpoint, used by the judges. Safe to share."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        allow_unpinned: bool = False,
        concurrency: int = 8,
        rpm: float = 600.0,
        max_retries: int = 4,
        timeout_s: float = 60.0,
        backoff_s: float = 0.5,
        prices: Mapping[str, tuple[float, float]] | None = None,
        breaker_failures: int = 8,
        breaker_cooldown_s: float = 30.0,
        shared_limits: bool | None = False,
    ) -> None:
        check_pin(model, allow_unpinned=allow_unpinned)
        self.base_url = base_url
        self.model = model
        # Local endpoints (Ollama, vLLM) take any key; the SDK insists on one.
        self._api_key = api_key or "not-needed"
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.prices: Mapping[str, tuple[float, float]] = PRICES if prices is None else prices
        self.concurrency = concurrency
        self.rpm = rpm
        self.shared_limits = shared_limits
        limiter_for(base_url, concurrency, rpm, shared=shared_limits)  # fails early if unmet
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI]
        self._clients = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        # circuit breaker: after `breaker_failures` calls in a row failed (after their
        # retries), calls fail at once for `breaker_cooldown_s`; then one may try again.
        self.breaker_failures = breaker_failures
        self.breaker_cooldown_s = breaker_cooldown_s
        self._failures = 0
        self._open_until = 0.0
        self._last_failure = ""

    @property
    def limiter(self) -> Limiter:
        """This endpoint's limiter, looked up per request: a source of shared limits
        installed after the client was made still applies."""
        return limiter_for(self.base_url, self.concurrency, self.rpm, shared=self.shared_limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> JudgeClient:
        if not settings.judge.base_url or not settings.judge.model:
            raise JudgeError(
                "judge not configured: set EVALKEEPER_JUDGE_BASE_URL and "
                "EVALKEEPER_JUDGE_MODEL (and EVALKEEPER_JUDGE_API_KEY)"
            )
        return cls(
            base_url=settings.judge.base_url,
            model=settings.judge.model,
            api_key=settings.judge.api_key.get_secret_value() if settings.judge.api_key else None,
            allow_unpinned=settings.judge.allow_unpinned,
            concurrency=settings.judge.concurrency,
            rpm=settings.judge.rpm,
            max_retries=settings.judge.max_retries,
            timeout_s=settings.judge.timeout_s,
            backoff_s=settings.runner.backoff_s,
            shared_limits=settings.judge.shared_limits,
        )

    def _client(self) -> openai.AsyncOpenAI:
        """One SDK client per event loop (its connection pool belongs to that loop)."""
        import openai

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = openai.AsyncOpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key,
                    max_retries=0,  # retries are ours: backoff, Retry-After, shared limits
                    timeout=self.timeout_s,
                )
            return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: base·2^attempt, times a factor in [0.5, 1)."""
        return min(MAX_BACKOFF_S, self.backoff_s * 2.0**attempt) * (0.5 + random.random() / 2)

    async def _request(
        self, messages: Sequence[Message], *, extra: Mapping[str, Any]
    ) -> tuple[ChatCompletion, float, int, str | None]:
        """`_attempts`, behind the circuit breaker."""
        with self._lock:
            open_for = self._open_until - time.monotonic()
            last = self._last_failure
        if open_for > 0:
            raise JudgeCallError(
                f"judge endpoint {self.base_url}: not called: the last {self._failures} calls "
                f"failed (last: {last}); calls resume in {open_for:.0f}s",
                requests=0,
            )
        try:
            result = await self._attempts(messages, extra=extra)
        except JudgeCallError as exc:
            with self._lock:
                self._failures += 1
                self._last_failure = str(exc)[:300]
                if self._failures >= self.breaker_failures:
                    self._open_until = time.monotonic() + self.breaker_cooldown_s
            raise
        with self._lock:
            self._failures = 0
        return result

    async def _attempts(
        self, messages: Sequence[Message], *, extra: Mapping[str, Any]
    ) -> tuple[ChatCompletion, float, int, str | None]:
        """One answer from the endpoint, with retries. Returns (completion, ms, requests, id)."""
        import openai  # imported on first use: it costs ~2 s, and most runs need no judge
        from openai.types.chat import ChatCompletion

        last = ""
        status: int | None = None
        for attempt in range(self.max_retries + 1):
            delay: float | None = None
            limiter = self.limiter
            async with limiter.slot():
                started = time.perf_counter()
                try:
                    raw = await self._client().chat.completions.with_raw_response.create(
                        model=self.model,
                        messages=cast(Any, list(messages)),
                        **extra,
                    )
                    completion = raw.parse()
                    ms = (time.perf_counter() - started) * 1000
                    if not isinstance(completion, ChatCompletion):
                        raise JudgeCallError(
                            f"judge endpoint {self.base_url}: unexpected response "
                            f"{type(completion).__name__}",
                            requests=attempt + 1,
                        )
                    return completion, ms, attempt + 1, raw.request_id
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    last = f"HTTP {status}: {exc.message}"
                    if status != 429 and status < 500 and status != 408:
                        raise JudgeCallError(
                            f"judge endpoint {self.base_url} refused model {self.model!r}: "
                            f"{last}. {_hint(status)}",
                            status=status,
                            requests=attempt + 1,
                        ) from exc
                    delay = _retry_after(exc.response.headers)
                    if delay is not None and delay > MAX_RETRY_AFTER_S:
                        raise JudgeCallError(
                            f"judge endpoint {self.base_url}: {last}; it asks to wait "
                            f"{delay:.0f}s (Retry-After), more than {MAX_RETRY_AFTER_S:.0f}s. "
                            "Lower EVALKEEPER_JUDGE_RPM / EVALKEEPER_JUDGE_CONCURRENCY.",
                            status=status,
                            requests=attempt + 1,
                        ) from exc
                    if status == 429 and delay is not None:
                        limiter.pause(delay)
                except openai.APIConnectionError as exc:  # includes timeouts
                    status = None
                    last = f"{type(exc).__name__}: {exc.message}"
            if attempt == self.max_retries:
                break
            wait = delay if delay is not None else self._backoff(attempt)
            log.debug("judge call failed (%s); retry %d in %.2fs", last, attempt + 1, wait)
            await asyncio.sleep(wait)
        raise JudgeCallError(
            f"judge endpoint {self.base_url} (model {self.model!r}) still failing after "
            f"{self.max_retries + 1} attempts; last error {last}. Check the endpoint, or raise "
            "EVALKEEPER_JUDGE_MAX_RETRIES / lower EVALKEEPER_JUDGE_RPM.",
            status=status,
            requests=self.max_retries + 1,
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        response_schema: Mapping[str, Any] | None = None,
        schema_name: str = "judgement",
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Ask the model; with `response_schema`, return its answer parsed and validated.

        Raises `JudgeCallError` when the endpoint keeps failing and `MalformedAnswer` when
        the answer does not match the schema after one repair request.
        """
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        if response_schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name,
                    "schema": dict(response_schema),
                    "strict": True,
                },
            }
        if temperature is not None:
            extra["temperature"] = temperature
        if seed is not None:
            extra["seed"] = seed
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens

        validator = _validator(response_schema) if response_schema is not None else None
        convo = list(messages)
        requests = 0
        latency = 0.0
        prompt_tokens: int | None = 0
        completion_tokens: int | None = 0
        for repair in (False, True):
            completion, ms, n, request_id = await self._request(convo, extra=extra)
            requests += n
            latency += ms
            usage = completion.usage
            prompt_tokens = _add(prompt_tokens, usage.prompt_tokens if usage else None)
            completion_tokens = _add(completion_tokens, usage.completion_tokens if usage else None)
            text = (completion.choices[0].message.content or "") if completion.choices else ""
            parsed: Any = None
            problem = None
            if validator is not None:
                try:
                    parsed = _parse_json(text)
                    validator.validate(parsed)
                except json.JSONDecodeError as exc:
                    problem = f"not JSON ({exc.msg} at position {exc.pos})"
                except jsonschema.ValidationError as exc:
                    problem = f"does not match the schema ({exc.message})"
            cost = cost_of(self.model, prompt_tokens, completion_tokens, self.prices)
            if problem is None:
                return Completion(
                    text=text,
                    parsed=parsed,
                    model=self.model,
                    response_model=completion.model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_ms=latency,
                    wall_ms=(time.perf_counter() - started) * 1000,
                    cost_usd=cost,
                    requests=requests,
                    repaired=repair,
                    request_id=request_id,
                )
            if repair:
                raise MalformedAnswer(
                    f"judge model {self.model!r} gave a malformed answer twice (the second "
                    f"after a repair request): {problem}; answer began {text[:80]!r}",
                    text=text,
                    requests=requests,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_usd=cost,
                )
            convo = [
                *messages,
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": REPAIR_INSTRUCTION.format(
                        problem=problem, schema=json.dumps(response_schema, sort_keys=True)
                    ),
                },
            ]
        raise AssertionError("unreachable")


def _hint(status: int) -> str:
    if status in (401, 403):
        return "Check EVALKEEPER_JUDGE_API_KEY."
    if status == 404:
        return "Check EVALKEEPER_JUDGE_BASE_URL (…/v1) and EVALKEEPER_JUDGE_MODEL."
    return "The request was refused; not retried."


_CLIENTS: dict[tuple[Any, ...], JudgeClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(settings: Settings) -> JudgeClient:
    """The shared `JudgeClient` for these settings (one per endpoint, model and limits)."""
    key = (
        settings.judge.base_url,
        settings.judge.model,
        settings.judge.api_key,
        settings.judge.allow_unpinned,
        settings.judge.concurrency,
        settings.judge.rpm,
        settings.judge.max_retries,
        settings.judge.timeout_s,
        settings.runner.backoff_s,
        settings.judge.shared_limits,
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = JudgeClient.from_settings(settings)
        return client


def forget_clients() -> None:
    """Drop the shared clients (and their circuit breakers), as a new process starts."""
    with _CLIENTS_LOCK:
        _CLIENTS.clear()
