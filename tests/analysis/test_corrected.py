"""Judge-corrected pass rates, against independent computations: an exact sum over the
binomial distributions (the variance the delta method approximates), finite differences
(its gradient), a parametric bootstrap (a second computation of the interval), and a
simulation with known truth (coverage, a smaller run of `benchmarks/corrected_rates.py`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from benchmarks.corrected_rates import SETTINGS, simulate
from evalkeeper.analysis.corrected import (
    JudgeErrors,
    bootstrap_rate,
    corrected_rate,
    delta_variance,
    errors_from_confusion,
    rogan_gladen,
)

Z = st.norm.ppf(0.975)


def test_rogan_gladen_inverts_what_a_judge_with_known_errors_reports() -> None:
    for theta, r, s in [(0.75, 0.9, 0.85), (0.3, 0.7, 0.95), (0.95, 0.99, 0.6)]:
        p = theta * r + (1 - theta) * (1 - s)  # what the judge passes
        assert rogan_gladen(p, r, s) == pytest.approx(theta)
    assert rogan_gladen(0.99, 0.9, 0.9) == 1.0  # beyond the judge's range: clipped
    assert rogan_gladen(0.05, 0.9, 0.9) == 0.0
    assert rogan_gladen(0.05, 0.9, 0.9, clip=False) < 0
    assert math.isnan(rogan_gladen(0.5, 0.6, 0.4))  # J = 0


def test_counts_from_the_confusion_table_calibration_stores() -> None:
    # rows: judge label, columns: human label; pass first, every other label a fail
    e = errors_from_confusion([[80, 6, 1], [15, 30, 2], [5, 4, 7]])
    assert (e.n_pass, e.tp, e.n_fail, e.tn) == (100, 80, 50, 43)
    assert e.tpr == 0.8 and e.tnr == pytest.approx(0.86)
    with pytest.raises(ValueError, match="square"):
        errors_from_confusion([[1, 2, 3]])


def _exact_moments(
    theta: float, r: float, s: float, n: int, n_pass: int, n_fail: int
) -> tuple[float, float]:
    """Mean and variance of the unclipped estimate, summed over the binomial distributions
    of the run's passes and the calibration's TP and TN (each cut at 1e-12 in the tails;
    the triple sum is done as an outer product)."""
    p = theta * r + (1 - theta) * (1 - s)

    def support(k: int, q: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = st.binom.ppf([1e-12, 1 - 1e-12], k, q)
        x = np.arange(int(lo), int(hi) + 1)
        return x / k, st.binom.pmf(x, k, q)

    ph, wp = support(n, p)
    rh, wr = support(n_pass, r)
    sh, ws = support(n_fail, s)
    P, R, S = np.meshgrid(ph, rh, sh, indexing="ij")
    W = wp[:, None, None] * wr[None, :, None] * ws[None, None, :]
    est = (P + S - 1) / (R + S - 1)
    W = W / W.sum()
    mean = float((W * est).sum())
    return mean, float((W * (est - mean) ** 2).sum())


@pytest.mark.parametrize(
    ("theta", "r", "s", "n", "n_pass", "n_fail"),
    [(0.75, 0.9, 0.9, 2000, 1500, 500), (0.5, 0.8, 0.85, 3000, 800, 800), (0.9, 0.95, 0.8, 1000, 900, 400)],
)  # fmt: skip
def test_delta_variance_matches_the_exact_variance(
    theta: float, r: float, s: float, n: int, n_pass: int, n_fail: int
) -> None:
    p = theta * r + (1 - theta) * (1 - s)
    v_run, v_cal = delta_variance(
        p, p * (1 - p) / n, r, r * (1 - r) / n_pass, s, s * (1 - s) / n_fail
    )
    mean, var = _exact_moments(theta, r, s, n, n_pass, n_fail)
    # first-order: the delta method's error shrinks as 1/n; at these sizes it is within 3%
    assert v_run + v_cal == pytest.approx(var, rel=0.03)
    assert mean == pytest.approx(theta, abs=0.003)


def test_delta_gradient_matches_finite_differences() -> None:
    p, r, s = 0.7, 0.88, 0.83
    vp, vr, vs = 1e-4, 4e-4, 9e-4

    def f(x: np.ndarray) -> float:
        return (x[0] + x[2] - 1) / (x[1] + x[2] - 1)

    x0, h = np.array([p, r, s]), 1e-6
    grad = np.array([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(3)])
    numeric = float(grad @ np.diag([vp, vr, vs]) @ grad)
    assert sum(delta_variance(p, vp, r, vr, s, vs)) == pytest.approx(numeric, rel=1e-6)


def test_bootstrap_agrees_with_the_delta_interval() -> None:
    errors = JudgeErrors(n_pass=400, tp=356, n_fail=200, tn=172)  # TPR 0.89, TNR 0.86
    p, se = 0.68, math.sqrt(0.68 * 0.32 / 1500)
    c = corrected_rate(p, se, errors)
    b = bootstrap_rate(p, se, errors, seed=7, n_resamples=40_000)
    assert b.n_undefined == 0
    # the bootstrap SD's own Monte Carlo error is about 0.4% at 40,000 draws
    assert b.se == pytest.approx(c.se, rel=0.04)
    assert b.ci_low == pytest.approx(c.ci_low, abs=0.01)
    assert b.ci_high == pytest.approx(c.ci_high, abs=0.01)
    # the two parts of the variance: a bigger run shrinks the first only
    bigger = corrected_rate(p, se / 10, errors)
    assert bigger.var_calibration == pytest.approx(c.var_calibration)
    assert bigger.var_sampling == pytest.approx(c.var_sampling / 100)


def test_bootstrap_is_seeded() -> None:
    errors = JudgeErrors(n_pass=100, tp=90, n_fail=50, tn=40)
    a = bootstrap_rate(0.7, 0.02, errors, seed=3, n_resamples=500)
    assert a == bootstrap_rate(0.7, 0.02, errors, seed=3, n_resamples=500)
    assert a != bootstrap_rate(0.7, 0.02, errors, seed=4, n_resamples=500)


def test_a_judge_whose_j_is_near_zero_is_uninformative() -> None:
    # agrees 90% on a 90%-pass set by always passing: TPR 1, TNR 0.04, J 0.04
    coin = JudgeErrors(n_pass=180, tp=180, n_fail=25, tn=1)
    c = corrected_rate(0.97, 0.01, coin)
    assert not c.informative and c.j == pytest.approx(0.04)
    assert all(math.isnan(x) for x in (c.estimate, c.ci_low, c.ci_high, c.se))
    # a decent J whose lower bound is still at or under the threshold is flagged too
    weak = JudgeErrors(n_pass=40, tp=26, n_fail=20, tn=12)  # J 0.25, its low bound < 0
    assert not corrected_rate(0.6, 0.02, weak).informative
    assert corrected_rate(0.6, 0.02, weak, min_j=-1.0).informative
    with pytest.raises(ValueError, match="both human classes"):
        corrected_rate(0.6, 0.02, JudgeErrors(n_pass=40, tp=30, n_fail=0, tn=0))


SEEDS = 400


@pytest.mark.parametrize("name", ["typical", "repetitions", "small run"])
def test_the_interval_covers_the_true_rate(name: str) -> None:
    """A smaller run of the benchmark: coverage within the goal's 2 points plus three
    binomial standard errors of `SEEDS` seeds."""
    (setting,) = [s for s in SETTINGS if s.name == name]
    out = simulate(setting, SEEDS, seed=11)
    assert out.n_intervals == SEEDS
    tolerance = 0.02 + 3 * math.sqrt(0.95 * 0.05 / SEEDS)
    assert abs(out.coverage - 0.95) <= tolerance, out
    assert out.mean_estimate == pytest.approx(setting.true_rate, abs=0.02)


def test_with_repetitions_the_iid_se_would_not_cover() -> None:
    """Why the cluster-robust SE is used: the same simulation with the rows' CLT SE
    (repetitions of an example treated as independent) under-covers."""
    from dataclasses import replace

    setting = replace(
        next(s for s in SETTINGS if s.name == "repetitions"), repetitions=8, examples=120
    )
    rng = np.random.default_rng(5)
    clustered = simulate(setting, SEEDS, seed=5).coverage
    covered = 0
    for _ in range(SEEDS):
        truth = rng.random(setting.examples) < setting.true_rate
        u = rng.random((setting.examples, setting.repetitions))
        v = np.where(truth[:, None], u < setting.tpr, u >= setting.tnr)
        p = float(v.mean())
        errors = JudgeErrors(n_pass=150, tp=135, n_fail=50, tn=45)  # the true TPR/TNR
        c = corrected_rate(p, math.sqrt(p * (1 - p) / v.size), errors)
        covered += c.ci_low <= setting.true_rate <= c.ci_high
    iid = covered / SEEDS
    assert iid < 0.95 - 3 * math.sqrt(0.95 * 0.05 / SEEDS) < clustered


def test_the_view_and_the_module_use_the_settings_default() -> None:
    from evalkeeper.analysis.corrected import MIN_J
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse.views import VIEWS

    default = Settings().analysis.corrected_min_j
    assert default == MIN_J
    assert f"WHEN j_ci_low <= {default:g} THEN 'uninformative'" in VIEWS["corrected_pass_rates"]
