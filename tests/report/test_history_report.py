"""The experiment report's history, flipping rows, latency and judge usage sections, built
from real experiments (the CLI's `run`, a drifting target, a scripted judge on 127.0.0.1)
and opened in headless Chromium; every number shown is checked against SQL of its own."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.llm import forget_clients
from evalkeeper.report.html.history import pct, usd
from evalkeeper.testing.llm_server import ScriptedLLMServer
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse import history as wh_history
from tests.helpers import write_dataset
from tests.report.browser import open_report

runner = CliRunner()
N = 30
UNPRICED = "judge-model-2026-01-15"  # not in evalkeeper.llm.PRICES: cost unknown
PRICED = "gpt-4o-mini-2024-07-18"
# (experiment, wrong replies, judge fails, broken calls, added ms, judge model)
RUNS = [
    ("h1", "0,1,2", "3", "", "0", UNPRICED),
    ("h2", "0,1", "3,4", "", "0", UNPRICED),
    ("h3", "0,1,2", "3,9", "", "0", UNPRICED),
    ("h4", "0,5,6,7", "3,4,8", "29", "15", PRICED),
]
EVALUATORS = '[[evaluators]]\nname = "exact_match"\nargs = { key = "reply" }\n\n'
EVALUATORS += '[[evaluators]]\nname = "latency_ok"\n\n[[evaluators]]\nname = "factual_match"\n'


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four experiments of one suite and dataset, run through the CLI; h3 is h4's baseline."""
    tmp = tmp_path_factory.mktemp("history")
    ds = write_dataset(tmp / "d.jsonl", N, config=EVALUATORS)
    mp = pytest.MonkeyPatch()
    try:
        with ScriptedLLMServer() as llm:
            for key, value in {
                "EVALKEEPER_WAREHOUSE": str(tmp / "w.duckdb"),
                "EVALKEEPER_GIT_BRANCH": "main",
                "EVALKEEPER_GIT_COMMIT": "0123456789abcdef",
                "EVALKEEPER_RETRIES": "0",
                "EVALKEEPER_JUDGE_MAX_RETRIES": "0",
                "EVALKEEPER_FLUSH_S": "0.2",
                "EVALKEEPER_JUDGE_BASE_URL": llm.base_url,
                "EVALKEEPER_JUDGE_API_KEY": "test-key",
            }.items():
                mp.setenv(key, value)
            for eid, wrong, judge_fail, broken, slow, model in RUNS:
                mp.setenv("HISTORY_WRONG", wrong)
                mp.setenv("HISTORY_JUDGE_FAIL", judge_fail)
                mp.setenv("HISTORY_BROKEN", broken)
                mp.setenv("HISTORY_SLOW_MS", slow)
                mp.setenv("EVALKEEPER_JUDGE_MODEL", model)
                if eid == "h4":  # two judge calls fail: errored votes, no usage, no price
                    with llm.lock:
                        llm.policy.server_errors = 2
                forget_clients()
                out = runner.invoke(
                    app, ["run", "--dataset", str(ds), "--suite", "full", "--experiment", eid,
                          "--target", "tests.report.history_targets:drifting"],
                )  # fmt: skip
                assert out.exit_code in (0, 1), out.output  # h4 has a broken call
        report = tmp / "h4.html"
        out = runner.invoke(app, ["report", "h4", "--out", str(report), "--json"])
        assert out.exit_code == 0, out.output
        yield report
    finally:
        mp.undo()
        forget_clients()


def _sql(report: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(report.parent / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_history_sections_show_the_warehouse_in_a_browser(warehouse: Path) -> None:
    report = warehouse
    rates = {
        (e, ev): (p, n)
        for e, ev, p, n in _sql(
            report,
            "SELECT experiment_id, evaluator, avg(CAST(passed AS DOUBLE)), count(passed) "
            "FROM scores WHERE NOT skipped AND error IS NULL GROUP BY ALL",
        )
    }
    # flips, counted in Python from the raw rows
    status: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for e, ex, ev, passed in _sql(
        report,
        "SELECT experiment_id, example_id, evaluator, bool_and(passed) FROM scores "
        "WHERE NOT skipped AND error IS NULL AND passed IS NOT NULL GROUP BY ALL",
    ):
        status[(str(ex), str(ev))][str(e)] = bool(passed)
    order = [r[0] for r in RUNS]
    expected_flips = {}
    for key, by_run in status.items():
        seq = [by_run[e] for e in order if e in by_run]
        n = sum(a != b for a, b in itertools.pairwise(seq))
        if n:
            expected_flips[key] = (n, len(seq), "pass" if seq[-1] else "fail")
    assert expected_flips[("ex-00002", "exact_match")] == (3, 4, "pass")
    assert expected_flips[("ex-00004", "factual_match")][0] == 3

    p95 = {
        str(e): float(str(q))
        for e, q in _sql(
            report,
            "SELECT experiment_id, quantile_cont(latency_ms / 1000.0, 0.95) FROM runs "
            "WHERE error IS NULL GROUP BY ALL",
        )
    }
    errored = dict(_sql(report, "SELECT experiment_id, count(error) FROM runs GROUP BY ALL"))
    votes = {
        (str(e), str(j)): row
        for e, j, *row in _sql(
            report,
            "SELECT experiment_id, judge, count(*), count(*) FILTER (WHERE NOT cached), "
            "count(*) FILTER (WHERE cached), count(error), "
            "sum(prompt_tokens) FILTER (WHERE NOT cached), "
            "sum(completion_tokens) FILTER (WHERE NOT cached), "
            "sum(cost_usd) FILTER (WHERE NOT cached), "
            "count(*) FILTER (WHERE NOT cached AND cost_usd IS NULL) "
            "FROM judge_votes GROUP BY ALL",
        )
    }
    assert votes[("h3", "factual_match")][2] > 0  # unchanged outputs: answered from the cache

    with open_report(report) as o:
        assert o.console_errors == [] and o.page_errors == [] and o.requests_out == []
        assert o.marks("pass-rate-history") > 0
        assert o.marks("latency") > 0

        history = o.table("history")
        assert [r[1] for r in history] == order
        assert [r[5] for r in history] == ["", "", "baseline", "candidate"]
        evs = sorted(["exact_match", "factual_match", "latency_ok"])
        for row in history:
            for ev, cell in zip(evs, row[6:], strict=True):
                p, n = rates[(row[1], ev)]
                assert cell.startswith(f"{pct(float(str(p)))} [") and f"n={n}" in cell

        flips = o.table("flips")
        shown = {(r[0], r[1]): (int(r[2]), int(r[3]), r[4]) for r in flips}
        assert shown == expected_flips
        counts = [v[0] for v in shown.values()]
        assert [int(r[2]) for r in flips] == sorted(counts, reverse=True)  # most flipping first
        pattern = {(r[0], r[1]): r[5] for r in flips}
        assert pattern[("ex-00002", "exact_match")] == "✗✓✗✓"
        assert f"{len(expected_flips)} (example, evaluator) rows" in o.text(
            '[data-summary="flips"]'
        )

        latency = {r[0]: r for r in o.table("latency")}
        for side, eid in (("candidate", "h4"), ("baseline", "h3")):
            row = latency[side]
            assert row[1] == eid
            assert row[3] == str(errored[eid])
            assert row[6] == f"{p95[eid]:.3f} s"
        assert latency["candidate"][3] == "1"  # the broken call: counted, left out
        assert latency["candidate"][7] == "1.200 s"

        usage = {(r[0], r[1]): r for r in o.table("judge-usage")}
        for side, eid in (("candidate", "h4"), ("baseline", "h3")):
            row = usage[(side, "factual_match")]
            v, fresh, cached, errors, pt, ct, cost, unpriced = votes[(eid, "factual_match")]
            assert [int(x.replace(",", "")) for x in row[3:9]] == [
                v, fresh, cached, errors, pt or 0, ct or 0,
            ]  # fmt: skip
            assert row[9] == usd(float(str(cost or 0)), int(str(fresh)), int(str(unpriced)))
        assert usage[("baseline", "factual_match")][9].startswith("unknown")
        candidate = usage[("candidate", "factual_match")]
        assert candidate[5] == "0"  # a new model: all fresh
        assert candidate[6] == "2"  # the two failed calls: counted, not dropped
        assert candidate[9].startswith("≥ $") and "(2 calls without a price)" in candidate[9]


def test_flips_are_capped_and_the_rest_counted(warehouse: Path) -> None:
    wh = Warehouse(warehouse.parent / "w.duckdb")
    with wh.reading() as con:
        ids = ["h1", "h2", "h3", "h4"]
        evs = ["exact_match", "factual_match", "latency_ok"]
        every = wh_history.flips(con, ids, evs, limit=1000)
        two = wh_history.flips(con, ids, evs, limit=2)
    assert every.total_rows == every.top.height > 2
    assert two.top.height == 2 and two.total_rows == every.total_rows
    assert two.total_flips == every.total_flips == int(every.top["flips"].sum())
    assert two.top["flips"].to_list() == every.top["flips"].to_list()[:2]


def test_cost_is_unknown_never_zero() -> None:
    assert usd(0.0, 4, 4).startswith("unknown")
    assert usd(0.012, 4, 1) == "≥ $0.0120 (1 calls without a price)"
    assert usd(0.012, 4, 0) == "$0.0120"
    assert usd(0.0, 0, 0) == "$0.0000"  # every vote cached: nothing spent now


def test_the_history_is_the_last_runs_and_always_the_baseline(warehouse: Path) -> None:
    wh = Warehouse(warehouse.parent / "w.duckdb")
    with wh.reading() as con:
        last_two = wh_history.history_runs(con, "h4", "h3", limit=2)
        old_base = wh_history.history_runs(con, "h4", "h1", limit=2)
        of_h2 = wh_history.history_runs(con, "h2", "h1", limit=20)
    assert last_two["experiment_id"].to_list() == ["h3", "h4"]
    assert old_base["experiment_id"].to_list() == ["h1", "h3", "h4"]  # the baseline, older
    assert of_h2["experiment_id"].to_list() == ["h1", "h2"]  # nothing after the run itself
