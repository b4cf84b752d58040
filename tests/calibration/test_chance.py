"""Retirement that accounts for chance, on a real warehouse through `evalkeeper calibrate`.

A set that is 90% passes. One judge (factual_match) always says "pass": it agrees with the
humans as often as the constant-answer baseline, and its kappa is 0. Another
(tone_appropriate) follows the humans but for a few flips. The judges answer over HTTP
(the scripted server on 127.0.0.1); the labels are imported by the CLI. Every number the
CLI gives is checked against an independent computation on the stored labels (SQL and
statsmodels' `cohens_kappa`, the `krippendorff` package), and the retire rule is switched
through the environment: the agreement rule keeps the constant judge gating, the kappa
rule retires it."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from evalkeeper.warehouse import MIGRATIONS, Warehouse, schema_version
from tests.calibration.scenario import judge_settings, judged_run, write_scenario
from tests.report.browser import open_report

N = 200
runner = CliRunner()
FAST = {"EVALKEEPER_CALIBRATION_BOOTSTRAP_RESAMPLES": "500"}


def human(i: int) -> str:
    """The humans' label of example i: every tenth fails (90% pass)."""
    return "fail" if i % 10 == 0 else "pass"


def second_annotator(i: int) -> str:
    """h2 labels every fifth item: as h1, but it fails four items h1 passes (i % 50 == 5)."""
    return "fail" if i % 50 == 5 else human(i)


def _replay(path: Path, verdict: Any) -> Path:
    with path.open("w") as fh:
        for i in range(N):
            outputs = {"reply": f"answer {i} [[expect:{verdict(i)}]]"}
            fh.write(json.dumps({"id": f"ex-{i:04d}", "outputs": outputs, "latency_ms": 50.0}))
            fh.write("\n")
    return path


def _labels(path: Path, experiment: str, judge: str) -> Path:
    rows = []
    for i in range(N):
        base = {"experiment_id": experiment, "example_id": f"ex-{i:04d}", "judge": judge}
        rows.append({**base, "annotator": "h1", "label": human(i), "time": "2026-11-02T10:00:00Z"})
        if i % 5 == 0:
            rows.append(
                {**base, "annotator": "h2", "label": second_annotator(i),
                 "time": "2026-11-02T10:00:00Z"}
            )  # fmt: skip
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("chance")
    with ScriptedLLMServer(policy=Policy(error_rates={"tone_appropriate": 0.03})) as server:
        s = judge_settings(root, server)
        write_scenario(root, N)  # the dataset
        constant = _replay(root / "constant.jsonl", lambda i: "pass")
        faithful = _replay(root / "faithful.jsonl", human)
        judged_run(s, constant, "const", ["factual_match"])
        judged_run(s, faithful, "faith", ["tone_appropriate"])
        for exp, judge in (("const", "factual_match"), ("faith", "tone_appropriate")):
            out = runner.invoke(
                app,
                ["calibrate", "import", str(_labels(root / f"{judge}.csv", exp, judge)),
                 "--warehouse", str(s.warehouse)],
            )  # fmt: skip
            assert out.exit_code == 0, out.output
        yield s


def calibrate(world: Settings, *args: str, **env: str) -> dict[str, dict[str, Any]]:
    out = runner.invoke(
        app,
        ["calibrate", "report", "--format", "json", *args, "--warehouse", str(world.warehouse)],
        env={**FAST, **env},
    )
    assert out.exit_code == 0, out.output
    return {j["judge"]: j for j in json.loads(out.stdout)["judges"]}


def _read(world: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(world.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def pairs(world: Settings, judge: str) -> tuple[list[str], list[str]]:
    """(judge verdicts, majority human labels) of the items without a tie, read back from
    the stored scores and labels (independently of `measure`)."""
    rows = _read(
        world,
        "SELECT l.item_id, l.label, s.passed FROM human_labels l JOIN scores s "
        "ON s.evaluator = l.judge AND s.experiment_id = l.experiment_id "
        "AND s.example_id = l.example_id AND s.repetition = l.repetition "
        f"WHERE l.judge = '{judge}' ORDER BY l.item_id",
    )
    votes: dict[str, list[str]] = {}
    verdict: dict[str, str] = {}
    for item, label, passed in rows:
        votes.setdefault(item, []).append(label)
        verdict[item] = "pass" if passed else "fail"
    j, h = [], []
    for item, vs in votes.items():
        top = Counter(vs).most_common()
        if len(top) > 1 and top[0][1] == top[1][1]:
            continue
        j.append(verdict[item])
        h.append(top[0][0])
    return j, h


def _table(a: list[str], b: list[str]) -> np.ndarray:
    code = {"pass": 0, "fail": 1}
    t = np.zeros((2, 2), dtype=int)
    for x, y in zip(a, b, strict=True):
        t[code[x], code[y]] += 1
    return t


def test_the_constant_judge_agrees_exactly_as_much_as_its_baseline(world: Settings) -> None:
    cals = calibrate(world)
    fm, tone = cals["factual_match"], cals["tone_appropriate"]
    j, h = pairs(world, "factual_match")
    assert set(j) == {"pass"}  # the scripted judge always said pass
    # the baseline, independently: the share of the commonest majority label
    label, count = Counter(h).most_common(1)[0]
    assert fm["n_items"] == len(h) == N - 4  # the four split items are ties
    assert fm["baseline_label"] == label == "pass"
    assert fm["baseline"] == pytest.approx(count / len(h), abs=1e-12)
    # ... and the simulated constant judge's agreement on those labels is the baseline
    assert fm["agreement"] == pytest.approx(fm["baseline"], abs=1e-12)
    assert fm["beats_baseline"] is False
    lo, hi = fm["baseline_ci"]
    assert lo < fm["baseline"] < hi
    # kappa against statsmodels on the stored pairs: exactly zero for a constant judge
    ref = cohens_kappa(_table(j, h))
    assert fm["kappa"] == pytest.approx(ref.kappa, abs=1e-12) and ref.kappa == pytest.approx(0)
    # the agreement's interval is wholly above the bar: only the kappa floor holds it back,
    # and at_risk still gates
    assert fm["agreement_ci"][0] > 0.80 and fm["rule"] == "agreement"
    assert fm["status"] == "at_risk" and "kappa below the floor" in fm["reason"]
    assert "does not beat the constant-answer baseline 0.90 (always 'pass')" in fm["reason"]
    assert "(rule: agreement)" in fm["reason"]
    # the faithful judge beats the baseline; its kappa is statsmodels' too
    tj, th = pairs(world, "tone_appropriate")
    assert tone["beats_baseline"] is True and tone["agreement"] > tone["baseline"]
    assert tone["kappa"] == pytest.approx(cohens_kappa(_table(tj, th)).kappa, rel=1e-9)
    assert tone["status"] == "healthy" and "not beat" not in tone["reason"]


def test_without_the_kappa_floor_the_agreement_rule_calls_it_healthy(world: Settings) -> None:
    fm = calibrate(world, EVALKEEPER_CALIBRATION_KAPPA_FLOOR="-1")["factual_match"]
    assert fm["status"] == "healthy" and fm["rule"] == "agreement"
    assert fm["beats_baseline"] is False and "does not beat" in fm["reason"]


def test_the_kappa_rule_retires_the_constant_judge(world: Settings) -> None:
    cals = calibrate(world, EVALKEEPER_CALIBRATION_RULE="kappa")
    fm, tone = cals["factual_match"], cals["tone_appropriate"]
    assert fm["rule"] == "kappa" and fm["bar"] == pytest.approx(0.60)
    assert fm["status"] == "retired"
    # a constant judge's kappa is 0 in every resample: the bootstrap forms no interval and
    # the rule uses the asymptotic one (its SE is 0 too)
    assert fm["kappa_ci"] is None and fm["rule_interval"] == "asymptotic"
    assert fm["rule_ci"] == pytest.approx([0.0, 0.0], abs=1e-6)  # SE 0 up to rounding
    assert "kappa 0.00, 95% asymptotic interval [0.00, 0.00]" in fm["reason"]
    assert "the whole interval is below the bar 0.60 (rule: kappa)" in fm["reason"]
    assert tone["status"] == "healthy" and tone["rule_interval"] == "bca"
    assert tone["rule_ci"] == tone["kappa_ci"] and tone["rule_ci"][0] > 0.60


def test_the_kappa_rule_relative_to_the_human_ceiling(world: Settings) -> None:
    cals = calibrate(
        world, EVALKEEPER_CALIBRATION_RULE="kappa", EVALKEEPER_CALIBRATION_CEILING_SHARE="0.75"
    )
    fm = cals["factual_match"]
    # the ceiling, independently: the two annotators on the doubly labelled items
    rows = _read(
        world,
        "SELECT item_id, annotator, label FROM human_labels WHERE judge = 'factual_match' "
        "ORDER BY item_id, annotator",
    )
    by_item: dict[str, dict[str, str]] = {}
    for item, annotator, label in rows:
        by_item.setdefault(item, {})[annotator] = label
    doubled = [v for v in by_item.values() if len(v) == 2]
    ceiling_kappa = cohens_kappa(_table([v["h1"] for v in doubled], [v["h2"] for v in doubled]))
    assert fm["ceiling"]["kappa"] == pytest.approx(ceiling_kappa.kappa, rel=1e-9)
    code = {"pass": 0, "fail": 1}
    data = np.array([[code[v["h1"]] for v in doubled], [code[v["h2"]] for v in doubled]], float)
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert fm["ceiling"]["alpha"] == pytest.approx(alpha, rel=1e-9)
    # the bar: 0.75 x the humans' kappa
    assert fm["rule_share"] == 0.75 and fm["rule_ceiling"] == fm["ceiling"]["kappa"]
    assert fm["bar"] == pytest.approx(0.75 * ceiling_kappa.kappa)
    assert fm["status"] == "retired"
    said = f"the bar {fm['bar']:.2f} (0.75 x human ceiling kappa {ceiling_kappa.kappa:.2f})"
    assert said in fm["reason"] and "(rule: kappa, relative)" in fm["reason"]


def test_the_ac1_rule_does_not_see_the_constant_judge_the_baseline_does(world: Settings) -> None:
    """AC1's chance term is small when one label dominates, so a constant judge on a
    90%-pass set scores a high AC1; the baseline flag still says it does not beat always
    saying pass."""
    fm = calibrate(world, EVALKEEPER_CALIBRATION_RULE="ac1")["factual_match"]
    j, h = pairs(world, "factual_match")
    po = sum(a == b for a, b in zip(j, h, strict=True)) / len(h)
    pi = (j.count("pass") / len(j) + h.count("pass") / len(h)) / 2
    pe = 2 * pi * (1 - pi)  # sum over the two labels of pi_k (1 - pi_k) / (q - 1)
    assert fm["ac1"] == pytest.approx((po - pe) / (1 - pe), rel=1e-12)
    assert fm["rule"] == "ac1" and fm["rule_value"] == fm["ac1"]
    half = 1.959963984540054 * fm["ac1_se"]
    assert fm["rule_ci"] == pytest.approx([fm["ac1"] - half, fm["ac1"] + half])
    assert fm["ac1"] > 0.85 and fm["status"] == "healthy"
    assert fm["beats_baseline"] is False and "does not beat" in fm["reason"]


def test_recorded_baseline_and_rule_are_what_the_view_and_the_report_show(
    world: Settings, tmp_path: Path
) -> None:
    env = {"EVALKEEPER_CALIBRATION_RULE": "kappa"}
    cals = calibrate(world, "--record", **env)
    cols = (
        "judge, status, reason, baseline, baseline_label, baseline_ci_low, baseline_ci_high, "
        "beats_baseline, rule, rule_value, rule_ci_low, rule_ci_high, rule_interval, "
        "rule_share, rule_ceiling, bar, agreement"
    )
    rows = _read(world, f"SELECT {cols} FROM calibrations ORDER BY judge")
    stored = {r[0]: dict(zip(cols.split(", "), r, strict=True)) for r in rows}
    assert set(stored) == set(cals)
    for judge, c in cals.items():
        row = stored[judge]
        assert row["status"] == c["status"] and row["reason"] == c["reason"]
        assert row["baseline"] == c["baseline"] and row["baseline_label"] == c["baseline_label"]
        assert [row["baseline_ci_low"], row["baseline_ci_high"]] == c["baseline_ci"]
        assert row["beats_baseline"] == c["beats_baseline"]
        assert row["rule"] == "kappa" == c["rule"] and row["rule_value"] == c["rule_value"]
        assert [row["rule_ci_low"], row["rule_ci_high"]] == c["rule_ci"]
        assert row["rule_interval"] == c["rule_interval"] and row["rule_share"] is None
    assert stored["factual_match"]["status"] == "retired"
    (history,) = _read(
        world,
        "SELECT reason FROM judge_status_history WHERE judge = 'factual_match' "
        "AND status = 'retired'",
    )
    assert "(rule: kappa)" in history[0] and "does not beat" in history[0]

    # the HTML report, opened in Chromium: the baseline and the rule shown are the stored ones
    out = tmp_path / "calibration.html"
    done = runner.invoke(
        app,
        ["report", "--calibration", "--out", str(out), "--warehouse", str(world.warehouse)],
        env={**FAST, **env},
    )
    assert done.exit_code == 0, done.output
    with open_report(out) as opened:
        assert opened.console_errors == [] and opened.page_errors == []
        shown = {r[0]: r for r in opened.table("judges")}
        for judge, row in stored.items():
            cells = shown[judge]
            baseline = (
                f"{f2(row['baseline'])} [{f2(row['baseline_ci_low'])}–"
                f"{f2(row['baseline_ci_high'])}] always {row['baseline_label']}"
            )
            flag = " not beaten" if row["beats_baseline"] is False else ""
            assert cells[5] == baseline + flag
            assert cells[11] == row["status"]
            rule = (
                f"kappa {f2(row['rule_value'])} [{f2(row['rule_ci_low'])}–"
                f"{f2(row['rule_ci_high'])}] {row['rule_interval']}, bar {f2(row['bar'])}"
            )
            assert cells[12] == rule
        assert shown["factual_match"][12] == "kappa 0.00 [0.00–0.00] asymptotic, bar 0.60"
        fm = stored["factual_match"]
        text = opened.text()
        assert (
            f"factual_match {_version(world)}: agreement {fm['agreement']:.2f} does not beat "
            f"the constant-answer baseline {fm['baseline']:.2f} (always pass)"
        ) in text
        assert "kappa, absolute" in text  # the retire rule in the facts
        # one grey square per judge beside the agreement; the bar ticks move to kappa's chart
        assert opened.marks("agreement") == 2 * 4  # points, intervals, squares, diamonds
        assert opened.page.query_selector('[data-verdict="retired"]') is not None


def f2(x: float) -> str:
    """Two decimals as the report prints them (a rounding-size negative is 0.00)."""
    return f"{round(x, 2) + 0.0:.2f}"


def _version(world: Settings) -> str:
    ((version,),) = _read(
        world, "SELECT DISTINCT evaluator_version FROM scores WHERE evaluator = 'factual_match'"
    )
    return str(version)[:8]


def test_a_version_6_warehouse_keeps_its_calibrations_and_gains_the_columns(
    tmp_path: Path,
) -> None:
    from evalkeeper.warehouse import schema

    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))  # a warehouse as version 6 left it, with a calibration
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for version, statements in MIGRATIONS:
        if version > 6:
            continue
        for stmt in statements:
            con.execute(stmt)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute(
        "INSERT INTO judge_calibrations (calibration_id, judge, prompt_version, judge_model, "
        "quarter, n_items, n_ties, agreement, ceiling_n_items, bar, status, reason, created_at) "
        "VALUES ('c1', 'j', 'v1', 'm', '2026Q3', 120, 0, 0.7, 0, 0.8, 'retired', 'old', now())"
    )
    con.close()
    assert schema.SCHEMA_V7  # the migration that adds the columns
    wh = Warehouse(path)
    with wh.connect() as c:
        assert schema_version(c) == MIGRATIONS[-1][0]
    assert wh.rows(
        "SELECT judge, status, agreement, baseline, beats_baseline, rule, rule_share "
        "FROM calibrations"
    ) == [("j", "retired", 0.7, None, None, "agreement", None)]
