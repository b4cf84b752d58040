"""Flaky rows (`evalkeeper.analysis.stability`, the `row_stability` view, the guard's k-of-N
rule) on real warehouse files holding a simulated history with known flip rates.

The independent computations: statsmodels' `proportion_confint(method="wilson")` for every
interval, and the binomial distribution (scipy) for how often each class must come out;
tolerances are four binomial standard errors of the number of simulated rows."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from evalkeeper.analysis import compare
from evalkeeper.analysis.stability import classify, classify_rows, wilson
from evalkeeper.report import render_markdown
from evalkeeper.settings import AnalysisSettings, Settings
from evalkeeper.warehouse import Warehouse, save_comparison
from tests.analysis.test_compare import T0, ids, passes, write_examples, write_experiment

DEFAULTS = AnalysisSettings(_env_file=None)  # type: ignore[call-arg]
Z_TOL = 4.0
"""Tolerance in binomial standard errors (a false alarm about 6e-5 per check)."""


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_wait_s=2.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", _env_file=None)  # type: ignore[call-arg]


def within(observed: int, m: int, prob: float) -> bool:
    """`observed` of `m` is within Z_TOL binomial standard errors of `m * prob` (with half a
    count of slack for probabilities at 0 or 1)."""
    se = math.sqrt(m * prob * (1 - prob))
    return abs(observed - m * prob) <= Z_TOL * se + 0.5


# -- the interval and the rule --------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_is_statsmodels_wilson(confidence: float) -> None:
    for n in (1, 2, 3, 5, 12, 36, 100, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert wilson(k, n, confidence) == pytest.approx((lo, hi), abs=1e-12), (k, n)


def test_the_classes_at_their_edges() -> None:
    """With ε = 0.10 at 95%, 35 agreeing observations make a stable row, 34 do not (the
    docstring's figure); a flip seen is flaky unless the interval proves it rare."""
    c = {"confidence": 0.95, "tolerance": 0.10}
    assert classify(35, 35, **c) == "stable_pass" and classify(34, 34, **c) == "insufficient"
    assert classify(0, 35, **c) == "stable_fail" and classify(0, 34, **c) == "insufficient"
    assert classify(1, 2, **c) == "flaky" and classify(35, 36, **c) == "flaky"
    assert classify(0, 0, **c) == "insufficient"
    # a rare flip over many observations is stable: the fail rate's bound is under ε
    lo, _ = proportion_confint(990, 1000, alpha=0.05, method="wilson")
    assert 1 - lo <= 0.10 and classify(990, 1000, **c) == "stable_pass"
    # stable needs the bound, not the point estimate: 9 of 10 is flaky
    assert classify(9, 10, **c) == "flaky"


# -- a simulated history with known flip rates ----------------------------------------------

TRUTH = (1.0, 0.0, 0.5, 0.2, 0.97)
"""The pass probability of each block of examples."""
PER_CLASS = 60
RUNS, REPS = 12, 3


def simulate(wh: Warehouse, seed: int = 21) -> np.ndarray:
    """RUNS experiments of REPS repetitions on one dataset version and pin; examples in
    blocks of PER_CLASS pass with the probabilities of TRUTH. Returns each example's p."""
    rng = np.random.default_rng(seed)
    p = np.repeat(np.array(TRUTH), PER_CLASS)
    n = p.size
    write_examples(wh, n, critical={0: "INC-1"})
    for run in range(RUNS):
        outcome = (rng.random((n, REPS)) < p[:, None]).astype(float)
        write_experiment(wh, f"run-{run:02d}", {"exact": outcome}, started=T0 + timedelta(days=run))
    return p


def test_a_simulated_history_is_classified_as_its_flip_rates_say(wh: Warehouse) -> None:
    p = simulate(wh)
    view = wh.query("SELECT * FROM row_stability ORDER BY example_id")
    assert view.height == p.size
    n_obs = RUNS * REPS
    assert set(view["observations"]) == {n_obs} and set(view["runs"]) == {RUNS}
    by_truth = {t: view.filter(view["example_id"].is_in(ids(p.size)[i * PER_CLASS : (i + 1) * PER_CLASS])) for i, t in enumerate(TRUTH)}  # fmt: skip

    # deterministic rows: exactly stable (36 agreeing observations >= 35), never flaky
    assert set(by_truth[1.0]["stability"]) == {"stable_pass"}
    assert set(by_truth[0.0]["stability"]) == {"stable_fail"}

    # flipping rows: flaky exactly when both outcomes were seen (stable needs a bound that
    # these rates almost never give); how often, from the binomial distribution
    for t in (0.5, 0.2):
        rows = by_truth[t]
        both = 1 - t**n_obs - (1 - t) ** n_obs
        flaky = int((rows["stability"] == "flaky").sum())
        assert within(flaky, PER_CLASS, both), (t, flaky)
        # a row flipping more than ε of the time is called stable at most (1 - conf) / 2
        stable = int(rows["stability"].is_in(["stable_pass", "stable_fail"]).sum())
        bound = PER_CLASS * 0.025 + Z_TOL * math.sqrt(PER_CLASS * 0.025 * 0.975)
        assert stable <= bound, (t, stable)

    # a rare flip (3%, under ε): stable_pass only when all 36 passed, else seen and flaky
    rows = by_truth[0.97]
    stable = int((rows["stability"] == "stable_pass").sum())
    assert within(stable, PER_CLASS, 0.97**n_obs), stable
    assert set(rows["stability"]) <= {"stable_pass", "flaky"}

    # every interval is statsmodels' Wilson interval on the row's counts
    for r in view.iter_rows(named=True):
        lo, hi = proportion_confint(r["passes"], r["observations"], method="wilson")
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
        assert r["passes"] + r["fails"] == r["observations"]

    # coverage of the true rate: the share of intervals holding it is Wilson's exact coverage
    # at n = 36 (summed over the binomial distribution with statsmodels' bounds)
    for t in (0.5, 0.2, 0.97):
        rows = by_truth[t]
        covered = int(((rows["ci_low"] <= t) & (t <= rows["ci_high"])).sum())
        k = np.arange(n_obs + 1)
        lo, hi = proportion_confint(k, n_obs, method="wilson")
        exact = float(np.sum(st.binom.pmf(k, n_obs, t) * ((lo <= t) & (t <= hi))))
        assert within(covered, PER_CLASS, exact), (t, covered, exact)


def test_python_and_the_view_agree(wh: Warehouse) -> None:
    """The view's interval and class are what `classify_rows` computes from its counts with
    the default settings, on every row: several pins, errored rows, a second dataset."""
    simulate(wh)
    rng = np.random.default_rng(5)
    other = (rng.random((40, 2)) < 0.6).astype(float)
    other[:5, 0] = np.nan  # errors: counted, left out of the rate
    write_experiment(
        wh, "other-pin", {"exact": other, "tone": other}, started=T0 - timedelta(days=1)
    )
    with wh.connect() as con:
        con.execute(
            "UPDATE experiments SET agent_version = '2.0' WHERE experiment_id = 'other-pin'"
        )
    view = wh.query("SELECT * FROM row_stability")
    assert view.filter(view["agent_version"] == "2.0").height == 80
    assert int(view.filter(view["agent_version"] == "2.0")["errors"].sum()) == 10
    again = classify_rows(view.to_dicts(), DEFAULTS)
    assert {r["stability"] for r in again} >= {
        "stable_pass",
        "stable_fail",
        "flaky",
        "insufficient",
    }
    for mine, theirs in zip(again, view.to_dicts(), strict=True):
        assert mine["stability"] == theirs["stability"], theirs
        for col in ("pass_rate", "ci_low", "ci_high"):
            assert mine[col] == pytest.approx(theirs[col], abs=1e-12)
    # other thresholds: the Python side follows the settings, the view keeps the defaults
    strict = AnalysisSettings(flaky_tolerance=0.01, _env_file=None)  # type: ignore[call-arg]
    assert all(r["stability"] != "stable_pass" for r in classify_rows(view.to_dicts(), strict))


# -- the per-row guard ----------------------------------------------------------------------

N = 150
FLAKY = 7  # the guarded example that flips in its history


def guarded_history(wh: Warehouse, *, flaky: bool) -> np.ndarray:
    """Examples (FLAKY is incident INC-7), six earlier nightly runs of the same pin in which
    FLAKY passes half the time when `flaky`, always otherwise, then the baseline (it
    passes). Returns the baseline's outcomes."""
    rng = np.random.default_rng(11)
    write_examples(wh, N, critical={FLAKY: "INC-7"})
    base = passes(rng, N, 0.8)
    base[FLAKY] = 1
    for night in range(6):
        outcome = base.copy()
        outcome[FLAKY] = (night % 2) if flaky else 1
        write_experiment(
            wh, f"night-{night}", {"exact": outcome}, started=T0 - timedelta(days=6 - night)
        )
    write_experiment(wh, "base", {"exact": base})
    return base


def candidate(wh: Warehouse, base: np.ndarray, fails: int, reps: int) -> None:
    cand = np.repeat(base, reps, axis=1)
    cand[FLAKY, :] = 1
    cand[FLAKY, :fails] = 0
    write_experiment(wh, "cand", {"exact": cand}, started=T0 + timedelta(hours=1))


def test_a_flaky_incident_row_with_one_repetition_is_inconclusive(
    wh: Warehouse, settings: Settings
) -> None:
    """Never an unknown turned into a pass: one repetition cannot meet 3 of 3."""
    candidate(wh, guarded_history(wh, flaky=True), fails=1, reps=1)
    c = compare(wh, "cand", "base", settings)
    [row] = c.row_regressions
    assert row.guard == "flaky_undecided" and not row.gates
    assert row.history is not None and row.history.stability == "flaky"
    assert (row.history.runs, row.history.observations, row.history.passes) == (7, 7, 4)
    lo, hi = proportion_confint(4, 7, method="wilson")
    assert (row.history.ci_low, row.history.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    assert c.verdict == "inconclusive"
    assert "flaky critical example ex-0007 (incident INC-7)" in c.reasons[0]
    assert "--repetitions 3" in c.reasons[0]
    md = render_markdown(c)
    assert "flaky: too few repetitions (1/1 failed; history 57.1% [25.0%, 84.2%] over 7)" in md
    save_comparison(wh, c)
    assert wh.query("SELECT * FROM regressions").height == 0
    assert wh.rows("SELECT verdict FROM comparisons WHERE kind = 'row'") == [("inconclusive",)]


def test_a_flaky_incident_row_failing_every_repetition_gates(
    wh: Warehouse, settings: Settings
) -> None:
    candidate(wh, guarded_history(wh, flaky=True), fails=3, reps=3)
    c = compare(wh, "cand", "base", settings)
    [row] = c.row_regressions
    assert row.guard == "flaky_regression" and row.gates
    assert (row.candidate_fails, row.candidate_repetitions) == (3, 3)
    assert c.verdict == "regression"
    assert "at least 3 of every 3 failed, so it gates" in c.reasons[0]
    save_comparison(wh, c)
    assert wh.query("SELECT example_id FROM regressions")["example_id"].to_list() == ["ex-0007"]


def test_a_flaky_incident_row_within_its_history_is_named_not_gated(
    wh: Warehouse, settings: Settings
) -> None:
    candidate(wh, guarded_history(wh, flaky=True), fails=2, reps=3)
    c = compare(wh, "cand", "base", settings)
    [row] = c.row_regressions
    assert row.guard == "flaky_tolerated" and not row.gates
    assert c.verdict == "pass", c.reasons
    assert any("1 flaky critical row(s) failed within their history" in r for r in c.reasons)
    assert any("flaky critical example ex-0007" in w and "does not gate" in w for w in c.warnings)
    # the k-of-N rule is a setting: 2 of every 3 makes the same row gate
    two = Settings(warehouse=settings.warehouse, flaky_gate_fails=2, _env_file=None)  # type: ignore[call-arg]
    c2 = compare(wh, "cand", "base", two)
    assert c2.verdict == "regression" and c2.row_regressions[0].guard == "flaky_regression"


def test_a_stable_incident_row_gates_as_before(wh: Warehouse, settings: Settings) -> None:
    """Always passed before: the candidate's own failures (two of three repetitions) do not
    make it flaky: the history is the pin's runs before the candidate."""
    candidate(wh, guarded_history(wh, flaky=False), fails=2, reps=3)
    c = compare(wh, "cand", "base", settings)
    [row] = c.row_regressions
    assert row.guard == "regression" and row.history is not None
    assert row.history.stability == "insufficient" and row.history.passes == 7
    assert c.verdict == "regression"
    assert c.reasons[0] == (
        "critical example ex-0007 (incident INC-7) passed in the baseline and fails now on `exact`"
    )


@pytest.mark.parametrize(
    "other",
    [
        "UPDATE experiments SET agent_version = 'old' WHERE experiment_id LIKE 'night-%'",
        "UPDATE experiments SET model = 'm-2025' WHERE experiment_id LIKE 'night-%'",
        "UPDATE scores SET evaluator_version = '0' WHERE experiment_id LIKE 'night-%'",
        "UPDATE experiments SET dataset_version = 'v0' WHERE experiment_id LIKE 'night-%'",
    ],
    ids=["agent_version", "model", "evaluator_version", "dataset_version"],
)
def test_another_pins_flips_do_not_count(wh: Warehouse, settings: Settings, other: str) -> None:
    """The history that flipped belongs to another agent version, model, evaluator version
    or dataset version: for this one the row is new, so it gates as before."""
    base = guarded_history(wh, flaky=True)
    with wh.connect() as con:
        con.execute(other)
        con.execute(
            other.replace("experiments", "scores") if "dataset_version" in other else "SELECT 1"
        )
    candidate(wh, base, fails=1, reps=1)
    [row] = compare(wh, "cand", "base", settings).row_regressions
    assert row.guard == "regression" and row.history is not None
    assert (row.history.runs, row.history.passes) == (1, 1)


# -- the command ----------------------------------------------------------------------------


def test_flaky_command_lists_the_views_flaky_rows(wh: Warehouse, settings: Settings) -> None:
    import json

    from evalkeeper.cli import app

    simulate(wh)
    runner = CliRunner()
    out = runner.invoke(app, ["flaky", "--format", "json", "--warehouse", str(settings.warehouse)])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    view = wh.query("SELECT * FROM row_stability WHERE stability = 'flaky'")
    assert len(rows) == view.height > 0
    by_key = {(r["example_id"], r["evaluator"]): r for r in view.iter_rows(named=True)}
    for r in rows:
        v = by_key[(r["example_id"], r["evaluator"])]
        assert (r["passes"], r["observations"], r["runs"]) == (
            v["passes"],
            v["observations"],
            v["runs"],
        )
        assert r["ci_low"] == pytest.approx(v["ci_low"]) and r["stability"] == "flaky"
    every = runner.invoke(
        app, ["flaky", "--all", "--format", "csv", "--warehouse", str(settings.warehouse)]
    )
    assert every.exit_code == 0 and len(every.stdout.splitlines()) == 1 + len(TRUTH) * PER_CLASS
    table = runner.invoke(
        app, ["flaky", "--dataset", "appointments", "--warehouse", str(settings.warehouse)]
    )
    assert table.exit_code == 0 and "ex-0120" in table.stdout
    missing = runner.invoke(
        app, ["flaky", "--dataset", "nope", "--warehouse", str(settings.warehouse)]
    )
    assert missing.exit_code == 2 and "dataset 'nope': no scored pass/fail row" in missing.output
    nowhere = settings.warehouse.parent / "none.duckdb"
    absent = runner.invoke(app, ["flaky", "--warehouse", str(nowhere)])
    assert absent.exit_code == 2 and "no warehouse at" in absent.output
    assert not nowhere.exists()  # never created by a read
