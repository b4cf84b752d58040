"""The monitor's sequential statistic against independent computations.

The Clopper-Pearson bound against statsmodels' `proportion_confint(method="beta")`; the
closed-form mixture likelihood ratio against numerical integration (`scipy.integrate.quad`)
of its defining integral; the martingale identity E[M_n] = 1 at the null rate by exact
enumeration; Ville's bound by a seeded simulation at the null's boundary.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import proportion_confint

from evalkeeper.analysis.sequential import (
    clopper_pearson_upper,
    log_mixture_lr,
    mixture_prior,
    rejection_threshold,
)


@pytest.mark.parametrize(
    ("x", "n", "alpha"),
    [(0, 10, 0.025), (1, 10, 0.025), (250, 5000, 0.025), (50, 200, 0.0125), (9, 10, 0.05)],
)
def test_clopper_pearson_upper_matches_statsmodels(x: int, n: int, alpha: float) -> None:
    # a two-sided interval at 2 * alpha has the one-sided bound at alpha as its upper end
    _, upper = proportion_confint(x, n, alpha=2 * alpha, method="beta")
    assert clopper_pearson_upper(x, n, alpha) == pytest.approx(upper, rel=1e-10)


def test_clopper_pearson_edges() -> None:
    assert clopper_pearson_upper(10, 10, 0.025) == 1.0
    assert clopper_pearson_upper(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    with pytest.raises(ValueError, match="flags"):
        clopper_pearson_upper(11, 10, 0.05)
    with pytest.raises(ValueError, match="alpha"):
        clopper_pearson_upper(1, 10, 0.0)


def _quad_log_mixture(s: int, n: int, p0: float, a: float, b: float) -> float:
    """log of ∫_{p0}^1 LR(p) Beta(p; a, b) dp / P_Beta(p > p0), integrated numerically.

    The integrand is scaled by its maximum (found on a grid) so that quad works on
    numbers near 1 whatever the size of the ratio."""
    f = n - s

    def log_integrand(p: float) -> float:
        return (
            s * math.log(p / p0)
            + f * math.log((1 - p) / (1 - p0))
            + float(stats.beta.logpdf(p, a, b))
        )

    grid = np.linspace(p0, 1.0, 20_001)[1:-1]
    logs = s * np.log(grid / p0) + f * np.log((1 - grid) / (1 - p0)) + stats.beta.logpdf(grid, a, b)
    peak = float(grid[int(np.argmax(logs))])
    top = log_integrand(peak)
    value, _ = integrate.quad(
        lambda p: math.exp(log_integrand(p) - top),
        p0,
        1.0,
        points=[peak],
        epsabs=0.0,
        epsrel=1e-10,
        limit=200,
    )
    return top + math.log(value) - math.log(stats.beta.sf(p0, a, b))


@pytest.mark.parametrize(
    ("s", "n", "p0"),
    [
        (0, 1, 0.05),
        (1, 1, 0.05),
        (3, 50, 0.057),
        (9, 50, 0.057),
        (180, 2000, 0.057),
        (110, 2000, 0.057),
        (400, 4800, 0.0563),
        (30, 100, 0.2),
        (2, 300, 0.01),
    ],
)
@pytest.mark.parametrize("strength", [20.0, 100.0])
def test_mixture_matches_numerical_integration(s: int, n: int, p0: float, strength: float) -> None:
    a, b = mixture_prior(p0, strength)
    expected = _quad_log_mixture(s, n, p0, a, b)
    assert log_mixture_lr(s, n, p0, a, b) == pytest.approx(expected, rel=1e-7, abs=1e-7)


def test_mixture_is_a_martingale_at_the_null_rate_and_a_supermartingale_below() -> None:
    """E[M_n] = sum_s Binom(s; n, q) M(s, n): exactly 1 at q = p0, below 1 for q < p0."""
    p0 = 0.08
    a, b = mixture_prior(p0)
    for n in (1, 7, 60):
        s = np.arange(n + 1)
        m = np.exp(log_mixture_lr(s, np.full(n + 1, n), p0, a, b))
        assert float(np.sum(stats.binom.pmf(s, n, p0) * m)) == pytest.approx(1.0, rel=1e-9)
        assert float(np.sum(stats.binom.pmf(s, n, 0.06) * m)) < 1.0


def test_vectorised_equals_scalar_and_rises_with_flags() -> None:
    p0 = 0.06
    a, b = mixture_prior(p0)
    s = np.array([0, 10, 60, 120, 240])
    n = np.full(5, 2000)
    vec = log_mixture_lr(s, n, p0, a, b)
    assert list(vec) == [log_mixture_lr(int(x), 2000, p0, a, b) for x in s]
    assert all(np.diff(vec) > 0)
    assert log_mixture_lr(3, 10, 1.0, 1.0, 1.0) == -math.inf


def test_ville_bound_holds_at_every_look_on_the_null_boundary() -> None:
    """The hardest null (true rate = p0), looked at after every trace: the first crossing
    of log(1/alpha) happens in at most alpha of the sequences (3 Monte Carlo SEs)."""
    rng = np.random.default_rng(20261130)
    alpha, p0, runs, steps = 0.1, 0.05, 3000, 1500
    a, b = mixture_prior(p0)
    flags = rng.random((runs, steps)) < p0
    s = flags.cumsum(axis=1)
    n = np.broadcast_to(np.arange(1, steps + 1), s.shape)
    crossed = (log_mixture_lr(s, n, p0, a, b) >= rejection_threshold(alpha)).any(axis=1)
    rate = crossed.mean()
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert rate > 0.0  # it is a test that can reject, not one that never looks


def test_detects_a_clear_rise() -> None:
    rng = np.random.default_rng(7)
    p0 = 0.05
    a, b = mixture_prior(p0)
    s = (rng.random((200, 3000)) < 0.10).cumsum(axis=1)
    n = np.broadcast_to(np.arange(1, 3001), s.shape)
    crossed = (log_mixture_lr(s, n, p0, a, b) >= rejection_threshold(0.025)).any(axis=1)
    assert crossed.mean() >= 0.95
