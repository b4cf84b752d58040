"""The demo's calibration act on a real warehouse (the scripted stand-in over HTTP on
127.0.0.1, the bundled labels), and the documented calibration queries against it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from evalkeeper.demo.calibration import CalibrationAct, calibration_act
from evalkeeper.report.output import make_console
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "warehouse.md"
QUERIES = re.findall(r"```sql calibration\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def act(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, CalibrationAct, str]:
    s = Settings(
        warehouse=tmp_path_factory.mktemp("act") / "w.duckdb",
        datasets_dir=ROOT / "data" / "datasets",
        git_commit="abc",
        git_branch="main",
    )
    console = make_console()
    with console.capture() as captured:
        result = asyncio.run(calibration_act(s, console))
    return s, result, captured.get()


def test_one_judge_healthy_one_retired_and_the_gate_ignores_the_retired(
    act: tuple[Settings, CalibrationAct, str],
) -> None:
    _, result, output = act
    status = {c.judge: c.status for c in result.calibrations}
    assert status == {"factual_match": "retired", "tone_appropriate": "healthy"}
    assert "factual_match" not in result.verdict_evaluators
    assert "tone_appropriate" in result.verdict_evaluators
    assert result.warnings[0].startswith("judge factual_match is retired (")
    assert "NOT an LLM" in output and "scripted stand-in on http://127.0.0.1:" in output
    # the ceiling comes from the 20 doubly-labelled items, two of which the annotators split
    fm = next(c for c in result.calibrations if c.judge == "factual_match")
    assert fm.ceiling.n_items == 20 and fm.ceiling.agreement == pytest.approx(0.9)
    assert fm.n_ties == 2 and fm.n_items == 98


def test_there_are_three_calibration_queries() -> None:
    assert len(QUERIES) == 3


@pytest.mark.parametrize("n", range(3))
def test_documented_query_runs_and_returns_rows(
    act: tuple[Settings, CalibrationAct, str], n: int
) -> None:
    frame = Warehouse.from_settings(act[0]).query(QUERIES[n])
    assert frame.height > 0, QUERIES[n]


def test_judge_health_says_who_gates(act: tuple[Settings, CalibrationAct, str]) -> None:
    frame = Warehouse.from_settings(act[0]).query(QUERIES[0])
    gating = dict(zip(frame["judge"], frame["gating"], strict=True))
    assert gating == {"factual_match": False, "tone_appropriate": True}
