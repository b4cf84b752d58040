"""The group-sequential test through real ticks: the boundary follows from the stored looks,
a rerun of a tick decides the same, and a tick with no new traffic spends nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from evalkeeper.analysis.group_sequential import boundaries, information
from evalkeeper.monitor.decision import EvaluatorDecision
from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, Window, open_window
from evalkeeper.settings import Settings
from tests.monitor.conftest import DEPLOY
from tests.monitor.monitor_traffic import SERVICE, traffic


def _latency(settings: Settings, hours: float) -> EvaluatorDecision:
    summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=hours)))
    (window,) = summary.windows
    return next(e for e in window.evaluators if e.evaluator == "latency_ok")


def test_a_window_ticked_rerun_and_ticked_without_traffic(
    mon_settings: Settings, traces_file: Path
) -> None:
    # unchanged traffic (5% slow, as the baseline), 100 traces an hour for 8 hours
    traffic(traces_file, version="v2", start=DEPLOY, hours=8, per_hour=100, slow_rate=0.05, seed=3)
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id="d-gs", time=DEPLOY
    )
    window = open_window(mon_settings, event, "cli").window
    assert window.config.method == "spending"
    seen = [_latency(mon_settings, h) for h in range(1, 9)]
    assert all(e.method == "spending" for e in seen)
    assert [e.decision for e in seen] == ["continue"] * 8
    analysed = [e for e in seen if e.analyses]
    assert analysed, "8 hours of 5% traffic reach 15 expected flags"
    first = analysed[0]
    # the first analysis's boundary, from its counts and time alone (alpha 0.05 over the
    # two evaluators, a tenth of it to the fast path)
    hours = seen.index(first) + 1
    (expected,) = boundaries(
        [information(first.window_n, first.baseline_n)], [hours / 24], 0.05 / 2 * 0.9, 0.1
    )
    assert first.threshold == pytest.approx(expected, rel=1e-9)
    last = seen[-1]

    # a rerun of the last tick reads the same stored looks and decides the same
    again = _latency(mon_settings, 8)
    assert (again.statistic, again.threshold, again.spent, again.analyses) == (
        last.statistic, last.threshold, last.spent, last.analyses,
    )  # fmt: skip

    # an hour later, no new traffic: not an analysis, nothing new spent
    later = _latency(mon_settings, 9)
    assert later.window_n == last.window_n
    assert (later.threshold, later.spent, later.analyses) == (
        last.threshold, last.spent, last.analyses,
    )  # fmt: skip
    assert "no new traffic since that analysis" in later.reason

    con = duckdb.connect(str(mon_settings.warehouse), read_only=True)
    try:
        stored = con.execute(
            "SELECT count(*), count(DISTINCT tick_at) FROM monitoring_counts "
            "WHERE window_id = ? AND evaluator = 'latency_ok'",
            [window.window_id],
        ).fetchone()
    finally:
        con.close()
    assert stored == (9, 9)  # the rerun replaced its tick's row


def test_a_window_stored_before_the_spending_test_keeps_the_mixture_test(
    mon_settings: Settings,
) -> None:
    event = DeployEvent(service=SERVICE, version="v2", deploy_id="d-old", time=DEPLOY)
    window = open_window(mon_settings, event, "cli").window
    row = window.row()
    config = json.loads(row["config"])
    del config["method"]  # as a window opened by an earlier version stored it
    row["config"] = json.dumps(config)
    assert Window.from_row(row).config.method == "mixture"
    assert Window.from_row(window.row()).config.method == "spending"
