"""Every statistic in `evalkeeper.stats` against an independent computation.

References: statsmodels (a test dependency only), a textbook table with a published answer,
hand-computed binomial sums, exhaustive enumeration, and seeded simulations of the verdict.
Run with `-s` to see the simulated false-positive rate and power.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import rankdata
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from evalkeeper.analysis import stats
from evalkeeper.analysis.stats import CellEvidence, decide, paired_comparison

# -- one side -------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (7, 10), (10, 10), (83, 120), (1, 400)])
def test_proportion_ci_matches_statsmodels_normal(k: int, n: int) -> None:
    values = np.array([1.0] * k + [0.0] * (n - k))
    est = stats.estimate(values)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="normal")
    assert est.mean == pytest.approx(k / n)
    assert est.se == pytest.approx(math.sqrt(k / n * (1 - k / n) / n))
    assert est.ci_low == pytest.approx(lo, abs=1e-12)
    assert est.ci_high == pytest.approx(hi, abs=1e-12)


def test_continuous_clt_se_is_sample_sd_over_root_n() -> None:
    y = np.random.default_rng(1).normal(3.0, 2.0, 57)
    est = stats.estimate(y)
    assert est.se == pytest.approx(y.std(ddof=1) / math.sqrt(y.size))
    assert est.ci_low == pytest.approx(y.mean() - 1.959963984540054 * est.se)


def _statsmodels_cluster_se(y: np.ndarray, groups: np.ndarray) -> float:
    fit = OLS(y, np.ones((y.size, 1))).fit()
    robust = fit.get_robustcov_results(cov_type="cluster", groups=groups)
    return float(robust.bse[0])


@pytest.mark.parametrize("binary", [True, False])
def test_cluster_robust_se_matches_statsmodels(binary: bool) -> None:
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 9, size=40)  # unbalanced clusters
    groups = np.repeat(np.arange(sizes.size), sizes)
    effect = rng.normal(0, 1, sizes.size)[groups]
    y = (
        (rng.random(groups.size) < 1 / (1 + np.exp(-effect))).astype(float)
        if binary
        else (effect + rng.normal(0, 1, groups.size))
    )
    labels = np.array([f"ex-{g}" for g in groups])  # string ids, as in the warehouse
    est = stats.estimate(y, labels)
    assert est.n_clusters == sizes.size
    assert est.se_cluster == pytest.approx(_statsmodels_cluster_se(y, groups), rel=1e-10)
    assert stats.cluster_robust_se(y, labels) == pytest.approx(est.se_cluster, rel=1e-12)
    # the interval is built on the cluster-robust SE
    assert est.ci_high - est.ci_low == pytest.approx(
        2 * 1.959963984540054 * est.se_cluster, rel=1e-9
    ) or (binary and (est.ci_low == 0.0 or est.ci_high == 1.0))


def test_cluster_se_with_singleton_clusters_is_the_clt_se() -> None:
    y = np.random.default_rng(3).normal(0, 1, 30)
    est = stats.estimate(y, np.arange(30))
    assert est.se_cluster == pytest.approx(y.std(ddof=1) / math.sqrt(30))


def test_estimate_from_groups_equals_row_level() -> None:
    rng = np.random.default_rng(11)
    groups = rng.integers(0, 6, 200)
    y = (rng.random(200) < 0.6).astype(float)
    n_g = np.bincount(groups)
    s_g = np.bincount(groups, weights=y)
    agg = stats.estimate_from_groups(n_g, s_g, s_g, binary=True, clustered=True)
    assert agg == stats.estimate(y, groups)


# -- McNemar --------------------------------------------------------------------------------


def test_mcnemar_agresti_presidential_approval() -> None:
    # Agresti, Categorical Data Analysis (2nd ed.), Table 10.1: approval at two surveys,
    # 794 / 150 / 86 / 570; the published McNemar statistic is z**2 = 17.36.
    table = [[794, 150], [86, 570]]
    res = stats.mcnemar_exact(worse=150, better=86)
    assert res.chi2 == pytest.approx(17.36, abs=0.005)
    chi2 = sm_mcnemar(table, exact=False, correction=False)
    assert res.chi2 == pytest.approx(chi2.statistic)
    # exact two-sided p by hand: 2 * P(X <= 86), X ~ Bin(236, 1/2)
    by_hand = 2 * sum(math.comb(236, k) for k in range(87)) / 2**236
    assert res.p_value == pytest.approx(by_hand, rel=1e-9)
    assert res.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-9)


@pytest.mark.parametrize(("worse", "better"), [(0, 0), (5, 0), (3, 3), (12, 4), (1, 9)])
def test_mcnemar_exact_matches_statsmodels(worse: int, better: int) -> None:
    table = [[20, worse], [better, 7]]
    assert stats.mcnemar_exact(worse, better).p_value == pytest.approx(
        sm_mcnemar(table, exact=True).pvalue, rel=1e-12
    )


def test_paired_binary_runs_mcnemar_on_the_discordant_pairs() -> None:
    rng = np.random.default_rng(5)
    b = (rng.random(150) < 0.8).astype(float)
    c = np.where(rng.random(150) < 0.2, 1 - b, b)
    res = paired_comparison(b, c, binary=True)
    table = [
        [np.sum((b == 1) & (c == 1)), np.sum((b == 1) & (c == 0))],
        [np.sum((b == 0) & (c == 1)), np.sum((b == 0) & (c == 0))],
    ]
    assert res.test == "mcnemar_exact"
    assert (res.n_worse, res.n_better) == (table[0][1], table[1][0])
    assert res.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-12)
    d = c - b
    assert res.diff == pytest.approx(c.mean() - b.mean())
    assert res.se == pytest.approx(d.std(ddof=1) / math.sqrt(150))
    assert res.ci_low == pytest.approx(res.diff - 1.959963984540054 * res.se)
    # a pass-rate difference interval stays inside [-1, 1]
    steep = paired_comparison(np.ones(6), np.array([0, 0, 0, 0, 0, 1.0]), binary=True)
    assert steep.ci_low == -1.0 and steep.ci_high < 0
    # fractions (repetitions averaged) switch to the sign test on the same binomial
    frac = paired_comparison(b * 2 / 3, c * 2 / 3, binary=True)
    assert frac.test == "sign"
    assert frac.p_value == pytest.approx(res.p_value)


# -- Wilcoxon -------------------------------------------------------------------------------


def test_wilcoxon_all_zero_differences_is_p_one() -> None:
    assert stats.wilcoxon_pratt(np.zeros(8)) == (0.0, 1.0)
    assert stats.wilcoxon_pratt(np.array([])) == (0.0, 1.0)
    res = paired_comparison(np.full(5, 0.4), np.full(5, 0.4), binary=False)
    assert res.p_value == 1.0 and res.test == "wilcoxon_pratt"
    assert math.isfinite(res.mde) and res.mde > 0  # floored, not zero


def test_wilcoxon_matches_exhaustive_sign_enumeration() -> None:
    d = np.array([0.31, -0.05, 0.12, 0.44, 0.27, -0.18, 0.09, 0.52, 0.36])
    _, p = stats.wilcoxon_pratt(d)
    ranks = rankdata(np.abs(d))
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    as_extreme = 0
    for signs in itertools.product([1, -1], repeat=d.size):
        s = np.array(signs)
        r_plus = ranks[s > 0].sum()
        if min(r_plus, ranks.sum() - r_plus) <= observed:
            as_extreme += 1
    assert p == pytest.approx(as_extreme / 2**d.size, rel=1e-9)


def test_wilcoxon_pratt_keeps_zeros_in_the_ranking() -> None:
    # Pratt ranks |d| with the zeros, then drops them: the normal approximation by hand.
    d = np.array([0.0, 0.0, 0.2, -0.1, 0.4, 0.3, 0.5, 0.6, -0.7, 0.8, 0.9, 1.0] * 3)
    _, p = stats.wilcoxon_pratt(d)
    r = rankdata(np.abs(d))
    nz = d != 0
    r_plus = r[d > 0].sum()
    n, n0 = d.size, np.sum(~nz)
    mean = (n * (n + 1) - n0 * (n0 + 1)) / 4
    _, counts = np.unique(r[nz], return_counts=True)
    var = (n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1)) / 24 - np.sum(
        counts**3 - counts
    ) / 48
    from scipy.stats import norm

    by_hand = 2 * norm.sf(abs(r_plus - mean) / math.sqrt(var))
    assert p == pytest.approx(by_hand, rel=1e-6)


# -- FDR, MDE, latency ----------------------------------------------------------------------


def test_bh_matches_statsmodels_and_keeps_gaps() -> None:
    ps = [0.001, 0.2, None, 0.03, 0.04, 0.9, 0.012]
    got = stats.bh_adjust(ps)
    present = [p for p in ps if p is not None]
    want = multipletests(present, method="fdr_bh")[1]
    assert got[2] is None
    assert [g for g in got if g is not None] == pytest.approx(list(want))
    assert stats.bh_adjust([]) == []


def test_mde_formula_and_floor() -> None:
    assert stats.mde(0.05) == pytest.approx((1.959963984540054 + 0.8416212335729143) * 0.05)
    assert stats.mde(0.05, alpha=0.01) == pytest.approx((2.5758293035489 + 0.8416212335729) * 0.05)
    # floor: zero events in n trials -> 95% upper bound pi_up with (1 - pi_up)**n = 0.05
    n = 12
    pi_up = (stats.se_floor(n) ** 2) * n
    assert (1 - pi_up) ** n == pytest.approx(0.05)
    identical = paired_comparison(np.ones(n), np.ones(n), binary=True)
    assert identical.se == 0 and identical.se_mde == pytest.approx(stats.se_floor(n))
    assert identical.mde > stats.MAX_MDE  # 12 identical examples cannot vouch for "no change"
    big = paired_comparison(np.ones(400), np.ones(400), binary=True)
    assert big.mde < 0.05


def test_mde_gives_eighty_percent_power_for_a_z_test() -> None:
    # independent check of the formula: a two-sided z-test at alpha with true effect = MDE
    se = 0.037
    effect = stats.mde(se)
    from scipy.stats import norm

    power = norm.sf(1.959963984540054 - effect / se) + norm.cdf(-1.959963984540054 - effect / se)
    assert power == pytest.approx(0.80, abs=1e-6)


def test_percentiles() -> None:
    p50, p95 = stats.percentiles(np.arange(1, 101))
    assert (p50, p95) == pytest.approx((50.5, 95.05))
    assert stats.percentiles([]) == [None, None]
    assert stats.percentiles([np.nan, 2.0]) == [2.0, 2.0]


# -- the verdict rule -----------------------------------------------------------------------


def _cell(diff: float, p: float | None, mde: float | None = 0.05, **kw: object) -> CellEvidence:
    return CellEvidence(diff=diff, p_value=p, mde=mde, **kw)  # type: ignore[arg-type]


def test_decide_rules() -> None:
    kw = {"alpha": 0.05, "tolerance": 0.0, "max_error_rate": 0.2}
    overall = _cell(0.0, 0.9, overall=True)
    assert decide([overall, _cell(-0.1, 0.2)], **kw).verdict == "pass"
    d = decide([overall, _cell(-0.3, 0.001)], **kw)
    assert d.verdict == "regression" and d.regressed == [False, True]
    # an improvement is never a regression
    assert decide([overall, _cell(+0.3, 0.001)], **kw).verdict == "pass"
    # within tolerance
    assert decide([overall, _cell(-0.03, 0.001)], **{**kw, "tolerance": 0.05}).verdict == "pass"
    # BH: p = 0.04 alone is significant, among 4 unremarkable cells it is not
    alone = _cell(-0.2, 0.04, overall=True)
    assert decide([alone], **kw).verdict == "regression"
    many = [alone, _cell(0, 0.5), _cell(0, 0.7), _cell(0, 0.9)]
    assert decide(many, **kw).verdict == "pass"
    # critical rows override everything
    assert decide([overall], critical_regressions=1, **kw).verdict == "regression"
    # underpowered / errors / no data -> inconclusive
    assert decide([_cell(0, 0.9, mde=0.35, overall=True)], **kw).verdict == "inconclusive"
    assert decide([_cell(0, 0.9, overall=True, power_checked=False, mde=3.0)], **kw).verdict == (
        "pass"
    )
    assert decide([_cell(0, 0.9, overall=True, error_rate=0.3)], **kw).verdict == "inconclusive"
    assert decide([_cell(math.nan, None, mde=None, overall=True)], **kw).verdict == "inconclusive"
    # a regression wins over inconclusive
    assert (
        decide([_cell(-0.5, 1e-6, mde=0.35, overall=True, error_rate=0.5)], **kw).verdict
        == "regression"
    )


# -- simulations ----------------------------------------------------------------------------

ALPHA = 0.05
N_SIM = 2000


def _simulated_verdict(
    rng: np.random.Generator, n: int, drop: float, categories: int
) -> stats.Decision:
    """One evaluator, `n` examples; each example has its own pass probability ~ Beta(2, 0.8)
    (mean 0.714, many near-certain passes, like a real suite), both sides draw independently
    from it; the candidate's probability is scaled down so its mean drops by `drop`. The
    cells are what `compare` builds: `__all__` plus one per category."""
    p = rng.beta(2.0, 0.8, n)
    p_cand = p * (1 - drop / (2.0 / 2.8))
    base = (rng.random(n) < p).astype(float)
    cand = (rng.random(n) < p_cand).astype(float)
    cat = np.arange(n) % categories
    masks = [np.ones(n, dtype=bool)] + [cat == j for j in range(categories)]
    cells = []
    for i, m in enumerate(masks):
        r = paired_comparison(base[m], cand[m], binary=True, alpha=ALPHA)
        cells.append(CellEvidence(diff=r.diff, p_value=r.p_value, mde=r.mde, overall=i == 0))
    return decide(cells, alpha=ALPHA, tolerance=0.0, max_error_rate=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("categories", [1, 3])
def test_false_regression_rate_under_no_change_is_at_most_alpha(categories: int) -> None:
    rng = np.random.default_rng(20261125 + categories)
    verdicts = [_simulated_verdict(rng, 200, 0.0, categories).verdict for _ in range(N_SIM)]
    rate = verdicts.count("regression") / N_SIM
    mc_se = math.sqrt(ALPHA * (1 - ALPHA) / N_SIM)
    print(
        f"\n[sim] no change, 200 examples, {categories} categories, {N_SIM} comparisons: "
        f"false regression rate = {rate:.4f} (alpha = {ALPHA}, MC se {mc_se:.4f}); "
        f"inconclusive = {verdicts.count('inconclusive') / N_SIM:.4f}"
    )
    assert rate <= ALPHA + 2 * mc_se


@pytest.mark.slow
def test_power_for_a_ten_point_drop_on_200_examples() -> None:
    rng = np.random.default_rng(20261126)
    results = {
        k: [_simulated_verdict(rng, 200, 0.10, k).verdict for _ in range(N_SIM)] for k in (1, 3)
    }
    power = {k: v.count("regression") / N_SIM for k, v in results.items()}
    print(
        f"\n[sim] true 10-point drop, 200 examples, {N_SIM} comparisons: power = "
        f"{power[1]:.3f} (1 category), {power[3]:.3f} (3 categories: BH over 4 cells)"
    )
    assert 0.5 < power[1] < 0.95
    assert 0.3 < power[3] <= power[1] + 0.05
