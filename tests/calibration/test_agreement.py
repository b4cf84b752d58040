"""The agreement coefficients against published worked examples and independent
implementations (statsmodels' `cohens_kappa`, the `krippendorff` package)."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from evalkeeper.analysis.agreement import (
    cohen_kappa,
    confusion,
    constant_baseline,
    gwet_ac1,
    kappa_bootstrap_ci,
    krippendorff_alpha_nominal,
    labels_for_half_width,
    labels_to_separate,
    pair_agreement,
    percent_agreement,
    wilson,
)


def test_fleiss_cohen_everitt_worked_example() -> None:
    k = cohen_kappa(np.array([[0, 4, 1], [0, 8, 0], [0, 1, 5]]))
    assert k.value == pytest.approx(0.4842, abs=5e-5)
    assert k.se == pytest.approx(0.1380, abs=5e-5)


def test_gwet_table_kappa_and_ac1() -> None:
    table = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    assert cohen_kappa(table).value == pytest.approx(0.7964, abs=5e-5)
    assert gwet_ac1(table).value == pytest.approx(0.8493, abs=5e-5)


@pytest.mark.parametrize(
    ("table", "kappa", "ac1"),
    [([[40, 9], [6, 45]], 0.70, 0.70), ([[80, 10], [5, 5]], 0.32, 0.81)],
)
def test_kappa_paradox_of_feinstein_and_cicchetti(
    table: list[list[int]], kappa: float, ac1: float
) -> None:
    t = np.array(table)
    assert percent_agreement(t).value == pytest.approx(0.85)
    assert cohen_kappa(t).value == pytest.approx(kappa, abs=0.005)
    assert gwet_ac1(t).value == pytest.approx(ac1, abs=0.005)


@pytest.mark.parametrize("seed", range(8))
def test_kappa_and_its_se_match_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = int(rng.integers(2, 5))
    table = rng.integers(0, 30, size=(q, q)) + np.eye(q, dtype=int) * rng.integers(5, 60)
    ours = cohen_kappa(table)
    ref = cohens_kappa(table)
    assert ours.value == pytest.approx(ref.kappa, rel=1e-9)
    assert ours.se == pytest.approx(ref.std_kappa, rel=1e-9)


def test_wilson_matches_statsmodels() -> None:
    for k, n in ((85, 100), (0, 20), (20, 20), (170, 200)):
        lo, hi = proportion_confint(k, n, method="wilson")
        assert wilson(k, n) == pytest.approx((lo, hi), abs=1e-9)
    assert wilson(0, 0) is None


def _ac1_linearised_se(a: np.ndarray, b: np.ndarray, q: int) -> float:
    """Gwet's per-item linearisation (the irrCAC way), written independently of the
    closed form: each item's agreement and chance terms, their sample variance."""
    n = a.size
    pi = np.array([(np.mean(a == k) + np.mean(b == k)) / 2 for k in range(q)])
    pe = float(np.sum(pi * (1 - pi)) / (q - 1))
    pa_i = (a == b).astype(float)
    ac1 = (pa_i.mean() - pe) / (1 - pe)
    pe_i = np.array([(1 - pi[x] + 1 - pi[y]) / (2 * (q - 1)) for x, y in zip(a, b, strict=True)])
    star = (pa_i - pe) / (1 - pe) - 2 * (1 - ac1) * (pe_i - pe) / (1 - pe)
    return math.sqrt(np.sum((star - ac1) ** 2) / (n * (n - 1)))


@pytest.mark.parametrize("seed", range(4))
def test_ac1_se_agrees_with_the_per_item_linearisation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    human = (rng.random(400) < 0.25).astype(int)
    judge = np.where(rng.random(400) < 0.85, human, 1 - human)
    ours = gwet_ac1(confusion(judge, human, 2))
    assert ours.se == pytest.approx(_ac1_linearised_se(judge, human, 2), rel=0.02)


def test_krippendorff_alpha_matches_the_package() -> None:
    rng = np.random.default_rng(7)
    for q in (2, 3):
        units: list[list[int]] = []
        data = np.full((4, 60), np.nan)
        for u in range(60):
            truth = int(rng.integers(q))
            m = int(rng.integers(1, 5))
            coders = rng.choice(4, size=m, replace=False)
            labels = [truth if rng.random() < 0.8 else int(rng.integers(q)) for _ in coders]
            units.append(labels)
            for c, label in zip(coders, labels, strict=True):
                data[c, u] = label
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert krippendorff_alpha_nominal(units, q) == pytest.approx(ref, rel=1e-9)


def test_undefined_values_are_none_not_zero() -> None:
    same = np.array([[30, 0], [0, 0]])
    assert cohen_kappa(same).value is None
    assert percent_agreement(np.zeros((2, 2), dtype=int)).value is None
    assert krippendorff_alpha_nominal([[0, 0], [0, 0, 0]], 2) is None
    assert kappa_bootstrap_ci([0] * 10, [0] * 10, 2, seed=1) is None


def test_bootstrap_interval_is_seeded_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(3)
    human = (rng.random(300) < 0.3).astype(int)
    judge = np.where(rng.random(300) < 0.85, human, 1 - human)
    a = pair_agreement(judge, human, 2, seed=11, n_resamples=500)
    b = pair_agreement(judge, human, 2, seed=11, n_resamples=500)
    c = pair_agreement(judge, human, 2, seed=12, n_resamples=500)
    assert a.kappa.ci == b.kappa.ci and a.kappa.ci != c.kappa.ci
    assert a.kappa.ci is not None and a.kappa.value is not None
    assert a.kappa.ci[0] < a.kappa.value < a.kappa.ci[1]
    # the bootstrap and the asymptotic interval tell the same story at n = 300
    assert a.kappa.se is not None
    assert (a.kappa.ci[1] - a.kappa.ci[0]) == pytest.approx(2 * 1.96 * a.kappa.se, rel=0.25)


def test_sizing_rule_matches_the_issue() -> None:
    assert 190 <= labels_for_half_width(0.85, 0.05) <= 205  # about 200 for ±5 points
    assert 360 <= labels_to_separate(0.85, 0.80) <= 380  # about 370 to tell 85% from 80%
    with pytest.raises(ValueError, match="must be in"):
        labels_for_half_width(1.0, 0.05)


def test_pair_codes_give_scipys_paired_bootstrap() -> None:
    """Resampling pair codes is the paired bootstrap: the same interval as scipy's
    `paired=True` on the two label arrays, with the same seed."""
    from scipy import stats as sps

    rng = np.random.default_rng(5)
    human = (rng.random(150) < 0.3).astype(int)
    judge = np.where(rng.random(150) < 0.8, human, 1 - human)

    def kappa(a: np.ndarray, b: np.ndarray) -> float:
        value = cohen_kappa(confusion(a, b, 2)).value
        assert value is not None
        return value

    ref = sps.bootstrap(
        (judge, human), kappa, paired=True, vectorized=False, n_resamples=300,
        method="BCa", rng=np.random.default_rng(9),
    ).confidence_interval  # fmt: skip
    ours = kappa_bootstrap_ci(judge, human, 2, seed=9, n_resamples=300)
    assert ours == pytest.approx((ref.low, ref.high), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_ac1_matches_the_direct_formula(seed: int) -> None:
    """AC1 from the item labels by its definition (Gwet 2008): pi_k the mean of the two
    raters' shares of k, pe = sum pi_k (1 - pi_k) / (q - 1)."""
    rng = np.random.default_rng(100 + seed)
    q, n = int(rng.integers(2, 5)), int(rng.integers(30, 300))
    a = rng.integers(0, q, n)
    b = np.where(rng.random(n) < 0.7, a, rng.integers(0, q, n))
    po = float(np.mean(a == b))
    pe = sum(
        ((np.mean(a == k) + np.mean(b == k)) / 2) * (1 - (np.mean(a == k) + np.mean(b == k)) / 2)
        for k in range(q)
    ) / (q - 1)
    assert gwet_ac1(confusion(a, b, q)).value == pytest.approx((po - pe) / (1 - pe), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_the_baseline_is_the_best_constant_judges_agreement(seed: int) -> None:
    """Simulate every constant judge on the labels: the baseline is the best one's
    agreement, its label that judge's answer, and a constant judge's kappa is 0
    (statsmodels)."""
    rng = np.random.default_rng(seed)
    q, n = int(rng.integers(2, 5)), int(rng.integers(20, 400))
    human = rng.choice(q, size=n, p=rng.dirichlet(np.ones(q) * 0.7))
    base = constant_baseline(human, q)
    simulated = [pair_agreement(np.full(n, k), human, q).agreement.value for k in range(q)]
    assert base.agreement.value == pytest.approx(max(simulated), abs=1e-12)
    assert base.label == int(np.argmax(simulated))
    assert base.agreement.ci == wilson(int(np.sum(human == base.label)), n)
    if len(set(human.tolist())) > 1:
        table = confusion(np.full(n, base.label), human, q)
        assert cohens_kappa(table).kappa == pytest.approx(0.0, abs=1e-12)
    assert constant_baseline([], q).agreement.value is None


def test_the_baseline_interval_covers_a_constant_judges_true_agreement() -> None:
    """A constant "pass" judge on sets that are 90% passes: its true agreement is 0.90. The
    baseline's 95% interval covers it in 95% of seeds, within three binomial standard
    errors of the seed count."""
    seeds, n, p = 2000, 200, 0.90
    rng = np.random.default_rng(2026)
    covered = 0
    for _ in range(seeds):
        human = (rng.random(n) >= p).astype(int)  # 0 = pass
        ci = constant_baseline(human, 2).agreement.ci
        assert ci is not None
        covered += ci[0] <= p <= ci[1]
    tolerance = 3 * math.sqrt(0.95 * 0.05 / seeds)
    assert abs(covered / seeds - 0.95) <= tolerance
