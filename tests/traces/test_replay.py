"""`evalkeeper replay`: the demo agent run on a stored trace's inputs through the real
targets, runner and evaluators; the verdict says whether the failure reproduces."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.demo import agent as demo_agent
from evalkeeper.settings import Settings
from evalkeeper.traces.lookup import load_trace
from evalkeeper.traces.promote import promote
from evalkeeper.traces.replay import replay, verdict_of
from tests.traces.test_promote import REFERENCE, TRACE_ID, cli, psettings, source_file, stored

__all__ = ["psettings", "source_file", "stored"]  # fixtures shared with test_promote

_calls = itertools.count()


async def every_other_call_v2(inputs: dict[str, Any]) -> dict[str, Any]:
    """v1 and v2 in turn: a target whose answer to the same input changes between calls."""
    return demo_agent.respond(inputs, "v2" if next(_calls) % 2 else "v1")


async def always_raises(inputs: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("the booking API is down")


def _promoted(settings: Settings) -> None:
    trace = asyncio.run(load_trace(settings, TRACE_ID))
    promote(
        settings,
        trace,
        dataset="appointments",
        reference=REFERENCE,
        incident_id="INC-2041",
        category="cancellation",
    )


def test_v2_fails_every_time_on_a_promoted_trace(stored: Settings) -> None:
    _promoted(stored)
    code, out, err = cli(
        stored, "replay", TRACE_ID, "--target", "evalkeeper.demo.agent:v2", "--repeat", "3"
    )
    assert code == 1, out + err
    assert "deterministic" in out and "fails every time (3 of 3)" in out
    assert "dataset appointments" in out  # its evaluators, and the example's reference
    assert "reschedule_appointment" in out  # the new outputs beside the original
    assert "original" in out


def test_v1_does_not_reproduce_it_and_json_says_why(stored: Settings) -> None:
    _promoted(stored)
    code, out, err = cli(
        stored,
        "replay",
        TRACE_ID,
        "--target",
        "evalkeeper.demo.agent:v1",
        "--repeat",
        "2",
        "--format",
        "json",
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["verdict"] == "not_reproduced"
    assert report["failures"] == 0 and report["passes"] == 2
    assert report["original"]["outcome"] == "failed"  # the recorded answer was wrong
    assert any("tool_call_correct" in r for r in report["original"]["reasons"])
    for attempt in report["attempts"]:
        assert attempt["outputs"]["tool_calls"][0]["name"] == "cancel_appointment"
        assert {s["name"] for s in attempt["scores"]} >= {"tool_call_correct", "contains"}
    assert report["target"]["agent_version"] == "appointments-agent 1.4.0"


def test_a_target_that_changes_its_answer_fails_sometimes(stored: Settings) -> None:
    _promoted(stored)
    report = asyncio.run(
        replay(
            stored.model_copy(
                update={"runner": stored.runner.model_copy(update={"concurrency": 1})}
            ),
            asyncio.run(load_trace(stored, TRACE_ID)),
            target_spec=f"{__name__}:every_other_call_v2",
            repeat=4,
        )
    )
    assert report.verdict == "intermittent"
    assert (report.failures, report.passes) == (2, 2)
    assert "fails sometimes (2 of 4)" in report.message


def test_a_target_error_is_a_failure(stored: Settings) -> None:
    code, out, err = cli(
        stored, "replay", TRACE_ID, "--target", f"{__name__}:always_raises", "--repeat", "2"
    )
    assert code == 1, out + err
    assert "deterministic" in out and "the booking API is down" in out
    assert "reference-free" in out  # not promoted: latency_ok only


def test_unscorable_attempts_are_undetermined_never_a_pass(stored: Settings) -> None:
    # not promoted, so no reference: tool_call_correct cannot score
    code, out, err = cli(
        stored,
        "replay",
        TRACE_ID,
        "--target",
        "evalkeeper.demo.agent:v1",
        "--repeat",
        "2",
        "--evaluators",
        "tool_call_correct",
        "--format",
        "json",
    )
    assert code == 2, out + err
    report = json.loads(out)
    assert report["verdict"] == "undetermined" and report["unscored"] == 2
    assert all(a["scores"][0]["error"] for a in report["attempts"])


def test_before_promote_only_heuristics_ran_so_it_is_undetermined(stored: Settings) -> None:
    """Seen: the buggy v2 agent, replayed before `promote`, was scored by `latency_ok` only
    and replay said "not reproduced … the cause was elsewhere"."""
    code, out, err = cli(
        stored, "replay", TRACE_ID, "--target", "evalkeeper.demo.agent:v2", "--repeat", "2",
        "--format", "json",
    )  # fmt: skip
    assert code == 2, out + err
    report = json.loads(out)
    assert report["evaluators_from"] == "reference-free"
    assert (report["verdict"], report["passes"]) == ("undetermined", 2)
    assert "not reproduced" not in report["message"]
    assert "only latency_ok scored them" in report["message"]
    assert f"evalkeeper promote {TRACE_ID} --dataset NAME --reference" in report["message"]
    assert "--evaluators NAME" in report["message"]
    # naming a heuristic does not judge the complaint either
    code, out, _ = cli(
        stored, "replay", TRACE_ID, "--target", "evalkeeper.demo.agent:v1", "--repeat", "1",
        "--evaluators", "latency_ok,tool_error",
    )  # fmt: skip
    assert code == 2 and "undetermined" in out
    # once promoted with a reference, the same replay of v2 reproduces it
    _promoted(stored)
    code, out, _ = cli(
        stored, "replay", TRACE_ID, "--target", "evalkeeper.demo.agent:v2", "--repeat", "2"
    )
    assert code == 1 and "deterministic" in out


def test_bad_input_is_an_error_naming_the_fix(stored: Settings, tmp_path: Path) -> None:
    code, _, err = cli(stored, "replay", TRACE_ID, "--target", "nonsense")
    assert code == 2 and "expected module:function" in err
    code, _, err = cli(
        stored, "replay", TRACE_ID, "--target", "evalkeeper.demo.agent:v1", "--evaluators", "nope"
    )
    assert code == 2 and "unknown evaluator 'nope'" in err
    code, _, err = cli(stored, "replay", "missing", "--target", "evalkeeper.demo.agent:v1")
    assert code == 2 and "unknown trace 'missing'" in err


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [
        ((5, 0, 0), "deterministic"),
        ((2, 3, 0), "intermittent"),
        ((0, 5, 0), "not_reproduced"),
        ((0, 4, 1), "undetermined"),
        ((4, 0, 1), "undetermined"),
        ((1, 3, 1), "intermittent"),
        ((0, 0, 5), "undetermined"),
    ],
)
def test_verdicts(counts: tuple[int, int, int], verdict: str) -> None:
    assert verdict_of(*counts)[0] == verdict
