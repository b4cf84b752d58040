"""The planner's statistics against independent computations: statsmodels' power where
the closed form coincides with a textbook test, scipy's binomial test summed by
enumeration, simulations with known truth through the production test and decision, and
the ANOVA intraclass correlation against statsmodels' OLS ANOVA table."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as st
from statsmodels.stats.power import NormalIndPower

from evalkeeper.analysis import planner as P


def _tolerance(power: float, replicates: int) -> float:
    """Four binomial standard errors of a simulated power (a false alarm ~ 1 in 15,000)."""
    return 4 * math.sqrt(power * (1 - power) / replicates)


def test_the_closed_form_is_statsmodels_normal_power_where_they_coincide() -> None:
    # Connor's formula is a one-sample z-test of the mean sign s_i in {-1, 0, 1} with the
    # null sd sqrt(pi_d) for the critical value and the alternative's sqrt(pi_d - mu^2)
    # for the power; statsmodels' one-sample normal power (ratio=0) uses one sd for both.
    # They coincide as mu^2 / pi_d -> 0: a small drop on a 50% pass rate.
    model = P.ExampleModel(0.5, 0.0)
    probs = P.sign_probabilities(model, 0.01, 1)
    d = probs.worse + probs.better
    mu = probs.worse - probs.better
    effect = mu / math.sqrt(d - mu * mu)
    n_sm = NormalIndPower().solve_power(
        effect_size=effect, alpha=0.05, power=0.8, ratio=0.0, alternative="two-sided"
    )
    n_ours = P.n_normal(probs, 0.8, 0.05)
    # the only difference is the null sd sqrt(pi_d) vs sqrt(pi_d - mu^2): 1 + O(mu^2)
    assert n_ours == pytest.approx(n_sm, rel=2 * mu * mu / d + 1e-3)
    # and the power at that n is statsmodels' (one-sample z-test, ratio=0; its far tail is ~0)
    n = math.ceil(n_sm)
    assert P.power_normal(n, probs, 0.05) == pytest.approx(
        NormalIndPower().power(effect, n, 0.05, ratio=0.0, alternative="two-sided"), abs=2e-3
    )


def test_sign_probabilities_match_a_monte_carlo_of_the_model() -> None:
    rng = np.random.default_rng(7)
    cases = ((0.8, 0.4, 3), (0.6, 0.1, 2), (0.9, 0.7, 5), (0.7, 0.0, 1))
    for (p, rho, r), shape in itertools.product(cases, P.SHAPES):
        model = P.ExampleModel(p, rho)
        probs = P.sign_probabilities(model, 0.1, r, shape)
        n = 400_000
        pi = model.draw(rng, n)
        b = rng.binomial(r, pi) / r
        if shape == "diffuse":
            q = P.shrink(p, 0.1) * pi
        else:
            q = np.where(rng.random(n) < 0.1 / p, 0.0, pi)
        c = rng.binomial(r, q) / r
        d = c - b
        for est, exact in (
            (np.mean(d < 0), probs.worse),
            (np.mean(d > 0), probs.better),
        ):
            assert abs(est - exact) < 4 * math.sqrt(exact * (1 - exact) / n) + 1e-9
        assert np.mean(d) == pytest.approx(probs.mean_d, abs=4 * math.sqrt(probs.var_d / n))
        assert np.var(d) == pytest.approx(probs.var_d, rel=0.02)
        # the model's mean pass rate and intraclass correlation are what was asked
        assert np.mean(pi) == pytest.approx(p, abs=0.003)


def test_exact_power_is_scipys_binomtest_summed_over_every_outcome() -> None:
    probs = P.SignProbabilities(worse=0.3, better=0.15, mean_d=-0.15, var_d=0.4)
    n, alpha = 25, 0.05
    total = 0.0
    pw, pb = probs.worse, probs.better
    for worse in range(n + 1):
        for better in range(n + 1 - worse):
            same = n - worse - better
            prob = st.multinomial.pmf([worse, better, same], n, [pw, pb, 1 - pw - pb])
            p = st.binomtest(worse, worse + better, 0.5).pvalue if worse + better else 1.0
            if p < alpha and worse > better:
                total += prob
    assert P.power_exact(n, probs, alpha) == pytest.approx(total, abs=1e-10)


@pytest.mark.parametrize(
    ("p", "rho", "reps", "shape", "cells"),
    [
        (0.8, 0.5, 1, "diffuse", 1),
        (0.8, 0.5, 3, "diffuse", 1),
        (0.9, 0.2, 2, "concentrated", 1),
        (0.8, 0.5, 2, "concentrated", 1),
        (0.8, 0.3, 1, "diffuse", 6),
    ],
)
def test_the_planned_size_reaches_the_power_through_the_production_test(
    p: float, rho: float, reps: int, shape: P.Shape, cells: int
) -> None:
    """The small version of benchmarks/planner.py: data from the model, the gate's own
    `paired_comparison` and `decide` (with `cells - 1` null cells adjusted by BH), a
    tolerance of four binomial SEs of the replicates."""
    model = P.ExampleModel(p, rho)
    probs = P.sign_probabilities(model, 0.1, reps, shape)
    n = P.examples_needed(probs, power=0.8, alpha=0.05 / cells)
    assert n is not None
    replicates = 300
    simulated = P.simulate_power(
        model,
        detect=0.1,
        examples=n,
        repetitions=reps,
        alpha=0.05,
        tolerance=0.0,
        replicates=replicates,
        seed=11,
        shape=shape,
        cells=cells,
    )
    assert abs(simulated - 0.8) < _tolerance(0.8, replicates)
    # and one example fewer than planned is, by construction, below the asked power
    level = 0.05 / cells
    assert P.gate_power(n - 1, probs, alpha=level) < 0.8 <= P.gate_power(n, probs, alpha=level)


def test_the_plan_takes_the_shape_that_needs_more_examples() -> None:
    model = P.ExampleModel(0.8, 0.5)
    one = P.plan_size(model, 0.05, 1, power=0.8, alpha=0.05)
    # at one repetition the two shapes are the same test: same size
    assert one.by_shape["diffuse"] == one.by_shape["concentrated"] == one.examples
    three = P.plan_size(model, 0.05, 3, power=0.8, alpha=0.05)
    assert three.examples == max(v for v in three.by_shape.values() if v is not None)
    assert three.shape == "concentrated" and three.power is not None and three.power >= 0.8
    # both shapes reach the power at the planned size
    for shape in P.SHAPES:
        probs = P.sign_probabilities(model, 0.05, 3, shape)
        assert P.gate_power(three.examples or 0, probs, alpha=0.05) >= 0.8


def test_a_drop_too_small_to_plan_says_so() -> None:
    e = _plan(detect=0.0005)
    assert {o.status for o in e.options} == {"too_large"}
    assert all(o.examples is None and "more than" in o.note for o in e.options)


def test_repetitions_help_only_as_far_as_the_within_example_variance_goes() -> None:
    for rho in (0.0, 0.5, 0.9):
        needed = [
            P.examples_needed(
                P.sign_probabilities(P.ExampleModel(0.8, rho), 0.05, r), power=0.8, alpha=0.05
            )
            for r in P.REPETITION_OPTIONS
        ]
        assert all(a is not None and b is not None and b < a for a, b in itertools.pairwise(needed))
    # with every example alike (rho = 0) a repetition is just another draw of the same
    # coin: five of them on n examples buy less than 5n new examples would
    one = P.sign_probabilities(P.ExampleModel(0.8, 0.0), 0.05, 1)
    five = P.sign_probabilities(P.ExampleModel(0.8, 0.0), 0.05, 5)
    n1 = P.examples_needed(one, power=0.8, alpha=0.05)
    n5 = P.examples_needed(five, power=0.8, alpha=0.05)
    assert n1 is not None and n5 is not None and 5 * n5 > n1


def _beta_binomial(rng: np.random.Generator, p: float, rho: float, g: int, k: int) -> np.ndarray:
    return rng.binomial(k, P.ExampleModel(p, rho).draw(rng, g))


def test_anova_icc_is_statsmodels_anova_table_and_recovers_the_truth() -> None:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(3)
    # unbalanced groups: 1 to 4 repetitions
    k = rng.integers(1, 5, size=80)
    pi = P.ExampleModel(0.7, 0.4).draw(rng, 80)
    rows = [(g, int(rng.random() < pi[g])) for g in range(80) for _ in range(k[g])]
    frame = pl.DataFrame(rows, schema=["g", "y"], orient="row").to_pandas()
    table = anova_lm(smf.ols("y ~ C(g)", data=frame).fit())
    msb = table["mean_sq"].iloc[0]
    msw = table["mean_sq"].iloc[1]
    n = len(rows)
    k0 = (n - float(np.sum(k * k)) / n) / (80 - 1)
    expected = (msb - msw) / (msb + (k0 - 1) * msw)
    y = np.bincount(frame["g"], weights=frame["y"], minlength=80)
    assert P.estimate_icc(k, y).value == pytest.approx(expected, abs=1e-10)

    # known truth: the mean over seeds is within four SEs of the true correlation
    for rho in (0.1, 0.5):
        values = [
            P.estimate_icc(np.full(200, 3), _beta_binomial(rng, 0.75, rho, 200, 3)).value
            for _ in range(200)
        ]
        arr = np.array(values, dtype=float)
        assert abs(arr.mean() - rho) < 4 * arr.std(ddof=1) / math.sqrt(arr.size) + 0.01


def test_icc_from_the_discordance_of_two_runs_recovers_the_truth() -> None:
    rng = np.random.default_rng(5)
    for rho in (0.2, 0.6):
        got = []
        for _ in range(100):
            pi = P.ExampleModel(0.8, rho).draw(rng, 500)
            a, b = rng.random(500) < pi, rng.random(500) < pi
            disc = float(np.mean(a != b))
            got.append(P.icc_from_discordance(disc, float((a.mean() + b.mean()) / 2), 500).value)
        arr = np.array(got, dtype=float)
        assert abs(arr.mean() - rho) < 4 * arr.std(ddof=1) / 10 + 0.01


def _plan(**kw: object) -> P.EvaluatorPlan:
    args: dict[str, object] = {
        "pass_rate": 0.8,
        "icc": P.Icc(0.5, "repetitions", 40),
        "discordance": None,
        "discordance_pairs": 0,
        "usage": P.Usage(2.0, 0.001, "test"),
        "detect": 0.05,
        "power": 0.8,
        "alpha": 0.05,
        "tolerance": 0.0,
        "suites": [("smoke", 60, 1)],
        "fix": "run it with --repetitions 2",
    }
    args.update(kw)
    return P.plan_evaluator("ev", **args)  # type: ignore[arg-type]


def test_without_a_correlation_one_repetition_is_assumed_conservatively_and_more_are_inconclusive() -> (
    None
):
    unknown = _plan(icc=P.Icc(None, "none", 0))
    assert unknown.status == "assumed"
    assert [o.status for o in unknown.options] == [
        "ok",
        "inconclusive",
        "inconclusive",
        "inconclusive",
    ]
    assert any("--repetitions 2" in n for n in unknown.notes)
    # rho = 0 needs at least as many examples as any correlation would
    for rho in (0.2, 0.6, 0.9):
        known = _plan(icc=P.Icc(rho, "repetitions", 40))
        assert (known.options[0].examples or 0) <= (unknown.options[0].examples or 0)


def test_cost_unknown_stays_unknown_and_calls_scale_with_the_run() -> None:
    priced = _plan()
    o = priced.options[1]
    assert o.judge_calls == o.examples * 2 * 2  # examples x 2 repetitions x 2 calls
    assert o.cost_usd == pytest.approx(o.judge_calls * 0.001)
    unpriced = _plan(usage=P.Usage(2.0, None, "test"))
    assert all(opt.cost_usd is None for opt in unpriced.options)
    not_a_judge = _plan(usage=None)
    assert all(opt.judge_calls == 0 and opt.cost_usd == 0.0 for opt in not_a_judge.options)


def test_no_history_and_impossible_drops_are_inconclusive() -> None:
    none = _plan(pass_rate=None)
    assert none.status == "inconclusive"
    assert all(o.examples is None for o in none.options)
    assert none.suites[0].power is None
    low = _plan(pass_rate=0.04)
    assert low.status == "inconclusive" and "smaller --detect" in low.notes[0]


@pytest.mark.parametrize(
    ("detect", "power", "alpha", "option"),
    [(0.0, 0.8, 0.05, "--detect"), (1.5, 0.8, 0.05, "--detect"), (0.05, 1.0, 0.05, "--power"),
     (0.05, 0.8, 0.0, "--alpha")],
)  # fmt: skip
def test_out_of_range_requests_name_the_option(
    detect: float, power: float, alpha: float, option: str
) -> None:
    with pytest.raises(P.PlanError, match=option):
        P.check_request(detect=detect, power=power, alpha=alpha)


def test_smoke_power_is_the_exact_power_at_its_size() -> None:
    e = _plan(suites=[("smoke", 60, 1), ("full", 5000, 1)])
    smoke, full = e.suites
    assert smoke.power is not None and full.power is not None
    assert smoke.power < 0.8 < full.power
    probs = P.sign_probabilities(P.ExampleModel(0.8, 0.5), 0.05, 1)
    assert smoke.power == pytest.approx(P.power_exact(60, probs, 0.05))


def test_a_tolerance_keeps_the_plan_conservative() -> None:
    """With a tolerance the gate also needs the mean drop beyond it; the plan multiplies
    the two probabilities (a lower bound): the production decision, simulated, reaches at
    least the asked power (less four binomial SEs)."""
    model = P.ExampleModel(0.8, 0.4)
    probs = P.sign_probabilities(model, 0.1, 1)
    n = P.examples_needed(probs, power=0.8, alpha=0.05, tolerance=0.03)
    plain = P.examples_needed(probs, power=0.8, alpha=0.05)
    assert n is not None and plain is not None and n > plain
    replicates = 300
    simulated = P.simulate_power(
        model, detect=0.1, examples=n, repetitions=1, alpha=0.05, tolerance=0.03,
        replicates=replicates, seed=13,
    )  # fmt: skip
    assert simulated > 0.8 - _tolerance(0.8, replicates)
