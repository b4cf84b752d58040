"""The bundled appointments dataset and the deterministic demo agent (v1 good, v2 regressed).

The pass check is computed here, independently of the evaluators package: a row passes when
the output's tool calls match the reference's as a multiset of names (each reference call
matched to a distinct output call whose args contain the reference args) and every
`must_include` string is in the reply, case-insensitively.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.demo import agent as demo_agent
from tests.helpers import SAMPLE_CATEGORIES

DATASET = Path(__file__).resolve().parents[2] / "data" / "datasets" / "appointments.jsonl"
TOOLS = {
    "check_availability",
    "book_appointment",
    "cancel_appointment",
    "reschedule_appointment",
    "escalate_to_human",
}
REASONS = {"billing", "complaint", "medical", "legal", "other"}


def load_rows() -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(DATASET.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"line {n} is blank"
        rows.append(json.loads(line))
    return rows


ROWS = load_rows()


def tool_calls_match(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    if Counter(c["name"] for c in got) != Counter(c["name"] for c in expected):
        return False

    def assign(i: int, used: frozenset[int]) -> bool:
        if i == len(expected):
            return True
        want = expected[i]
        for j, call in enumerate(got):
            if j in used or call["name"] != want["name"]:
                continue
            args = call.get("args") or {}
            if all(k in args and args[k] == v for k, v in want["args"].items()) and assign(
                i + 1, used | {j}
            ):
                return True
        return False

    return assign(0, frozenset())


def passes(outputs: dict[str, Any], reference: dict[str, Any]) -> bool:
    reply = outputs["reply"].casefold()
    return tool_calls_match(outputs["tool_calls"], reference["tool_calls"]) and all(
        s.casefold() in reply for s in reference["must_include"]
    )


IN_FLIGHT = {"now": 0, "max": 0}  # agent calls awaiting their answer / the most at once


async def _timed(fn: Any, inputs: dict[str, Any]) -> tuple[dict[str, Any], float]:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
    start = time.perf_counter()
    try:
        out = await fn(inputs)
    finally:
        IN_FLIGHT["now"] -= 1
    return out, time.perf_counter() - start


async def _run_all() -> dict[str, list[tuple[dict[str, Any], float]]]:
    calls = [_timed(fn, row["inputs"]) for fn in (demo_agent.v1, demo_agent.v2) for row in ROWS]
    results = await asyncio.gather(*calls)
    return {"v1": results[: len(ROWS)], "v2": results[len(ROWS) :]}


@pytest.fixture(scope="module")
def runs() -> dict[str, list[tuple[dict[str, Any], float]]]:
    return asyncio.run(_run_all())


def test_agents_answer_concurrently(runs: dict[str, list[tuple[dict[str, Any], float]]]) -> None:
    """The simulated latency is an `asyncio.sleep`, not a blocking one: every call of the
    batch was waiting at once (a blocking agent would never overlap)."""
    assert {"now": 0, "max": 2 * len(ROWS)} == IN_FLIGHT


def rates(
    outputs: list[tuple[dict[str, Any], float]], category: str | None = None
) -> tuple[float, str]:
    total = good = 0
    per: dict[str, list[int]] = {}
    for row, (out, _) in zip(ROWS, outputs, strict=True):
        cat = row["metadata"]["category"]
        ok = passes(out, row["reference_outputs"])
        per.setdefault(cat, [0, 0])
        per[cat][0] += ok
        per[cat][1] += 1
        if category is None or cat == category:
            total += 1
            good += ok
    table = ", ".join(f"{c}: {p}/{n}" for c, (p, n) in sorted(per.items()))
    return good / total, table


# -- the dataset ----------------------------------------------------------------------------


def test_every_row_has_the_fields() -> None:
    ids = set()
    for row in ROWS:
        assert set(row) == {"id", "inputs", "reference_outputs", "metadata"}, row.get("id")
        rid = row["id"]
        assert isinstance(rid, str) and rid and rid not in ids, rid
        ids.add(rid)

        inputs = row["inputs"]
        assert isinstance(inputs["messages"], list) and inputs["messages"], rid
        for m in inputs["messages"]:
            assert m["role"] in {"user", "assistant"} and isinstance(m["content"], str), rid
            assert m["content"].strip(), rid
        assert inputs["messages"][-1]["role"] == "user", rid
        assert re.fullmatch(r"C-\d{4}", inputs["customer_id"]), rid
        assert isinstance(inputs["context"], list), rid
        for passage in inputs["context"]:
            assert isinstance(passage["id"], str) and passage["text"].strip(), rid

        ref = row["reference_outputs"]
        assert isinstance(ref["reply"], str) and ref["reply"].strip(), rid
        assert 1 <= len(ref["must_include"]) <= 3, rid
        for s in ref["must_include"]:
            assert isinstance(s, str) and s.casefold() in ref["reply"].casefold(), (rid, s)
        assert isinstance(ref["tool_calls"], list), rid
        for call in ref["tool_calls"]:
            assert call["name"] in TOOLS and isinstance(call["args"], dict), rid
            args = call["args"]
            if "date" in args:
                assert re.fullmatch(r"2026-12-\d{2}", args["date"]), rid
            if "time" in args:
                assert re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", args["time"]), rid
            if call["name"] == "escalate_to_human":
                assert args["reason"] in REASONS, rid
            if call["name"] == "book_appointment":
                assert args["customer_id"] == inputs["customer_id"], rid
            if call["name"] in {"cancel_appointment", "reschedule_appointment"}:
                assert re.fullmatch(r"A-\d+", args["appointment_id"]), rid

        meta = row["metadata"]
        assert meta["category"] in SAMPLE_CATEGORIES, rid
        assert isinstance(meta["critical"], bool), rid
        if meta["category"] in {"policy_question", "small_talk"}:
            assert ref["tool_calls"] == [], rid
        if meta["category"] in {"policy_question", "cancellation"}:
            assert inputs["context"], f"{rid}: needs retrieved passages"


def test_size_categories_and_incidents() -> None:
    assert len(ROWS) >= 96
    counts = Counter(r["metadata"]["category"] for r in ROWS)
    assert set(counts) == SAMPLE_CATEGORIES
    assert min(counts.values()) >= 12, counts

    incidents = [r for r in ROWS if r["metadata"]["incident_id"]]
    assert len(incidents) >= 12
    for r in incidents:
        meta = r["metadata"]
        assert meta["critical"] is True, r["id"]
        assert re.fullmatch(r"INC-\d{4}", meta["incident_id"]), r["id"]
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", meta["promoted_from_run"])
    assert sum(r["metadata"]["category"] == "cancellation" for r in incidents) >= 4
    assert len({r["metadata"]["category"] for r in incidents}) >= 4
    for r in ROWS:
        if not r["metadata"]["incident_id"]:
            assert r["metadata"]["promoted_from_run"] is None, r["id"]


# -- the agents -----------------------------------------------------------------------------


def test_pins_name_agent_version_and_dated_model() -> None:
    for fn, version in ((demo_agent.v1, "1.4.0"), (demo_agent.v2, "1.5.0")):
        pin = fn.__evalkeeper_pin__  # type: ignore[attr-defined]
        assert pin["agent_version"] == f"appointments-agent {version}"
        assert re.search(r"\d{4}-\d{2}-\d{2}", pin["model"])
        assert inspect.iscoroutinefunction(fn)


def test_output_shape(runs: dict[str, list[tuple[dict[str, Any], float]]]) -> None:
    for version in ("v1", "v2"):
        for row, (out, _) in zip(ROWS, runs[version], strict=True):
            assert set(out) == {"reply", "tool_calls"}, row["id"]
            assert isinstance(out["reply"], str) and out["reply"], row["id"]
            for call in out["tool_calls"]:
                assert call["name"] in TOOLS and isinstance(call["args"], dict), row["id"]


def test_v1_is_good(runs: dict[str, list[tuple[dict[str, Any], float]]]) -> None:
    rate, table = rates(runs["v1"])
    assert rate >= 0.93, f"v1 pass rate {rate:.2f} ({table})"
    cancel_rate, table = rates(runs["v1"], "cancellation")
    assert cancel_rate >= 0.9, f"v1 cancellation {cancel_rate:.2f} ({table})"


def test_v2_regresses_cancellation_only(
    runs: dict[str, list[tuple[dict[str, Any], float]]],
) -> None:
    rate, table = rates(runs["v2"], "cancellation")
    assert rate <= 0.4, f"v2 cancellation pass rate {rate:.2f} ({table})"
    for row, (a, _), (b, _) in zip(ROWS, runs["v1"], runs["v2"], strict=True):
        if row["metadata"]["category"] != "cancellation":
            assert a == b, f"{row['id']}: v2 differs from v1 outside cancellation"


def test_v2_fails_incidents_that_v1_passes(
    runs: dict[str, list[tuple[dict[str, Any], float]]],
) -> None:
    regressed = [
        row["id"]
        for row, (a, _), (b, _) in zip(ROWS, runs["v1"], runs["v2"], strict=True)
        if row["metadata"]["incident_id"]
        and passes(a, row["reference_outputs"])
        and not passes(b, row["reference_outputs"])
    ]
    assert len(regressed) >= 3, regressed


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def test_latency(runs: dict[str, list[tuple[dict[str, Any], float]]]) -> None:
    planned_v1 = [demo_agent.latency_seconds(r["inputs"], "v1") for r in ROWS]
    planned_v2 = [demo_agent.latency_seconds(r["inputs"], "v2") for r in ROWS]
    assert all(0.020 <= s <= 0.250 for s in planned_v1)
    slow = [s for s in planned_v2 if s > 1.0]
    assert all(1.3 <= s <= 1.6 for s in slow)
    assert 0.05 < len(slow) / len(ROWS) <= 0.12
    assert _p95(planned_v1) < 0.3 and _p95(planned_v2) > 1.2
    # Measured: a sleep never ends early, so the slow path shows up in the measured p95.
    assert _p95([t for _, t in runs["v2"]]) > 1.2


def test_deterministic() -> None:
    for row in ROWS[::7]:
        for version in ("v1", "v2"):
            first = demo_agent.respond(row["inputs"], version)
            assert demo_agent.respond(json.loads(json.dumps(row["inputs"])), version) == first
            assert demo_agent.latency_seconds(row["inputs"], version) == (
                demo_agent.latency_seconds(row["inputs"], version)
            )
