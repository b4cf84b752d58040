"""Flaky rows end to end: real runs of a scripted target (`tests.fake_targets:
flips_on_fortieth`, wrong on every other call of its critical examples), then the
`row_stability` view, `evalkeeper flaky` and the guard of a real comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from evalkeeper.analysis import compare
from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.helpers import run_suite, write_dataset

TARGET = "tests.fake_targets:flips_on_fortieth"


def test_a_target_that_flips_on_its_critical_rows(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = write_dataset(tmp_path / "flip.jsonl", 80, critical_every=40)  # ex-00000, ex-00040
    for night in range(3):  # three runs of three repetitions: both outcomes every run
        run_suite(
            settings, dataset=str(ds), suite="full", target=TARGET, repetitions=3,
            experiment_id=f"night-{night}",
        )  # fmt: skip
    wh = Warehouse.from_settings(settings)
    view = wh.query("SELECT * FROM row_stability WHERE evaluator = 'exact_match'")
    assert view.height == 80
    flaky = view.filter(view["stability"] == "flaky").sort("example_id")
    assert flaky["example_id"].to_list() == ["ex-00000", "ex-00040"]
    counted = wh.rows(
        "SELECT count(*), count(*) FILTER (WHERE passed) FROM scores "
        "WHERE evaluator = 'exact_match' AND example_id = 'ex-00000'"
    )[0]
    row = flaky.row(0, named=True)
    assert (row["observations"], row["passes"], row["runs"]) == (*counted, 3)
    assert 0 < row["passes"] < row["observations"] == 9
    lo, hi = proportion_confint(row["passes"], 9, method="wilson")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert row["critical"] is True and row["agent_version"] is None
    # 78 rows always right over 9 observations: too few to call stable (35 needed)
    assert set(view.filter(view["stability"] != "flaky")["stability"]) == {"insufficient"}

    out = CliRunner().invoke(
        app, ["flaky", "--format", "json", "--warehouse", str(settings.warehouse)]
    )
    assert out.exit_code == 0, out.output
    listed = [(r["example_id"], r["evaluator"]) for r in json.loads(out.stdout)]
    assert listed == [("ex-00000", "exact_match"), ("ex-00040", "exact_match")]

    # the baseline passes, then one candidate repetition fails: flaky, too few to judge
    monkeypatch.setenv("FAKE_FLIP", "pass")
    run_suite(settings, dataset=str(ds), suite="full", target=TARGET, experiment_id="base")
    monkeypatch.setenv("FAKE_FLIP", "fail")
    run_suite(settings, dataset=str(ds), suite="full", target=TARGET, experiment_id="cand")
    c = compare(wh, "cand", "base", settings)
    assert {r.example_id for r in c.row_regressions} == {"ex-00000", "ex-00040"}
    assert {r.guard for r in c.row_regressions} == {"flaky_undecided"}
    assert c.verdict == "inconclusive"
    assert sum("too few repetitions for the 3-of-3 rule" in r for r in c.reasons) == 2
    for r in c.row_regressions:  # the history: the three nights and the baseline
        assert r.history is not None and r.history.runs == 4
        assert r.history.observations == 10 and r.history.stability == "flaky"
