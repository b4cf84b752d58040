"""`compare` on real warehouse files: fabricated experiments with chosen pass patterns."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint

from evalkeeper.analysis import ALL, CompareError, compare, find_baseline
from evalkeeper.report import render_markdown, render_table
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, save_comparison

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
CATS = ("booking", "billing", "policy")


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_wait_s=2.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", _env_file=None)  # type: ignore[call-arg]


def ids(n: int) -> list[str]:
    return [f"ex-{i:04d}" for i in range(n)]


def write_examples(
    wh: Warehouse,
    n: int,
    *,
    version: str = "v1",
    dataset: str = "appointments",
    critical: dict[int, str | None] | None = None,
) -> None:
    """`n` examples in rotating categories; `critical` maps index -> incident id (or None)."""
    critical = critical or {}
    wh.write(
        {
            "examples": pl.DataFrame(
                {
                    "dataset": [dataset] * n,
                    "dataset_version": [version] * n,
                    "example_id": ids(n),
                    "content_hash": [f"h{i}" for i in range(n)],
                    "category": [CATS[i % 3] for i in range(n)],
                    "critical": [i in critical for i in range(n)],
                    "incident_id": [critical.get(i) for i in range(n)],
                    "inputs": ["{}"] * n,
                    "reference_outputs": ["{}"] * n,
                    "metadata": ["{}"] * n,
                }
            )
        }
    )


def write_experiment(
    wh: Warehouse,
    experiment_id: str,
    outcomes: dict[str, np.ndarray],
    *,
    started: datetime = T0,
    suite: str = "smoke",
    dataset: str = "appointments",
    version: str = "v1",
    branch: str | None = "main",
    status: str = "completed",
    example_ids: list[str] | None = None,
    latency_ms: np.ndarray | None = None,
    continuous: tuple[str, ...] = (),
    skipped_extra: bool = False,
    skipped_allowed: bool = True,
    optional: tuple[str, ...] = (),
) -> None:
    """One experiment: `outcomes[evaluator]` is (examples, repetitions); 1/0 pass/fail, NaN an
    error (for evaluators in `continuous`, the value itself and no pass/fail)."""
    first = next(iter(outcomes.values()))
    n, reps = first.shape
    ex_ids = example_ids or ids(n)
    runs: dict[str, list[object]] = {
        k: []
        for k in ("experiment_id", "example_id", "repetition", "outputs", "latency_ms", "error")
    }
    lat = latency_ms if latency_ms is not None else np.full((n, reps), 400.0)
    for i in range(n):
        for r in range(reps):
            runs["experiment_id"].append(experiment_id)
            runs["example_id"].append(ex_ids[i])
            runs["repetition"].append(r)
            runs["outputs"].append(json.dumps({"reply": f"{experiment_id} says {i}/{r}"}))
            runs["latency_ms"].append(float(lat[i, r]))
            runs["error"].append(None)
    scores: dict[str, list[object]] = {
        k: []
        for k in (
            "experiment_id",
            "example_id",
            "repetition",
            "evaluator",
            "value",
            "passed",
            "error",
            "skipped",
            "category",
            "comment",
        )
    }

    def add(
        i: int, r: int, ev: str, value: float | None, passed: bool | None, **kw: object
    ) -> None:
        scores["experiment_id"].append(experiment_id)
        scores["example_id"].append(ex_ids[i])
        scores["repetition"].append(r)
        scores["evaluator"].append(ev)
        scores["value"].append(value)
        scores["passed"].append(passed)
        scores["error"].append(kw.get("error"))
        scores["skipped"].append(bool(kw.get("skipped", False)))
        scores["category"].append(CATS[int(ex_ids[i][3:]) % 3])
        scores["comment"].append(kw.get("comment"))

    for ev, arr in outcomes.items():
        for i in range(n):
            for r in range(reps):
                x = arr[i, r]
                if math.isnan(x):
                    add(i, r, ev, None, None, error="judge timeout")
                elif ev in continuous:
                    add(i, r, ev, float(x), None)
                else:
                    add(i, r, ev, float(x), bool(x), comment="ok" if x else f"wrong {i}")
    if skipped_extra:  # a skipped evaluator failing everything: must be ignored
        for i in range(n):
            add(i, 0, "not_configured", None, False, skipped=True, comment="set JUDGE_URL")
    k = len(scores["experiment_id"])
    score_frame = pl.DataFrame(scores).with_columns(
        evaluator_version=pl.lit("1"),
        evaluator_args_hash=pl.lit("a"),
        created_at=pl.lit(started),
        dataset_version=pl.lit(version),
        target_spec=pl.lit("agent:v"),
    )
    assert score_frame.height == k
    wh.write(
        {
            "experiments": pl.DataFrame(
                [
                    {
                        "experiment_id": experiment_id,
                        "suite": suite,
                        "dataset": dataset,
                        "dataset_version": version,
                        "target_spec": "agent:v",
                        "target_kind": "callable",
                        "git_branch": branch,
                        "git_commit": "abc",
                        "evaluators": json.dumps(
                            (
                                [{"name": "not_configured", "optional": skipped_allowed}]
                                if skipped_extra
                                else []
                            )
                            + [{"name": name, "optional": True} for name in optional]
                        ),
                        "repetitions": reps,
                        "params": "{}",
                        "n_examples": n,
                        "status": status,
                        "started_at": started,
                        "finished_at": started + timedelta(minutes=5),
                    }
                ]
            ),
            "runs": pl.DataFrame(runs).with_columns(attempts=pl.lit(1), started_at=pl.lit(started)),
            "scores": score_frame,
        }
    )


def passes(rng: np.random.Generator, n: int, rate: float, reps: int = 1) -> np.ndarray:
    """Seeded pass pattern: each example has a fixed outcome, repeated over repetitions
    (deterministic target), except that `rate` sets the share of passing examples."""
    per_example = (rng.random(n) < rate).astype(float)
    return np.repeat(per_example[:, None], reps, axis=1)


# -- verdicts -------------------------------------------------------------------------------


def test_identical_runs_pass(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(1)
    base = {"exact": passes(rng, 150, 0.8), "tools": passes(rng, 150, 0.7)}
    write_examples(wh, 150)
    write_experiment(wh, "base", base)
    write_experiment(wh, "cand", base, started=T0 + timedelta(hours=1), skipped_extra=True)
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "pass", c.reasons
    assert c.n_shared_examples == 150
    assert c.evaluators == ["exact", "tools"]  # the skipped evaluator is ignored
    assert {x.category for x in c.cells} == {ALL, *CATS}
    assert len(c.cells) == 8
    overall = c.cell("exact")
    assert overall.diff == 0 and overall.p_value == 1.0 and overall.test == "mcnemar_exact"
    assert overall.mde is not None and 0 < overall.mde < 0.2
    assert not c.row_regressions and c.errors_candidate == 0
    assert "no significant drop" in c.reasons[0]
    # per-side CI of a category cell: statsmodels' normal interval on the same rows
    billing = c.cell("exact", "billing")
    mask = np.array([i % 3 == 1 for i in range(150)])
    k, n = int(base["exact"][mask].sum()), int(mask.sum())
    lo, hi = proportion_confint(k, n, method="normal")
    assert (billing.baseline.ci_low, billing.baseline.ci_high) == pytest.approx((lo, hi))


def test_a_skipped_evaluator_that_was_not_allowed_makes_it_inconclusive(
    wh: Warehouse, settings: Settings
) -> None:
    """Seen: with no judge endpoint the gate passed with every judge skipped."""
    rng = np.random.default_rng(1)
    base = {"exact": passes(rng, 150, 0.8)}
    write_examples(wh, 150)
    write_experiment(wh, "base", base)
    write_experiment(
        wh, "cand", base, started=T0 + timedelta(hours=1), skipped_extra=True,
        skipped_allowed=False,
    )  # fmt: skip
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "inconclusive"
    assert c.skipped_evaluators == ["not_configured"]
    assert "`not_configured`: set JUDGE_URL" in c.reasons[0]
    assert "--allow-skipped not_configured" in c.reasons[0]
    # the same experiment is not a baseline either
    write_experiment(wh, "later", base, started=T0 + timedelta(hours=2))
    assert find_baseline(wh, "later", "main", settings) == "base"


def test_a_category_that_drops_strongly_is_a_regression(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(2)
    n = 180
    base = passes(rng, n, 0.9)
    cand = base.copy()
    billing = [i for i in range(n) if i % 3 == 1 and base[i, 0] == 1]
    cand[billing[: len(billing) // 2], 0] = 0  # half of billing's passes now fail
    write_examples(wh, n)
    write_experiment(wh, "base", {"exact": base})
    write_experiment(wh, "cand", {"exact": cand}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "regression"
    cell = c.cell("exact", "billing")
    assert cell.regressed and cell.status == "regression"
    assert cell.diff is not None and cell.diff < -0.3
    assert cell.p_adjusted is not None and cell.p_adjusted < 0.05
    assert not c.cell("exact", "booking").regressed
    assert any("billing" in r and "p_adj" in r for r in c.reasons)
    # tolerance: a drop smaller than the tolerance is not a regression
    lenient = settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"tolerance": 0.6})}
    )
    assert compare(wh, "cand", "base", lenient).verdict == "pass"


def test_a_critical_incident_row_flipping_is_a_regression(
    wh: Warehouse, settings: Settings
) -> None:
    rng = np.random.default_rng(3)
    n = 150
    base = passes(rng, n, 0.8)
    crit = [i for i in range(n) if base[i, 0] == 1][:3]
    write_examples(wh, n, critical={crit[0]: "INC-4711", crit[1]: None, crit[2]: "INC-9"})
    cand = base.copy()
    cand[crit[0], 0] = 0  # the incident example fails again
    other = next(i for i in range(n) if base[i, 0] == 0)
    cand[other, 0] = 1  # and some ordinary example improves: statistics see nothing
    write_experiment(wh, "base", {"exact": base})
    write_experiment(wh, "cand", {"exact": cand}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "regression"
    assert not any(x.regressed for x in c.cells)  # no cell says anything
    assert c.cell("exact").diff == 0
    [row] = c.row_regressions
    assert row.example_id == f"ex-{crit[0]:04d}" and row.incident_id == "INC-4711"
    assert row.baseline_output is not None and "base says" in row.baseline_output
    assert row.candidate_output is not None and "cand says" in row.candidate_output
    assert row.candidate_comment == f"wrong {crit[0]}"
    assert "INC-4711" in c.reasons[0]
    md = render_markdown(c)
    assert "REGRESSION" in md and "INC-4711" in md and row.example_id in md
    assert json.loads(c.model_dump_json())["verdict"] == "regression"


def test_small_drop_on_12_examples_is_inconclusive(wh: Warehouse, settings: Settings) -> None:
    base = np.ones((12, 1))
    cand = base.copy()
    cand[4, 0] = 0
    write_examples(wh, 12)
    write_experiment(wh, "base", {"exact": base})
    write_experiment(wh, "cand", {"exact": cand}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "inconclusive"
    assert c.underpowered and c.cell("exact").underpowered
    assert c.cell("exact").mde is not None and c.cell("exact").mde > 0.2  # type: ignore[operator]
    assert any("underpowered" in r for r in c.reasons)
    assert "Underpowered" in render_markdown(c)
    # identical small runs are just as inconclusive: zero discordance is not "no change"
    write_experiment(wh, "cand2", {"exact": base}, started=T0 + timedelta(hours=2))
    assert compare(wh, "cand2", "base", settings).verdict == "inconclusive"
    # a team that accepts a coarser gate says so in its settings (EVALKEEPER_MAX_MDE)
    mde = c.cell("exact").mde
    assert mde is not None
    coarse = settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"max_mde": min(1.0, mde + 0.01)})}
    )
    assert compare(wh, "cand2", "base", coarse).verdict == "pass"
    assert compare(wh, "cand", "base", coarse).verdict == "pass"  # 1 of 12: not significant


def test_errors_are_counted_shown_and_make_it_inconclusive(
    wh: Warehouse, settings: Settings
) -> None:
    rng = np.random.default_rng(4)
    n = 120
    base = passes(rng, n, 0.8)
    cand = base.copy()
    cand[:36, 0] = np.nan  # 30% of the candidate's rows errored
    write_examples(wh, n)
    write_experiment(wh, "base", {"exact": base, "tools": base})
    write_experiment(wh, "cand", {"exact": cand, "tools": base}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "inconclusive"
    cell = c.cell("exact")
    assert (cell.errors_baseline, cell.errors_candidate) == (0, 36)
    assert cell.n_examples == n - 36 and cell.error_rate_candidate == pytest.approx(0.3)
    assert c.errors_candidate == 36 and c.errors_baseline == 0
    assert sum(c.cell("exact", k).errors_candidate for k in CATS) == 36
    assert any("error rate 30%" in r for r in c.reasons)
    assert "candidate 36" in render_markdown(c)
    relaxed = settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"max_error_rate": 0.5})}
    )
    assert compare(wh, "cand", "base", relaxed).verdict == "pass"


# -- repetitions and continuous scores ------------------------------------------------------


def test_repetitions_cluster_by_example(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(5)
    n, reps = 90, 3
    p = rng.beta(2, 1, n)
    base = (rng.random((n, reps)) < p[:, None]).astype(float)
    cand = (rng.random((n, reps)) < p[:, None]).astype(float)
    write_examples(wh, n)
    write_experiment(wh, "base", {"judge": base})
    write_experiment(wh, "cand", {"judge": cand}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    cell = c.cell("judge", "policy")
    assert cell.test == "sign"
    assert cell.candidate.se_cluster is not None and cell.candidate.n_rows == 30 * reps
    rows = cand[[i for i in range(n) if i % 3 == 2]]
    y = rows.ravel()
    groups = np.repeat(np.arange(rows.shape[0]), reps)
    sm = OLS(y, np.ones((y.size, 1))).fit().get_robustcov_results("cluster", groups=groups)
    assert cell.candidate.se_cluster == pytest.approx(float(sm.bse[0]), rel=1e-9)
    assert cell.candidate.mean == pytest.approx(y.mean())
    lo, hi = cell.candidate.ci_low, cell.candidate.ci_high
    assert hi - lo == pytest.approx(2 * 1.959963984540054 * float(sm.bse[0]))  # type: ignore[operator]
    # the overall cell also reports the SE clustered by category (examples nest in it)
    overall = c.cell("judge").candidate
    y_all = cand.ravel()
    cats = np.repeat(np.arange(n) % 3, reps)
    sm_cat = (
        OLS(y_all, np.ones((y_all.size, 1))).fit().get_robustcov_results("cluster", groups=cats)
    )
    assert overall.n_categories == 3
    assert overall.se_category == pytest.approx(float(sm_cat.bse[0]), rel=1e-9)
    d = cand.mean(axis=1) - base.mean(axis=1)
    assert c.cell("judge").diff == pytest.approx(d.mean())
    assert c.cell("judge").diff_se == pytest.approx(d.std(ddof=1) / math.sqrt(n))


def test_continuous_scores_use_wilcoxon(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(6)
    n = 90
    base = rng.uniform(0.5, 1.0, (n, 1))
    cand = np.clip(base - 0.25 + rng.normal(0, 0.05, (n, 1)), 0, 1)
    write_examples(wh, n)
    write_experiment(wh, "base", {"grounded": base}, continuous=("grounded",))
    write_experiment(
        wh, "cand", {"grounded": cand}, continuous=("grounded",), started=T0 + timedelta(hours=1)
    )
    c = compare(wh, "cand", "base", settings)
    cell = c.cell("grounded")
    assert cell.metric == "mean_value" and cell.test == "wilcoxon_pratt"
    assert c.verdict == "regression" and cell.regressed
    same = compare(wh, "base", "cand", settings)  # the other way round it is an improvement
    assert same.verdict == "pass" and same.cell("grounded").status == "improved"


# -- bad input ------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(7)
    write_examples(wh, 40)
    write_experiment(wh, "base", {"exact": passes(rng, 40, 0.8)})
    with pytest.raises(
        CompareError, match=r"unknown candidate experiment 'nope'.*evalkeeper experiments"
    ):
        compare(wh, "nope", "base", settings)
    with pytest.raises(CompareError, match=r"unknown baseline experiment 'gone'"):
        compare(wh, "base", "gone", settings)
    with pytest.raises(CompareError, match="same experiment"):
        compare(wh, "base", "base", settings)
    # an empty experiment: recorded, never scored
    write_experiment(wh, "empty", {"exact": passes(rng, 40, 0.8)}, started=T0 + timedelta(hours=1))
    with wh.connect() as con:
        con.execute("DELETE FROM scores WHERE experiment_id = 'empty'")
    with pytest.raises(CompareError, match=r"candidate experiment 'empty' is empty"):
        compare(wh, "empty", "base", settings)
    # no shared example
    write_experiment(
        wh,
        "other",
        {"exact": passes(rng, 40, 0.8)},
        example_ids=[f"zz-{i:04d}" for i in range(40)],
        version="v9",
        started=T0 + timedelta(hours=2),
    )
    with pytest.raises(CompareError, match="share no example"):
        compare(wh, "other", "base", settings)
    # no baseline for auto (only a feature-branch run before it)
    write_experiment(wh, "lonely", {"exact": passes(rng, 40, 0.8)}, suite="full", branch="feature")
    with pytest.raises(CompareError, match=r"no baseline for 'lonely'.*branch 'main'"):
        compare(wh, "lonely", "auto", settings)


def test_different_dataset_versions_compare_the_intersection(
    wh: Warehouse, settings: Settings
) -> None:
    rng = np.random.default_rng(8)
    base = passes(rng, 120, 0.8)
    write_experiment(wh, "base", {"exact": base}, version="v1")
    # the candidate's dataset dropped the first 20 examples and added 30 new ones
    cand_ids = ids(120)[20:] + [f"new-{i}" for i in range(30)]
    cand = np.concatenate([base[20:], np.ones((30, 1))])
    write_experiment(
        wh,
        "cand",
        {"exact": cand},
        version="v2",
        example_ids=cand_ids,
        started=T0 + timedelta(hours=1),
    )
    c = compare(wh, "cand", "base", settings)
    assert c.n_shared_examples == 100 and c.cell("exact").n_examples == 100
    assert any("dataset versions differ" in w for w in c.warnings)
    assert c.verdict == "pass"


# -- auto baseline --------------------------------------------------------------------------


def test_auto_baseline_picks_the_latest_completed_main_run_before(
    wh: Warehouse, settings: Settings
) -> None:
    rng = np.random.default_rng(9)
    write_examples(wh, 60)
    h = timedelta(hours=1)

    def run(name: str, at: datetime, **kw: object) -> None:
        write_experiment(wh, name, {"exact": passes(rng, 60, 0.9)}, started=at, **kw)  # type: ignore[arg-type]

    run("main-old", T0)
    run("main-good", T0 + h)
    run("main-failed", T0 + 2 * h, status="failed")
    run("feature", T0 + 3 * h, branch="feature/x")
    run("main-full", T0 + 3 * h, suite="full")
    run("other-data", T0 + 3 * h, dataset="billing")
    run("candidate", T0 + 4 * h, branch="feature/x")
    run("main-later", T0 + 5 * h)
    assert find_baseline(wh, "candidate", "main") == "main-good"
    assert find_baseline(wh, "candidate", "feature/x") == "feature"
    c = compare(wh, "candidate", "auto", settings)
    assert (c.baseline_id, c.baseline_mode) == ("main-good", "auto")
    release = settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"baseline_branch": "feature/x"})}
    )
    assert compare(wh, "candidate", "auto", release).baseline_id == "feature"
    assert compare(wh, "main-later", "auto", settings).baseline_id == "main-good"
    with pytest.raises(CompareError, match="no baseline for 'main-old'"):
        compare(wh, "main-old", "auto", settings)


def test_auto_baseline_must_have_scored_every_evaluator_gating_the_candidate(
    wh: Warehouse, settings: Settings
) -> None:
    """Seen: after the demo, `--baseline auto` chose the calibration experiment, which scored
    other evaluators; the regression was judged on one evaluator and printed PASS."""
    rng = np.random.default_rng(21)
    n = 150
    write_examples(wh, n)
    good, latency = passes(rng, n, 0.95), np.ones((n, 1))
    write_experiment(wh, "v1", {"exact": good, "latency": latency})
    # later on main, same suite and dataset, but scoring only another evaluator
    write_experiment(wh, "calibration", {"latency": latency}, started=T0 + timedelta(hours=1))
    broken = passes(rng, n, 0.40)
    write_experiment(
        wh, "v2", {"exact": broken, "latency": latency}, started=T0 + timedelta(hours=2)
    )
    assert find_baseline(wh, "v2", "main", settings) == "v1"
    c = compare(wh, "v2", "auto", settings)
    assert (c.baseline_id, c.verdict) == ("v1", "regression")
    assert any(
        w.startswith("passed over calibration as a baseline")
        and "did not score exact, which the candidate is gated on" in w
        for w in c.warnings
    ), c.warnings
    # named, the same baseline is used, says why auto would not, and cannot pass
    c = compare(wh, "v2", "calibration", settings)
    assert c.baseline_problems == ["did not score exact, which the candidate is gated on"]
    assert c.verdict == "inconclusive"
    assert "scored on the candidate only" in c.reasons[0] and "`exact`" in c.reasons[0]
    assert "--allow-skipped exact" in c.reasons[0]
    # an evaluator allowed to be missing (optional) neither gates nor blocks
    write_experiment(
        wh, "v3", {"exact": good, "latency": latency}, started=T0 + timedelta(hours=3),
        optional=("exact",),
    )  # fmt: skip
    c = compare(wh, "v3", "calibration", settings)
    assert (c.verdict, c.baseline_problems) == ("pass", []), c.reasons


# -- latency, rendering, persistence and views ----------------------------------------------


def test_latency_percentiles_and_threshold(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(10)
    n = 100
    base = passes(rng, n, 0.9)
    write_examples(wh, n)
    lat_b = np.linspace(100, 1000, n)[:, None]
    lat_c = np.linspace(200, 3000, n)[:, None]
    write_experiment(wh, "base", {"exact": base}, latency_ms=lat_b)
    write_experiment(wh, "cand", {"exact": base}, latency_ms=lat_c, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    lat = c.latency
    assert lat.baseline.p50_s == pytest.approx(np.percentile(lat_b, 50) / 1000)
    assert lat.candidate.p95_s == pytest.approx(np.percentile(lat_c, 95) / 1000)
    assert lat.crossed and lat.newly_crossed and lat.threshold_p95_s == 1.2
    assert any("latency p95" in w for w in c.warnings)
    assert "above threshold" in render_markdown(c)


def test_render_table_and_json(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(11)
    write_examples(wh, 60)
    base = passes(rng, 60, 0.8)
    write_experiment(wh, "base", {"exact": base})
    write_experiment(wh, "cand", {"exact": base}, started=T0 + timedelta(hours=1))
    c = compare(wh, "cand", "base", settings)
    console = Console(record=True, width=200)
    console.print(render_table(c))
    text = console.export_text()
    assert "PASS" in text and "billing" in text and "latency" in text
    data = json.loads(c.model_dump_json())
    assert data["verdict"] == "pass" and len(data["cells"]) == 4


def test_saved_comparisons_feed_the_views(wh: Warehouse, settings: Settings) -> None:
    rng = np.random.default_rng(12)
    n = 90
    base = passes(rng, n, 0.8)
    crit = next(i for i in range(n) if base[i, 0] == 1)
    write_examples(wh, n, critical={crit: "INC-77"})
    cand = base.copy()
    cand[crit, 0] = 0
    write_experiment(wh, "base", {"exact": base, "tools": base})
    write_experiment(wh, "cand", {"exact": cand, "tools": base}, started=T0 + timedelta(days=1))
    c = compare(wh, "cand", "auto", settings)
    assert save_comparison(wh, c) == "written"
    wal = Path(f"{wh.path}.wal")  # folded into the file: the .duckdb alone holds it
    assert not wal.exists() or wal.stat().st_size == 0
    stored = wh.query("SELECT kind, count(*) AS n FROM comparisons GROUP BY kind ORDER BY kind")
    assert dict(stored.iter_rows()) == {"cell": 8, "row": 1, "verdict": 1}
    verdict = wh.query("SELECT verdict, details FROM comparisons WHERE kind = 'verdict'")
    assert verdict["verdict"][0] == "regression"
    assert json.loads(verdict["details"][0])["experiment_id"] == "cand"
    # a second comparison of the same pair: the view shows the latest only, once
    c2 = compare(wh, "cand", "base", settings)
    save_comparison(wh, c2)
    reg = wh.query("SELECT * FROM regressions")
    assert reg.height == 1
    assert reg["incident_id"][0] == "INC-77" and reg["example_id"][0] == f"ex-{crit:04d}"
    assert reg["comparison_id"][0] == c2.comparison_id and reg["git_branch"][0] == "main"
    assert "cand says" in reg["candidate_output"][0]

    trend = wh.query("SELECT * FROM pass_rate_trend WHERE evaluator = 'exact' ORDER BY started_at")
    assert trend["experiment_id"].to_list() == ["base", "cand"]
    for row in trend.iter_rows(named=True):
        arr = base if row["experiment_id"] == "base" else cand
        k = int(arr.sum())
        lo, hi = proportion_confint(k, n, method="wilson")
        assert row["n"] == n and row["n_passed"] == k and row["pass_rate"] == pytest.approx(k / n)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
        assert row["suite"] == "smoke" and row["dataset"] == "appointments"


def test_category_critical_guards_rows_missing_from_the_examples_table(
    wh: Warehouse, settings: Settings
) -> None:
    rng = np.random.default_rng(13)
    n = 90
    base = passes(rng, n, 0.8)
    flip = next(i for i in range(n) if base[i, 0] == 1)
    cand = base.copy()
    cand[flip, 0] = 0
    write_experiment(wh, "base", {"exact": base})  # no examples rows at all
    write_experiment(wh, "cand", {"exact": cand}, started=T0 + timedelta(hours=1))
    assert compare(wh, "cand", "base", settings).row_regressions == []
    with wh.connect() as con:
        con.execute("UPDATE scores SET category = 'critical' WHERE example_id = ?", [ids(n)[flip]])
    c = compare(wh, "cand", "base", settings)
    assert c.verdict == "regression"
    [row] = c.row_regressions
    assert (row.example_id, row.incident_id, row.category) == (ids(n)[flip], None, "critical")


# -- the steps of compare: load, analyse (pure), decide (pure) ------------------------------


def test_the_pure_steps_give_what_compare_gives(wh: Warehouse, settings: Settings) -> None:
    """Frames loaded once, the connection closed: the analysis and the verdict are the same
    as `compare`'s, and the same again when run twice (no state, no warehouse)."""
    from dataclasses import replace

    from evalkeeper.analysis.paired import analyse_pair, row_regressions
    from evalkeeper.analysis.stability import judge_flipped
    from evalkeeper.analysis.verdict import decide_verdict
    from evalkeeper.warehouse.pairs import flipped_details, load_pair
    from evalkeeper.warehouse.queries import experiment_row
    from evalkeeper.warehouse.stability import guard_history

    rng = np.random.default_rng(3)
    n = 150
    base = passes(rng, n, 0.8)
    crit = [i for i in range(n) if base[i, 0] == 1][:2]
    write_examples(wh, n, critical={crit[0]: "INC-4711", crit[1]: None})
    cand = base.copy()
    cand[crit[0], 0] = 0
    write_experiment(wh, "base", {"exact": base, "tools": passes(rng, n, 0.7)})
    write_experiment(
        wh, "cand", {"exact": cand, "tools": passes(rng, n, 0.7)}, started=T0 + timedelta(hours=1)
    )
    with wh.connect() as con:
        cand_row, base_row = experiment_row(con, "cand"), experiment_row(con, "base")
        assert cand_row is not None and base_row is not None
        frames = load_pair(con, cand_row, base_row)
        details = flipped_details(con, [f"ex-{crit[0]:04d}"], "cand", "base")
        history = guard_history(con, cand_row, [f"ex-{crit[0]:04d}"])
    c = compare(wh, "cand", "base", settings)
    for _ in range(2):
        found = analyse_pair(cand_row, base_row, frames, retired={}, settings=settings)
        found = replace(found, flipped=judge_flipped(found.flipped, history, settings.analysis))
        ruling = decide_verdict(found, settings=settings, max_mde=settings.analysis.max_mde)
        assert ruling.verdict == c.verdict == "regression" and ruling.reasons == c.reasons
        assert ruling.cells == c.cells and found.warnings + ruling.warnings == c.warnings
        assert row_regressions(found.flipped, details) == c.row_regressions
        assert all(x.p_adjusted is None for x in found.cells)  # the decision copies, never edits


def test_retired_judges_are_passed_in_as_data(wh: Warehouse, settings: Settings) -> None:
    """The analysis leaves out the judges it is told are retired, with the note it is given;
    the `judges` table is the loading step's business (`warehouse.queries.retired_judges`)."""
    from evalkeeper.analysis.paired import analyse_pair
    from evalkeeper.warehouse.pairs import load_pair
    from evalkeeper.warehouse.queries import experiment_row

    rng = np.random.default_rng(4)
    outcomes = {"exact": passes(rng, 90, 0.8), "tone": passes(rng, 90, 0.7)}
    write_examples(wh, 90)
    write_experiment(wh, "base", outcomes)
    write_experiment(wh, "cand", outcomes, started=T0 + timedelta(hours=1))
    with wh.connect() as con:
        cand_row, base_row = experiment_row(con, "cand"), experiment_row(con, "base")
        assert cand_row is not None and base_row is not None
        frames = load_pair(con, cand_row, base_row)
    note = "judge tone is retired (told so): not used in this verdict"
    found = analyse_pair(cand_row, base_row, frames, retired={"tone": note}, settings=settings)
    assert found.evaluators == ["exact"] and {x.evaluator for x in found.cells} == {"exact"}
    assert note in found.warnings
    assert {x.evaluator for x in compare(wh, "cand", "base", settings).cells} == {"exact", "tone"}
    with pytest.raises(CompareError, match="share no evaluator"):
        analyse_pair(
            cand_row, base_row, frames, retired={"tone": note, "exact": note}, settings=settings
        )


def test_analysis_imports_no_calibration_and_its_pure_modules_no_warehouse() -> None:
    import ast

    pure = {"stats", "cells", "paired", "verdict", "reasons", "models", "agreement", "sequential",
            "planner"}  # fmt: skip
    root = Path(__file__).resolve().parents[2] / "evalkeeper" / "analysis"
    for path in sorted(root.glob("*.py")):
        runtime: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # TYPE_CHECKING blocks are not runtime
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    runtime.add(sub.module)
                elif isinstance(sub, ast.Import):
                    runtime.update(a.name for a in sub.names)
        assert not [m for m in runtime if m.startswith("evalkeeper.calibration")], path.name
        if path.stem in pure:
            assert not [m for m in runtime if m.split(".")[0] == "duckdb"], path.name
            assert not [m for m in runtime if m.startswith("evalkeeper.warehouse")], path.name
