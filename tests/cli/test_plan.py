"""`evalkeeper plan` on a real warehouse with a real history: `evalkeeper run`s of a noisy
scripted target (examples with their own pass rates, repetitions drawn anew) and a scripted
LLM judge on 127.0.0.1; the estimates checked against SQL and statsmodels of their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from evalkeeper.analysis import planner as P
from evalkeeper.cli import app
from evalkeeper.cli.plan import _usd
from evalkeeper.llm import forget_clients
from evalkeeper.testing.llm_server import ScriptedLLMServer
from tests.helpers import write_dataset

runner = CliRunner()
N = 48
PRICED = "gpt-4o-mini-2024-07-18"
UNPRICED = "judge-model-2026-01-15"  # not in evalkeeper.llm.PRICES
EVALUATORS = '[[evaluators]]\nname = "exact_match"\nargs = { key = "reply" }\n\n'
EVALUATORS += '[[evaluators]]\nname = "factual_match"\n'


def _run(ds: Path, eid: str, *extra: str) -> None:
    out = runner.invoke(
        app,
        ["run", "--dataset", str(ds), "--experiment", eid, "--target", "tests.fake_targets:noisy",
         *extra],
    )  # fmt: skip
    assert out.exit_code in (0, 1), out.output


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """`w.duckdb`: a full run with 3 repetitions, two full runs with one, a smoke run, all
    of one target pin, judged by a priced model. `once.duckdb`: one full run, unpriced."""
    tmp = tmp_path_factory.mktemp("plan")
    ds = write_dataset(tmp / "noisy.jsonl", N, critical_every=12, config=EVALUATORS)
    mp = pytest.MonkeyPatch()
    try:
        with ScriptedLLMServer() as llm:
            for key, value in {
                "EVALKEEPER_GIT_BRANCH": "main",
                "EVALKEEPER_GIT_COMMIT": "0123456789abcdef",
                "EVALKEEPER_RETRIES": "0",
                "EVALKEEPER_JUDGE_MAX_RETRIES": "0",
                "EVALKEEPER_FLUSH_S": "0.2",
                "EVALKEEPER_JUDGE_BASE_URL": llm.base_url,
                "EVALKEEPER_JUDGE_API_KEY": "test-key",
                "EVALKEEPER_JUDGE_MODEL": PRICED,
                "EVALKEEPER_WAREHOUSE": str(tmp / "w.duckdb"),
            }.items():
                mp.setenv(key, value)
            forget_clients()
            _run(ds, "r1", "--suite", "full", "--repetitions", "3")
            _run(ds, "r2", "--suite", "full")
            _run(ds, "r3", "--suite", "smoke")
            _run(ds, "r4", "--suite", "full")
            mp.setenv("EVALKEEPER_WAREHOUSE", str(tmp / "once.duckdb"))
            mp.setenv("EVALKEEPER_JUDGE_MODEL", UNPRICED)
            forget_clients()
            _run(ds, "o1", "--suite", "full")
        yield {"w": tmp / "w.duckdb", "once": tmp / "once.duckdb"}
    finally:
        mp.undo()
        forget_clients()


def _sql(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _plan(path: Path, *args: str) -> dict[str, Any]:
    out = runner.invoke(
        app,
        ["plan", "--dataset", "noisy", "--detect", "0.1", "--format", "json",
         "--warehouse", str(path), *args],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_the_plan_reads_the_history_as_the_warehouse_has_it(history: dict[str, Path]) -> None:
    w = history["w"]
    plan = _plan(w)
    assert plan["status"] == "ok"
    assert [r["experiment_id"] for r in plan["runs"]] == ["r1", "r2", "r3", "r4"]
    ev = {e["evaluator"]: e for e in plan["evaluators"]}
    assert set(ev) == {"exact_match", "factual_match"}
    em = ev["exact_match"]

    # the pass rate is the latest run's, from SQL
    ((rate,),) = _sql(
        w,
        "SELECT avg(CAST(passed AS DOUBLE)) FROM scores WHERE experiment_id = 'r4' "
        "AND evaluator = 'exact_match' AND error IS NULL AND NOT skipped",
    )
    assert em["pass_rate"] == pytest.approx(rate)
    assert "r4" in em["notes"][0]

    # the correlation: r1's three repetitions, through statsmodels' ANOVA table
    import pandas as pd
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    rows = _sql(
        w,
        "SELECT example_id, CAST(passed AS INTEGER) FROM scores WHERE experiment_id = 'r1' "
        "AND evaluator = 'exact_match' AND error IS NULL AND NOT skipped",
    )
    frame = pd.DataFrame(rows, columns=["g", "y"])
    table = anova_lm(smf.ols("y ~ C(g)", data=frame).fit())
    msb, msw = table["mean_sq"].iloc[0], table["mean_sq"].iloc[1]
    assert em["icc"]["source"] == "repetitions"
    assert em["icc"]["value"] == pytest.approx((msb - msw) / (msb + 2 * msw))
    assert 0.3 < em["icc"]["value"] < 1.0  # the target's examples differ a lot

    # the discordance: consecutive runs of one pin, first repetitions, counted in Python
    outcome = {
        (str(e), str(x)): bool(p)
        for e, x, p in _sql(
            w,
            "SELECT experiment_id, example_id, arg_min(passed, repetition) FROM scores "
            "WHERE evaluator = 'exact_match' AND error IS NULL AND NOT skipped GROUP BY ALL",
        )
    }
    differ = paired = 0
    for a, b in (("r1", "r2"), ("r2", "r3"), ("r3", "r4")):
        shared = {x for e, x in outcome if e == a} & {x for e, x in outcome if e == b}
        paired += len(shared)
        differ += sum(outcome[(a, x)] != outcome[(b, x)] for x in shared)
    assert em["discordance_pairs"] == 3
    assert em["discordance"] == pytest.approx(differ / paired)

    # each option reaches the asked power and scales the judge calls of the latest run
    ((votes, rows_r4, cost, fresh),) = _sql(
        w,
        "SELECT count(*), (SELECT n_examples * repetitions FROM experiments "
        "WHERE experiment_id = 'r4'), sum(cost_usd) FILTER (WHERE NOT cached), "
        "count(*) FILTER (WHERE NOT cached AND cost_usd IS NOT NULL) "
        "FROM judge_votes WHERE experiment_id = 'r4' AND judge = 'factual_match'",
    )
    fm = ev["factual_match"]
    assert fm["usage"]["calls_per_example"] == pytest.approx(votes / rows_r4)
    assert fm["usage"]["cost_per_call_usd"] == pytest.approx(cost / fresh)
    for o in fm["options"] + em["options"]:
        if o["status"] == "ok":
            assert o["power"] >= 0.8
    for o in fm["options"]:
        if o["status"] == "ok":
            assert o["judge_calls"] == round(o["examples"] * o["repetitions"] * votes / rows_r4)
            assert o["cost_usd"] == pytest.approx(o["judge_calls"] * cost / fresh)
    assert all(o["judge_calls"] == 0 and o["cost_usd"] == 0 for o in em["options"])
    assert [o["repetitions"] for o in em["options"]] == [1, 2, 3, 5]

    # the smoke suite at its current size: what `run --suite smoke` selected
    ((smoke_n,),) = _sql(w, "SELECT n_examples FROM experiments WHERE experiment_id = 'r3'")
    smoke = {s["suite"]: s for s in em["suites"]}["smoke"]
    assert (smoke["examples"], smoke["repetitions"]) == (smoke_n, 1)
    # every evaluator x (categories + __all__) of the latest run, as compare would test
    ((evaluators, categories),) = _sql(
        w,
        "SELECT count(DISTINCT evaluator), count(DISTINCT category) FROM scores "
        "WHERE experiment_id = 'r4' AND NOT skipped",
    )
    assert plan["cells"] == evaluators * (categories + 1) == 2 * 5
    # at one repetition both shapes of the drop give the exact sign test's power
    probs = P.sign_probabilities(P.ExampleModel(em["pass_rate"], em["icc"]["value"]), 0.1, 1)
    assert smoke["power"] == pytest.approx(P.power_exact(smoke_n, probs, 0.05 / 10), abs=1e-9)
    full = {s["suite"]: s for s in em["suites"]}["full"]
    assert (full["examples"], full["repetitions"]) == (N, 1)


def test_the_table_says_the_same(history: dict[str, Path]) -> None:
    out = runner.invoke(
        app,
        ["plan", "--dataset", "noisy", "--detect", "0.1", "--warehouse", str(history["w"]),
         "--evaluator", "factual_match"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    plan = _plan(history["w"], "--evaluator", "factual_match")
    assert [e["evaluator"] for e in plan["evaluators"]] == ["factual_match"]
    assert "factual_match" in out.output and "exact_match:" not in out.output
    first = plan["evaluators"][0]["options"][0]
    assert f"{first['examples']:,}" in out.output
    assert first["cost_usd"] > 0 and _usd(first["cost_usd"]) in out.output
    assert "smoke suite now" in out.output and "approximations:" in out.output


def test_one_run_without_repetitions_assumes_and_says_how_to_measure(
    history: dict[str, Path],
) -> None:
    plan = _plan(history["once"])
    assert plan["status"] == "assumed"
    em = {e["evaluator"]: e for e in plan["evaluators"]}["exact_match"]
    assert em["icc"]["value"] is None
    assert [o["status"] for o in em["options"]] == ["ok", "inconclusive", "inconclusive",
                                                     "inconclusive"]  # fmt: skip
    assert any("--repetitions 2" in n for n in em["notes"])
    # the unpriced judge's dollars stay unknown, never $0
    fm = {e["evaluator"]: e for e in plan["evaluators"]}["factual_match"]
    assert fm["usage"]["cost_per_call_usd"] is None
    assert fm["options"][0]["judge_calls"] > 0 and fm["options"][0]["cost_usd"] is None
    out = runner.invoke(
        app,
        ["plan", "--dataset", "noisy", "--detect", "0.1", "--warehouse", str(history["once"])],
    )
    assert out.exit_code == 0 and "unknown" in out.output and "inconclusive" in out.output


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["--dataset", "nope", "--detect", "0.05"], "pass one of those to --dataset"),
        (["--dataset", "noisy", "--detect", "1.5"], "--detect 1.5: a drop in pass rate"),
        (["--dataset", "noisy", "--detect", "0"], "--detect 0: a drop in pass rate"),
        (["--dataset", "noisy", "--detect", "0.05", "--power", "1"], "--power 1"),
        (["--dataset", "noisy", "--detect", "0.05", "--evaluator", "x"], "pick one of"),
        (["--dataset", "noisy", "--detect", "0.05", "--runs", "0"], "--runs 0: at least 1"),
        (["--dataset", "noisy", "--detect", "0.05", "--cells", "0"], "--cells 0: at least 1"),
        (["--dataset", "noisy", "--detect", "0.05", "--format", "csv"], "--format"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_fix(
    history: dict[str, Path], args: list[str], fix: str
) -> None:
    out = runner.invoke(app, ["plan", *args, "--warehouse", str(history["w"])])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fix in lines[0], out.output


def test_no_warehouse_says_what_to_run(tmp_path: Path) -> None:
    out = runner.invoke(
        app,
        ["plan", "--dataset", "noisy", "--detect", "0.05", "--warehouse",
         str(tmp_path / "none.duckdb")],
    )  # fmt: skip
    assert out.exit_code == 2
    assert "--repetitions 2" in out.output and not (tmp_path / "none.duckdb").exists()


def test_no_completed_run_is_inconclusive() -> None:
    empty = P.plan_dataset(
        "noisy",
        runs=pl.DataFrame({"experiment_id": []}, schema={"experiment_id": str}),
        groups=pl.DataFrame(schema={"experiment_id": str, "evaluator": str, "example_id": str}),
        usage=pl.DataFrame(schema={"judge": str}),
        value_evaluators=[],
        suites=[],
        detect=0.05,
        power=0.8,
        alpha=0.05,
        tolerance=0.0,
    )
    assert empty.status == "inconclusive"
    assert "no completed run" in empty.notes[0] and "--repetitions 2" in empty.notes[0]
