"""The group-sequential rollback test (`spending`) against independent computations.

The boundaries' crossing probabilities against the published Pocock and O'Brien-Fleming
constants (Jennison and Turnbull 2000, Table 2.1 and 2.3), scipy's multivariate normal
distribution (Genz's algorithm, a second library), and a Monte Carlo simulation of the
canonical joint distribution; the statistic against scipy's G-test (the log-likelihood
ratio of a 2x2 table) and a numerical maximisation of the restricted likelihood; the
false-rollback rate of `decide` under the null by simulation, irregular looks included,
with a tolerance from the binomial error of the number of simulated windows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from evalkeeper.analysis.group_sequential import (
    boundaries,
    crossing_probabilities,
    information,
    restricted_mle,
    signed_root,
    spending,
)
from evalkeeper.monitor.decision import EvaluatorCounts, MonitorPolicy, decide

POLICY = MonitorPolicy()


@pytest.mark.parametrize(
    ("constants", "name"),
    [
        ([2.413] * 5, "Pocock"),  # C_P(5, 0.05), two-sided: J&T Table 2.1
        ([2.040 * math.sqrt(5 / k) for k in range(1, 6)], "O'Brien-Fleming"),  # C_B(5, 0.05)
    ],
)
def test_published_constants_cross_with_half_of_two_sided_alpha(
    constants: list[float], name: str
) -> None:
    """Five equally spaced looks at the two-sided 5% constants: the upper boundary alone is
    crossed with probability 0.025 (the lower one's overlap is below 1e-6); the constants
    are printed to 3 decimals, which moves the probability by less than 2e-4."""
    total = sum(crossing_probabilities([1, 2, 3, 4, 5], constants))
    assert total == pytest.approx(0.025, abs=2e-4), name


def _mvn_crossing(infos: list[float], bounds: list[float]) -> float:
    """1 - P(Z_1 < c_1, ..., Z_K < c_K) by scipy's multivariate normal cdf."""
    k = len(infos)
    cov = np.array(
        [[math.sqrt(min(infos[i], infos[j]) / max(infos[i], infos[j])) for j in range(k)]
         for i in range(k)]
    )  # fmt: skip
    mvn = stats.multivariate_normal(mean=np.zeros(k), cov=cov, abseps=1e-7, releps=1e-7)
    return 1.0 - float(mvn.cdf(np.array(bounds), rng=np.random.default_rng(3)))


@pytest.mark.parametrize(
    ("ns", "times", "rho"),
    [
        ([300, 350, 700], [0.25, 0.3, 0.6], 0.1),
        ([120, 400, 410, 2000], [0.1, 0.2, 0.5, 1.0], 0.5),
        ([60, 90, 150, 300, 312], [0.05, 0.08, 0.2, 0.9, 1.0], 1.0),
    ],
)
def test_boundaries_spend_alpha_as_scipys_multivariate_normal_says(
    ns: list[int], times: list[float], rho: float
) -> None:
    infos = [information(n, 5000) for n in ns]
    alpha = 0.05
    bounds = boundaries(infos, times, alpha, rho)
    for k in range(1, len(ns) + 1):
        expected = spending(times[k - 1], alpha, rho)
        assert _mvn_crossing(infos[:k], bounds[:k]) == pytest.approx(expected, abs=2e-5)


def test_boundaries_against_a_monte_carlo_of_the_canonical_distribution() -> None:
    """Score paths with independent increments, irregular information: each look's first
    crossing rate within 4 standard errors of the spent alpha increment."""
    rng = np.random.default_rng(20261207)
    ns = [200, 260, 600, 625, 1500, 3000]
    infos = np.array([information(n, 4000) for n in ns])
    times = [0.1, 0.15, 0.3, 0.31, 0.6, 1.0]
    alpha, rho, runs = 0.1, 0.3, 400_000
    bounds = np.array(boundaries(list(infos), times, alpha, rho))
    steps = rng.standard_normal((runs, len(ns))) * np.sqrt(np.diff(infos, prepend=0.0))
    z = steps.cumsum(axis=1) / np.sqrt(infos)
    crossed = z >= bounds
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    spent = [spending(t, alpha, rho) for t in times]
    increments = np.diff(spent, prepend=0.0)
    for k, inc in enumerate(increments):
        seen = float(np.mean(first == k))
        assert abs(seen - inc) <= 4 * math.sqrt(inc * (1 - inc) / runs) + 1e-12, k
    total = float(np.mean(first >= 0))
    assert abs(total - spent[-1]) <= 4 * math.sqrt(spent[-1] * (1 - spent[-1]) / runs)


def test_power_by_the_recursion_matches_a_monte_carlo_under_a_drift() -> None:
    rng = np.random.default_rng(5)
    infos = np.array([information(n, 5000) for n in (300, 400, 500, 1000)])
    bounds = boundaries(list(infos), [0.1, 0.15, 0.2, 0.4], 0.05, 0.1)
    drift, runs = 0.1, 200_000
    inc = rng.standard_normal((runs, 4)) * np.sqrt(np.diff(infos, prepend=0.0))
    z = (inc + drift * np.diff(infos, prepend=0.0)).cumsum(axis=1) / np.sqrt(infos)
    power = float(np.mean((z >= np.array(bounds)).any(axis=1)))
    expected = sum(crossing_probabilities(list(infos), bounds, drift))
    assert abs(power - expected) <= 4 * math.sqrt(expected * (1 - expected) / runs)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(30, 500, 250, 5000), (3, 50, 10, 200), (40, 300, 15, 300)]
)
def test_the_signed_root_is_the_g_test_of_the_2x2_table(x1: int, n1: int, x2: int, n2: int) -> None:
    """Without tolerance and correction, Z**2 is the G statistic (scipy's chi2_contingency
    with the log-likelihood ratio, no Yates correction)."""
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    g, *_ = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    z = signed_root(x1, n1, x2, n2, 0.0, correction=0.0)
    assert z * z == pytest.approx(g, rel=1e-9)
    assert math.copysign(1.0, z) == math.copysign(1.0, x1 / n1 - x2 / n2)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "delta"),
    [
        (3, 50, 10, 200, 0.02),
        (40, 300, 15, 300, 0.05),
        (30, 500, 250, 5000, 0.01),
        (0, 80, 9, 900, 0.03),
    ],
)
def test_restricted_mle_maximises_the_likelihood_under_the_constraint(
    x1: int, n1: int, x2: int, n2: int, delta: float
) -> None:
    """Against scipy's bounded scalar minimiser of the negative log-likelihood along
    p1 = p2 + delta. (statsmodels' score test is not used here: its Miettinen-Nurminen
    cubic has a wrong coefficient for a non-zero difference, statsmodels issue #10269.)"""

    def nll(p2: float) -> float:
        p1 = p2 + delta
        return -(stats.binom.logpmf(x1, n1, p1) + stats.binom.logpmf(x2, n2, p2))

    best = optimize.minimize_scalar(
        nll, bounds=(1e-12, 1 - delta - 1e-12), method="bounded", options={"xatol": 1e-12}
    )
    r1, r2 = restricted_mle(x1, n1, x2, n2, delta)
    assert r1 - r2 == pytest.approx(delta)
    assert r2 == pytest.approx(best.x, abs=1e-6)


def test_the_continuity_correction_moves_toward_the_null_and_never_past_it() -> None:
    assert signed_root(30, 500, 250, 5000) < signed_root(30, 500, 250, 5000, correction=0.0)
    assert signed_root(25, 500, 250, 5000) == 0.0
    assert signed_root(10, 500, 250, 5000) < 0.0
    with pytest.raises(ValueError, match="both sides"):
        signed_root(0, 0, 1, 10)


# -- decide with the spending test -----------------------------------------------------


def _walk(
    rng: np.random.Generator,
    base_rate: float,
    rate: float,
    n0: int,
    policy: MonitorPolicy,
    looks: int = 48,
    mean_per_look: float = 50.0,
    irregular: bool = False,
) -> int | None:
    """One window decided look by look through `decide`, as ticks do: the traces seen when
    it rolled back, or None."""
    x0 = int(rng.binomial(n0, base_rate))
    n = flags = 0
    history: list[tuple[float, EvaluatorCounts]] = []
    for k in range(1, looks + 1):
        if irregular and rng.random() < 0.1 and k < looks:
            continue  # a crashed tick: the next one sees its traffic
        per = mean_per_look * (1 + 0.9 * math.sin(k / 3.0)) if irregular else mean_per_look
        new = int(rng.poisson(per)) if irregular else int(per)
        n += new
        flags += int(rng.binomial(new, rate))
        at = k / looks
        for _ in range(2 if irregular and rng.random() < 0.05 else 1):  # a rerun, no new data
            c = EvaluatorCounts("e", n0, x0, 0, n, flags, 0)
            d = decide([c], policy, final=k == looks, elapsed=at, history={"e": history})
            if d.decision == "rollback":
                return n
            history.append((at, c))
    return None


@pytest.mark.parametrize(
    ("base_rate", "tolerance", "irregular"),
    [(0.05, 0.0, False), (0.02, 0.0, True), (0.05, 0.02, True)],
)
def test_false_rollbacks_stay_under_alpha_through_decide(
    base_rate: float, tolerance: float, irregular: bool
) -> None:
    """Unchanged traffic (the window at the baseline's rate + the tolerance: the hardest
    null), at a generous alpha of 0.2 so that a broken boundary would show: at most 0.2
    plus 3 binomial standard errors of the number of windows."""
    rng = np.random.default_rng(int(base_rate * 1000) + int(tolerance * 100) + irregular)
    policy = MonitorPolicy(alpha=0.2, tolerance=tolerance)
    windows = 400
    fired = sum(
        _walk(rng, base_rate, base_rate + tolerance, 3000, policy, irregular=irregular) is not None
        for _ in range(windows)
    )
    assert fired / windows <= 0.2 + 3 * math.sqrt(0.2 * 0.8 / windows)
    assert fired > 0  # a test that can reject


def test_a_rise_from_5_to_7_5_percent_is_caught_within_500_traces_in_most_windows() -> None:
    """The benchmark's scenario, smaller: the median detection at most 500 traces."""
    rng = np.random.default_rng(75)
    caught = [_walk(rng, 0.05, 0.075, 5000, POLICY, looks=96) for _ in range(120)]
    seen = [n for n in caught if n is not None]
    assert len(seen) >= 110
    assert float(np.median(seen)) <= 500


def test_a_rerun_decides_the_same_and_a_look_without_new_traffic_spends_nothing() -> None:
    first = EvaluatorCounts("e", 5000, 250, 0, 300, 18, 0)
    second = EvaluatorCounts("e", 5000, 250, 0, 350, 22, 0)
    history = {"e": [(6 / 96, first)]}
    a = decide([second], POLICY, final=False, elapsed=7 / 96, history=history).evaluators[0]
    again = decide([second], POLICY, final=False, elapsed=7 / 96, history=history).evaluators[0]
    assert a == again
    assert a.analyses == 2 and a.threshold is not None and a.spent is not None
    # the same counts again an hour later: not an analysis, the same boundary and alpha
    later = decide(
        [second], POLICY, final=False, elapsed=11 / 96,
        history={"e": [*history["e"], (7 / 96, second)]},
    ).evaluators[0]  # fmt: skip
    assert later.analyses == 2
    assert (later.threshold, later.spent, later.statistic) == (a.threshold, a.spent, a.statistic)
    assert "no new traffic" in later.reason


def test_no_analysis_before_the_expected_flags_and_the_mixture_decides_if_never() -> None:
    few = EvaluatorCounts("e", 5000, 250, 0, 200, 12, 0)  # 10 expected flags < 15
    d = decide([few], POLICY, final=False, elapsed=0.1).evaluators[0]
    assert d.decision == "continue" and d.threshold is None and d.analyses == 0
    assert "min_expected is 15" in d.reason
    # at the end the fast path's mixture test decides; without it, nothing can
    end = decide([few], POLICY, final=True, elapsed=1.0).evaluators[0]
    assert end.decision == "stable" and "the mixture test" in end.reason
    alone = MonitorPolicy(fast_share=0.0)
    never = decide([few], alone, final=True, elapsed=1.0)
    assert never.decision == "inconclusive"
    assert "too few flags to test" in never.evaluators[0].reason


def test_a_glaring_rise_rolls_back_before_the_first_analysis_by_the_fast_path() -> None:
    glaring = EvaluatorCounts("e", 2400, 118, 0, 100, 60, 0)  # 5% -> 60%, 5 expected flags
    d = decide([glaring], POLICY, final=False, elapsed=1 / 24).evaluators[0]
    assert d.decision == "rollback" and d.analyses == 0
    assert "(fast path: the mixture test" in d.reason
    # the evidence is the deciding test's: its log LR against ln(1 / alpha_w)
    assert d.method == "mixture" and d.upper_bound is not None
    assert d.statistic is not None and d.threshold is not None
    assert d.statistic >= d.threshold
    alone = decide([glaring], MonitorPolicy(fast_share=0.0), final=False, elapsed=1 / 24)
    assert alone.decision == "continue"


def test_a_sparse_baseline_is_tested_by_the_mixture_test() -> None:
    rare = EvaluatorCounts("tool_error", 2000, 7, 0, 113, 10, 0)
    d = decide([rare], POLICY, final=False, elapsed=0.1).evaluators[0]
    assert d.method == "mixture" and d.decision == "rollback"
    assert "too few baseline flags" in d.reason


def test_errors_stay_inconclusive_and_alpha_is_split_across_evaluators() -> None:
    errored = EvaluatorCounts("e", 5000, 250, 0, 700, 140, 300)
    assert decide([errored], POLICY, final=False, elapsed=0.5).decision == "inconclusive"
    c = EvaluatorCounts("e", 5000, 250, 0, 400, 31, 0)
    alone = decide([c], POLICY, final=False, elapsed=0.1).evaluators[0]
    quiet = [EvaluatorCounts(f"q{i}", 5000, 250, 0, 400, 20, 0) for i in range(3)]
    shared = decide([c, *quiet], POLICY, final=False, elapsed=0.1).evaluators[0]
    assert shared.alpha == pytest.approx(alone.alpha / 4)
    assert shared.threshold is not None and alone.threshold is not None
    assert shared.threshold > alone.threshold
    with pytest.raises(ValueError, match="elapsed"):
        decide([c], POLICY, final=False)
