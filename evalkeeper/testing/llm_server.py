"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, for tests and benchmarks.

It is a real HTTP server (FastAPI under uvicorn, in a background thread) answering
`POST /v1/chat/completions` the way OpenAI, vLLM or Ollama do, so the judge code under test
is the production code with the official `openai` client.

How it decides what to answer:

- **The correct verdict** comes from a marker in the request's messages:
  `[[expect:pass]]` or `[[expect:fail]]` (any choice name), put by a test into an example's
  outputs or reference outputs, which the judge renders into its prompt. Without a marker
  the verdict is `pass`. `[[unsupported:some claim]]` markers become the answer's
  `unsupported_claims` (for the groundedness judge).
- **The answer's shape** follows the request's `response_format` JSON schema: `verdict`
  gets the verdict (an `enum` gives the other choices), `reasoning` a sentence, arrays the
  unsupported claims, other strings "".
- **Noise**: with `Policy.error_rate` p, a vote is flipped to a wrong choice with
  probability p (`Policy.error_rates` sets p per judge, by the response schema's name).
  The draw is seeded by `Policy.seed`, the first two messages (the judge
  prompt, without any repair turn) and the request's `seed` (the judges send the vote
  index), so vote *i* of an example gets the same answer in every run, in any order.
- **Failures**, consumed in this order per request: `rate_limit` next requests get 429
  (with `Retry-After: retry_after` when set), `server_errors` next requests get 500,
  `fail_status` answers every request with that status; `malformed` next answers (or all,
  with `always_malformed`) are prose instead of JSON. `latency_s` delays every answer.
- **Overlap**: the server counts the requests it is answering at once (`max_in_flight`).
  With `Policy.hold_until_concurrent` n, an answer waits (at most `HOLD_LIMIT_S`) until n
  requests have been in flight together, so a test sees overlap whatever the machine's speed.
- **Usage**: `count_tokens(text) = len(text) // 4 + 1`, over all message contents for the
  prompt and over the answer for the completion.

Every request is recorded (`requests`: time, status, body) and counted (`calls`).
`SpawnedLLMServer` runs the same server in a child process, controlled over HTTP
(`/_control/reset`, `/_control/stats`), for benchmarks where the server's CPU must not
compete with the client's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from evalkeeper.testing.serving import ThreadedUvicorn

HOLD_LIMIT_S = 10.0
"""The longest an answer waits for `hold_until_concurrent` (then it answers anyway)."""
EXPECT = re.compile(r"\[\[expect:([\w\-]+)\]\]")
UNSUPPORTED = re.compile(r"\[\[unsupported:(.+?)\]\]")


def count_tokens(text: str) -> int:
    return len(text) // 4 + 1


def marker(verdict: str) -> str:
    """The text a test puts into an example so that the server's correct verdict is `verdict`."""
    return f"[[expect:{verdict}]]"


@dataclass
class Policy:
    """How the server behaves; change fields between phases of a test (under `server.lock`)."""

    error_rate: float = 0.0
    seed: int = 0
    latency_s: float = 0.0
    rate_limit: int = 0
    retry_after: float | None = 1.0
    server_errors: int = 0
    fail_status: int | None = None
    malformed: int = 0
    always_malformed: bool = False
    hold_until_concurrent: int = 0
    error_rates: dict[str, float] = field(default_factory=dict)
    """Per judge (its response schema's name without `_verdict`), instead of `error_rate`."""


@dataclass
class Recorded:
    at: float
    status: int
    body: dict[str, Any]
    verdict: str | None = None


@dataclass
class ScriptedLLMServer:
    """Start with `with ScriptedLLMServer() as server:`; `server.base_url` ends in `/v1`."""

    policy: Policy = field(default_factory=Policy)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.app = self._build_app()
        self._in_flight = 0
        self._max_in_flight = 0
        self._serving: ThreadedUvicorn | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ScriptedLLMServer:
        self._serving = ThreadedUvicorn(
            self.app, host=self.host, backlog=512, name="scripted LLM server"
        )
        self.port = self._serving.start()
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection -----------------------------------------------------------------------

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests answered at once since the last `reset`."""
        with self.lock:
            return self._max_in_flight

    def reset(self, policy: Policy | None = None) -> None:
        with self.lock:
            self.requests.clear()
            self._max_in_flight = 0
            if policy is not None:
                self.policy = policy

    def statuses(self) -> list[int]:
        with self.lock:
            return [r.status for r in self.requests]

    # -- behaviour ------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
                hold = self.policy.hold_until_concurrent
            try:
                status, payload, headers, latency = self._answer(body)
                if latency:
                    await asyncio.sleep(latency)
                await self._hold(hold)
                return JSONResponse(payload, status_code=status, headers=headers)
            finally:
                with self.lock:
                    self._in_flight -= 1

        @app.post("/_control/reset")
        async def control_reset(request: Request) -> dict[str, Any]:
            """Clear the record; install `{"policy": {...}}` when given (else keep the policy)."""
            policy = (await request.json()).get("policy")
            self.reset(None if policy is None else Policy(**policy))
            return {"ok": True}

        @app.get("/_control/stats")
        async def control_stats() -> dict[str, Any]:
            return {"calls": self.calls, "statuses": self.statuses()}

        return app

    async def _hold(self, until_concurrent: int) -> None:
        """Wait until `until_concurrent` requests have been in flight together."""
        deadline = time.monotonic() + HOLD_LIMIT_S
        while until_concurrent and time.monotonic() < deadline:
            with self.lock:
                if self._max_in_flight >= until_concurrent:
                    return
            await asyncio.sleep(0.005)

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str], float]:
        with self.lock:
            p = self.policy
            status, headers = 200, {}
            if p.rate_limit > 0:
                p.rate_limit -= 1
                status = 429
                if p.retry_after is not None:
                    headers["Retry-After"] = f"{p.retry_after:g}"
            elif p.server_errors > 0:
                p.server_errors -= 1
                status = 500
            elif p.fail_status is not None:
                status = p.fail_status
            malformed = False
            if status == 200 and (p.always_malformed or p.malformed > 0):
                malformed = True
                p.malformed = max(0, p.malformed - 1)
            record = Recorded(at=time.monotonic(), status=status, body=body)
            self.requests.append(record)
            latency = p.latency_s
            error_rate, seed, error_rates = p.error_rate, p.seed, dict(p.error_rates)
        if status != 200:
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            error = {"error": {"message": f"scripted {status}", "type": kind, "code": kind}}
            return status, error, headers, latency

        messages = body.get("messages") or []
        texts = [str(m.get("content") or "") for m in messages]
        joined = "\n".join(texts)
        found = EXPECT.findall(joined)
        expected = found[-1] if found else "pass"
        json_schema = (body.get("response_format") or {}).get("json_schema") or {}
        schema = json_schema.get("schema") or {}
        judge = str(json_schema.get("name") or "").removesuffix("_verdict")
        error_rate = error_rates.get(judge, error_rate)
        props: dict[str, Any] = schema.get("properties") or {}
        choices = list((props.get("verdict") or {}).get("enum") or ["pass", "fail"])
        digest = hashlib.sha256(
            json.dumps([seed, texts[:2], body.get("seed")], sort_keys=True).encode()
        ).hexdigest()
        verdict = expected
        if error_rate and random.Random(digest).random() < error_rate:
            wrong = [c for c in choices if c != expected] or [expected]
            verdict = wrong[int(digest[:8], 16) % len(wrong)]
        record.verdict = verdict
        claims = UNSUPPORTED.findall(joined)
        if malformed:
            content = f"Sure! I think the verdict is {verdict}, because it looks right."
        elif props:
            answer: dict[str, Any] = {}
            for name, prop in props.items():
                if name == "verdict":
                    answer[name] = verdict
                elif name == "reasoning":
                    answer[name] = f"scripted judge: expected {expected}, answering {verdict}."
                elif prop.get("type") == "array":
                    answer[name] = claims
                else:
                    answer[name] = ""
            content = json.dumps(answer)
        else:
            content = verdict
        payload = {
            "id": f"chatcmpl-{digest[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": count_tokens(joined),
                "completion_tokens": count_tokens(content),
                "total_tokens": count_tokens(joined) + count_tokens(content),
            },
        }
        return 200, payload, {"x-request-id": f"req-{digest[:12]}"}, latency


class SpawnedLLMServer:
    """The same server in a child process (its own interpreter, so its CPU does not compete
    with the client's), driven over HTTP: `reset(policy)`, `calls`, `statuses()`."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> SpawnedLLMServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "evalkeeper.testing.llm_server"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"scripted LLM server did not start (said {line!r})")
        self.base_url = line
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def __enter__(self) -> SpawnedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _control(self) -> str:
        return self.base_url.removesuffix("/v1") + "/_control"

    def reset(self, policy: Policy | None = None) -> None:
        body = {"policy": None if policy is None else dataclasses.asdict(policy)}
        httpx.post(f"{self._control()}/reset", json=body, timeout=10).raise_for_status()

    def _stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self._control()}/stats", timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    @property
    def calls(self) -> int:
        return int(self._stats()["calls"])

    def statuses(self) -> list[int]:
        return [int(s) for s in self._stats()["statuses"]]


def serve_forever() -> None:  # pragma: no cover - manual use
    """`python -m evalkeeper.testing.llm_server`: run one until stopped, printing its URL."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with ScriptedLLMServer() as server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    serve_forever()
