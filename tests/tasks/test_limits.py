"""Shared judge limits without a server: the names and values of the limits, which limiter
a judge client gets for each setting, and the order a layered limiter takes its turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from evalkeeper import llm
from evalkeeper.llm import (
    EndpointLimiter,
    JudgeClient,
    LayeredLimiter,
    SharedLimitsUnavailable,
    limiter_for,
    use_shared_limits,
)
from tasks import limits
from tasks.limits import PrefectLimits, limit_names, limit_spec, shared_limits


@pytest.fixture
def no_source() -> Iterator[None]:
    """No source of shared limits installed during the test (the flows' is put back)."""
    use_shared_limits(None)
    try:
        yield
    finally:
        limits.install()


def test_limit_names_follow_the_endpoint_host() -> None:
    assert limit_names("https://api.openai.com/v1") == (
        "evalkeeper-judge-rpm-api.openai.com",
        "evalkeeper-judge-inflight-api.openai.com",
    )
    assert limit_names("http://127.0.0.1:8000/v1")[0] == "evalkeeper-judge-rpm-127.0.0.1-8000"
    # one host, one quota: another path shares the limits
    assert limit_names("https://proxy.example:4000/a/v1") == limit_names(
        "https://PROXY.example:4000/b/v1"
    )


def test_limit_values_scale_the_rate_by_the_slots_per_request() -> None:
    spec = limit_spec("https://api.openai.com/v1", concurrency=8, rpm=600.0)
    assert (spec.rate_limit, spec.rate_decay, spec.inflight_limit) == (80, 100.0, 8)
    slow = limit_spec("https://api.openai.com/v1", concurrency=8, rpm=30.0)
    assert (slow.rate_limit, slow.rate_decay) == (10, 5.0)  # a burst of at least 1


def test_the_tasks_package_installs_prefect_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    auto = limiter_for("http://127.0.0.1:7/v1", 3, 60.0, shared=None)
    assert isinstance(auto, LayeredLimiter) and isinstance(auto.shared, PrefectLimits)
    assert isinstance(auto.local, EndpointLimiter)
    assert limiter_for("http://127.0.0.1:7/v1", 3, 60.0, shared=True) is auto
    assert isinstance(limiter_for("http://127.0.0.1:7/v1", 3, 60.0), EndpointLimiter)


def test_auto_without_a_server_keeps_the_process_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert shared_limits("http://127.0.0.1:7/v1", 3, 60.0, False) is None
    assert isinstance(limiter_for("http://127.0.0.1:6/v1", 3, 60.0, shared=None), EndpointLimiter)
    with pytest.raises(SharedLimitsUnavailable, match="PREFECT_API_URL"):
        limiter_for("http://127.0.0.1:6/v1", 3, 60.0, shared=True)


def test_required_shared_limits_fail_the_client_early(no_source: None) -> None:
    with pytest.raises(SharedLimitsUnavailable, match="EVALKEEPER_JUDGE_SHARED_LIMITS"):
        JudgeClient(base_url="http://127.0.0.1:5/v1", model="m-2024-08-06", shared_limits=True)
    client = JudgeClient(base_url="http://127.0.0.1:5/v1", model="m-2024-08-06")
    assert isinstance(client.limiter, EndpointLimiter)


class Recording:
    """A `Limiter` that records its turns and pauses."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.log.append(f"{self.name} in")
        yield
        self.log.append(f"{self.name} out")

    def pause(self, seconds: float) -> None:
        self.log.append(f"{self.name} pause {seconds:g}")


def test_a_layered_limiter_takes_the_local_turn_first(no_source: None) -> None:
    log: list[str] = []
    use_shared_limits(lambda url, c, rpm, required: Recording("shared", log))
    layered = limiter_for("http://127.0.0.1:4/v1", 2, 60.0, shared=None)
    assert isinstance(layered, LayeredLimiter)
    layered.local = Recording("local", log)

    async def one() -> None:
        async with layered.slot():
            log.append("call")

    asyncio.run(one())
    layered.pause(2.0)
    assert log == [
        "local in", "shared in", "call", "shared out", "local out",
        "local pause 2", "shared pause 2",
    ]  # fmt: skip
    assert llm.limiter_for("http://127.0.0.1:4/v1", 2, 60.0, shared=None) is layered
