"""The bundled sample traffic (`data/traces/`): its shape, as the monitoring demo relies on
it, and that its script writes it byte for byte."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections import Counter
from datetime import datetime

import pytest

from evalkeeper.traces.model import Trace
from evalkeeper.traces.redaction import BuiltinRedactor, RedactionConfig
from evalkeeper.traces.sources import JsonlSource
from tests.conftest import ROOT

TRACES = ROOT / "data" / "traces"
V1, V2 = "appointments-agent 1.4.0", "appointments-agent 1.5.0"


@pytest.fixture(scope="module")
def traffic() -> list[Trace]:
    traces, errors, _ = asyncio.run(JsonlSource(TRACES).read(None, max_traces=100_000))
    assert errors == []
    return traces


def _deploy() -> datetime:
    (deploy,) = json.loads((TRACES / "deploys.json").read_text())
    assert deploy["version"] == V2 and deploy["previous"] == V1
    return datetime.fromisoformat(deploy["time"])


def test_days_of_traffic_with_a_daily_cycle(traffic: list[Trace]) -> None:
    assert 3000 <= len(traffic) <= 6000
    assert len({t.trace_id for t in traffic}) == len(traffic)
    assert len({t.time.date() for t in traffic}) == 4
    hours = Counter(t.time.hour for t in traffic)
    night = sum(hours[h] for h in range(0, 5))
    afternoon = sum(hours[h] for h in range(12, 17))
    assert afternoon > 4 * night > 0


def test_v1_then_v2_after_the_deploy(traffic: list[Trace]) -> None:
    deploy = _deploy()
    assert {t.version for t in traffic if t.time < deploy} == {V1}
    assert {t.version for t in traffic if t.time >= deploy} == {V2}


def test_v2_is_slower_and_fails_its_tools_more(traffic: list[Trace]) -> None:
    def rates(version: str) -> tuple[float, float]:
        mine = [t for t in traffic if t.version == version]
        slow = sum((t.latency_ms or 0) > 1200 for t in mine) / len(mine)
        errors = sum(t.error is not None for t in mine) / len(mine)
        return slow, errors

    (slow1, err1), (slow2, err2) = rates(V1), rates(V2)
    assert slow2 > 3 * slow1 and slow1 > 0
    assert err2 > 3 * err1 and err1 > 0
    cancels = [t for t in traffic if t.version == V2 and t.error and "reschedule" in t.error]
    assert cancels and all(t.metadata["category"] == "cancellation" for t in cancels)


def test_a_share_of_the_user_turns_holds_pii(traffic: list[Trace]) -> None:
    redactor = BuiltinRedactor(RedactionConfig(), b"traffic-test-key")
    kinds: Counter[str] = Counter()
    with_pii = 0
    for t in traffic[:1000]:
        found = {f.kind for m in t.inputs["messages"] for f in redactor.redact(m["content"])[1]}
        kinds.update(found)
        with_pii += bool(found)
    assert 0.15 < with_pii / 1000 < 0.5
    assert kinds["EMAIL"] and kinds["PHONE"]


def test_the_script_writes_the_same_traffic() -> None:
    spec = importlib.util.spec_from_file_location("make_traffic", TRACES / "make_traffic.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    by_day = module.make(20261127, 900)
    first = sorted(by_day)[0]
    written = (TRACES / f"traffic-{first}.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.dumps(t, ensure_ascii=False) for t in by_day[first]] == written
