"""Judge-corrected pass rates end to end: two judges answered over HTTP by the scripted
server on 127.0.0.1 (one accurate, one close to a coin), human labels imported and the
calibration recorded through the CLI, then `evalkeeper compare` (JSON, table, markdown),
the `corrected_pass_rates` view and the HTML report opened in headless Chromium. Every
corrected number is checked against a computation of its own from the raw rows: the
judge's verdicts and the humans' labels, the formula written out here."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.report.corrected import row_cells
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tests.calibration.scenario import (
    judge_settings,
    judged_run,
    truth,
    write_labels,
    write_scenario,
)
from tests.report.browser import open_report

N = 300
Z = 1.959963984540054
runner = CliRunner()
# the coin-like judge stays at risk (not retired) at this bar, so it keeps its cells
ENV = {"EVALKEEPER_CALIBRATION_BAR": "0.5"}


class World:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.wh = ["--warehouse", str(settings.warehouse)]
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}


def cli(*args: str) -> str:
    out = runner.invoke(app, list(args), env=ENV)
    assert out.exit_code in (0, 1), out.stdout + out.stderr
    return out.stdout


def write_candidate(root: Path) -> Path:
    """The candidate's answers: every tenth correct answer now wrong."""
    path = root / "answers-cand.jsonl"
    with path.open("w") as fh:
        for i in range(N):
            verdict = "fail" if i % 10 == 0 else truth(i)
            outputs = {"reply": f"answer {i} [[expect:{verdict}]]"}
            fh.write(json.dumps({"id": f"ex-{i:04d}", "outputs": outputs, "latency_ms": 50.0}))
            fh.write("\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("corrected")
    policy = Policy(error_rates={"factual_match": 0.08, "tone_appropriate": 0.45})
    with ScriptedLLMServer(policy=policy) as server:
        w = World(root, judge_settings(root, server))
        _, replay = write_scenario(root, N)
        judges = ["factual_match", "tone_appropriate"]
        judged_run(w.settings, replay, "base", judges)
        judged_run(w.settings, write_candidate(root), "cand", judges)
        w.before = json.loads(
            cli("compare", "cand", "--baseline", "base", "--format", "json", *w.wh)
        )
        for judge in judges:
            cli(
                "calibrate",
                "import",
                str(write_labels(root / f"{judge}.csv", "base", judge, N)),
                *w.wh,
            )
        cli("calibrate", "report", "--record", *w.wh)
        w.after = json.loads(
            cli("compare", "cand", "--baseline", "base", "--format", "json", *w.wh)
        )
        yield w


def query(world: World, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(world.settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def rate(c: dict[str, Any], judge: str, side: str, category: str = "__all__") -> dict[str, Any]:
    (r,) = [
        r
        for r in c["corrected_rates"]
        if r["evaluator"] == judge and r["side"] == side and r["category"] == category
    ]
    return r


def expected(
    world: World, judge: str, experiment: str, category: str | None = None
) -> dict[str, float]:
    """The corrected rate computed here from the raw rows: the judge's verdicts on the
    labelled (base) run against the truth the humans labelled, and the run's pass rate."""
    verdicts = dict(
        query(
            world,
            "SELECT example_id, passed FROM scores WHERE experiment_id = 'base' AND evaluator = ?",
            [judge],
        )
    )
    human = {f"ex-{i:04d}": truth(i) == "pass" for i in range(N)}
    n_pass = sum(human.values())
    tp = sum(1 for ex, h in human.items() if h and verdicts[ex])
    n_fail = N - n_pass
    tn = sum(1 for ex, h in human.items() if not h and not verdicts[ex])
    rows = query(
        world,
        "SELECT passed FROM scores WHERE experiment_id = ? AND evaluator = ? "
        "AND ($3::VARCHAR IS NULL OR category = $3)",
        [experiment, judge, category],
    )
    n = len(rows)
    p = sum(1 for (x,) in rows if x) / n
    r, s = tp / n_pass, tn / n_fail
    j = r + s - 1
    theta = (p + s - 1) / j
    var = (
        p * (1 - p) / n + theta**2 * r * (1 - r) / n_pass + (1 - theta) ** 2 * s * (1 - s) / n_fail
    ) / j**2
    return {
        "raw": p,
        "tpr": r,
        "tnr": s,
        "n_pass": n_pass,
        "n_fail": n_fail,
        "j_low": j - Z * math.sqrt(r * (1 - r) / n_pass + s * (1 - s) / n_fail),
        "corrected": min(max(theta, 0), 1),
        "ci_low": min(max(theta - Z * math.sqrt(var), 0), 1),
        "ci_high": min(max(theta + Z * math.sqrt(var), 0), 1),
    }


def test_without_a_calibration_every_judge_rate_is_uncalibrated(world: World) -> None:
    rates = world.before["corrected_rates"]
    assert {r["evaluator"] for r in rates} == {"factual_match", "tone_appropriate"}
    assert len(rates) == 2 * 2 * 4  # judges x sides x (all + 3 categories)
    assert all(r["status"] == "uncalibrated" and r["corrected"] is None for r in rates)
    assert all("no calibration of this version" in r["reason"] for r in rates)
    assert all(r["raw"] is not None for r in rates)  # the raw rate is still shown


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_corrected_rates_equal_an_independent_computation(world: World, side: str) -> None:
    experiment = "base" if side == "baseline" else "cand"
    for category in (None, "booking"):
        got = rate(world.after, "factual_match", side, category or "__all__")
        want = expected(world, "factual_match", experiment, category)
        assert got["status"] == "corrected", got
        assert got["raw"] == pytest.approx(want["raw"])
        assert got["true_pass_rate"] == pytest.approx(want["tpr"])
        assert got["true_fail_rate"] == pytest.approx(want["tnr"])
        assert (got["n_human_pass"], got["n_human_fail"]) == (want["n_pass"], want["n_fail"])
        for key in ("corrected", "ci_low", "ci_high"):
            assert got[key] == pytest.approx(want[key], abs=1e-9), key
        assert got["se"] ** 2 == pytest.approx(got["se_sampling"] ** 2 + got["se_calibration"] ** 2)


def test_the_interval_covers_the_truth_and_the_raw_rate_does_not(world: World) -> None:
    true_base = sum(truth(i) == "pass" for i in range(N)) / N
    true_cand = sum(truth(i) == "pass" and i % 10 != 0 for i in range(N)) / N
    for side, true_rate in (("baseline", true_base), ("candidate", true_cand)):
        got = rate(world.after, "factual_match", side)
        assert got["ci_low"] <= true_rate <= got["ci_high"]
        assert abs(got["corrected"] - true_rate) < abs(got["raw"] - true_rate)


def test_a_judge_near_a_coin_is_uninformative_never_a_number(world: World) -> None:
    for side in ("baseline", "candidate"):
        got = rate(world.after, "tone_appropriate", side)
        want = expected(world, "tone_appropriate", "base")
        assert got["status"] == "uninformative"
        assert got["youden_j_ci_low"] == pytest.approx(want["j_low"]) and want["j_low"] <= 0.1
        assert got["corrected"] is None and got["ci_low"] is None and got["ci_high"] is None
        assert "almost no information" in got["reason"]
    # a looser threshold lets the same calibration through (the setting is read)
    out = runner.invoke(
        app,
        ["compare", "cand", "--baseline", "base", "--format", "json", *world.wh],
        env={**ENV, "EVALKEEPER_CORRECTED_MIN_J": "0"},
    )
    loose = rate(json.loads(out.stdout), "tone_appropriate", "baseline")
    assert (loose["status"] == "corrected") == (want["j_low"] > 0)


def test_the_verdict_stays_on_raw_paired_differences(world: World) -> None:
    assert world.after["verdict"] == world.before["verdict"]
    assert [c["diff"] for c in world.after["cells"]] == [c["diff"] for c in world.before["cells"]]


def test_table_and_markdown_show_the_rates_and_the_note(world: World) -> None:
    table = cli("compare", "cand", "--baseline", "base", *world.wh)
    got = rate(world.after, "factual_match", "candidate")
    assert "judge-corrected pass rates" in table
    flat = " ".join(table.split())
    assert "a paired difference between two runs scored by the same judge version is not" in flat
    assert f"{got['corrected']:.1%} ({got['ci_low']:.1%}, {got['ci_high']:.1%})" in table
    markdown = cli("compare", "cand", "--baseline", "base", "--format", "markdown", *world.wh)
    assert "### Judge-corrected pass rates" in markdown
    assert "| `tone_appropriate` | all | candidate |" in markdown
    line = next(x for x in markdown.splitlines() if x.startswith("| `tone_appropriate` | all | c"))
    assert "uninformative: J = TPR + TNR - 1" in line


def test_the_view_matches_compare(world: World) -> None:
    rows = query(
        world,
        "SELECT experiment_id, judge, pass_rate, correction, corrected_pass_rate, ci_low, "
        "ci_high, true_pass_rate, true_fail_rate, n_human_pass, n_human_fail "
        "FROM corrected_pass_rates ORDER BY experiment_id, judge",
    )
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("base", "factual_match", "corrected"),
        ("base", "tone_appropriate", "uninformative"),
        ("cand", "factual_match", "corrected"),
        ("cand", "tone_appropriate", "uninformative"),
    ]
    for eid, judge, p, _, corrected, lo, hi, tpr, tnr, n_pass, n_fail in rows:
        got = rate(world.after, judge, "baseline" if eid == "base" else "candidate")
        assert p == pytest.approx(got["raw"])
        assert (tpr, tnr) == (
            pytest.approx(got["true_pass_rate"]),
            pytest.approx(got["true_fail_rate"]),
        )
        assert (n_pass, n_fail) == (got["n_human_pass"], got["n_human_fail"])
        if judge == "factual_match":  # one repetition: the view's iid SE is compare's
            assert (corrected, lo, hi) == (
                pytest.approx(got["corrected"]),
                pytest.approx(got["ci_low"]),
                pytest.approx(got["ci_high"]),
            )
        else:
            assert corrected is None and lo is None and hi is None


def test_the_html_report_shows_the_computed_numbers(world: World) -> None:
    from evalkeeper.analysis.models import Comparison

    path = world.root / "report.html"
    cli("report", "cand", "--baseline", "base", "--out", str(path), *world.wh)
    c = Comparison.model_validate(world.after)
    with open_report(path) as o:
        assert o.console_errors == [] and o.page_errors == [] and o.requests_out == []
        shown = o.table("corrected")
        assert shown == [[str(v) for v in row_cells(c, r)] for r in c.corrected_rates]
        fm = rate(world.after, "factual_match", "candidate")
        (row,) = [x for x in shown if x[:3] == ["factual_match", "all", "candidate"]]
        assert row[5] == f"{fm['corrected']:.1%} ({fm['ci_low']:.1%}, {fm['ci_high']:.1%})"
        # factual_match's two sides x (raw, corrected) x (interval rule, point)
        assert o.marks("corrected") == 8
        assert "a constant judge error cancels" in o.text('[data-section="corrected"]')
