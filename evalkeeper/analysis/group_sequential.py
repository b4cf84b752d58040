"""A group-sequential two-sample test with alpha spending: the monitor's default rollback test.

Pure functions of counts (numpy/scipy, no I/O). The question, per online evaluator: has
the rate at which it flags the new version's traffic (the window: ``x1`` flags in ``n1``
scored traces at a look) risen above the rate it flagged the previous version's traffic
(the baseline: ``x2`` of ``n2``) by more than a tolerance ``delta``? One-sided,
``H0: p1 - p2 <= delta`` against ``p1 - p2 > delta``, looked at every tick of a window whose
length is known in advance.

**Why not Ville's bound.** The older test (`evalkeeper.analysis.sequential`) is valid at
any number of looks at any times, for ever; it pays for that with a threshold of
``log(1/alpha)`` on a mixture likelihood ratio and half of alpha spent on a bound of the
baseline. A window has a known end (``window_hours``) and ticks at a known pace, so the
alpha budget can be spent over the window's time instead (Lan and DeMets 1983): the
two-sample statistic is tested directly (no baseline bound), and the boundary at each look
is the smallest that keeps the total chance of a false crossing at the alpha spent so far.

**The statistic.** ``Z_k`` (`signed_root`) is the signed root of the profile likelihood
ratio for ``p1 - p2 = delta``: ``sign(p1^ - p2^ - delta) * sqrt(2 (l(p1^, p2^) -
l(p1~, p2~)))``, with ``(p1~, p2~)`` the maximum likelihood under ``p1 - p2 = delta`` in the
closed form of Farrington and Manning (1990, "Test statistics and sample size formulae
for comparative binomial trials with null hypothesis of non-zero risk difference or
non-unity relative risk", Statistics in Medicine 9:1447-1454; Miettinen and Nurminen 1985).
The window's flags enter with a continuity correction of a half toward the null. The
signed root's tail is much closer to the normal's than the Wald or score statistic's for
skewed binomial counts (Barndorff-Nielsen and Cox 1994, "Inference and asymptotics", ch.
6); with the correction it errs on the conservative side at small counts, and looks with
too few expected flags are not tested at all (below).

**The joint law across looks.** With the baseline fixed (or only growing) and the window
cumulative, ``D_k = p1^_k - p2^_k`` has ``Cov(D_j, D_k) = Var(D_k)`` for ``j < k`` (nested
samples: the covariance of two means of nested samples is the variance of the larger's),
so with information ``I_k = 1 / Var(D_k)`` the statistics have the canonical joint
distribution ``Corr(Z_j, Z_k) = sqrt(I_j / I_k)`` with independent increments of the score
``S_k = Z_k sqrt(I_k)`` (Jennison and Turnbull 2000, "Group sequential methods with
applications to clinical trials", ch. 3 and 11). Under ``p1 = p2 = p`` the rate's
variance cancels from the ratio: ``I_k`` is taken as ``1 / (1/n1_k + 1/n2_k)``
(`information`), exact for ``delta = 0``; with a tolerance the two variances differ by
``p(1-p)`` against ``(p+delta)(1-p-delta)``, a small change of the correlations that the
simulations in the tests and `benchmarks/monitor.py` cover.

**The boundaries.** Alpha is spent over the window's calendar time ``t`` (the share of the
window elapsed at the look, known before any data: Lan and DeMets 1989, "Group sequential
procedures: calendar versus information time", Statistics in Medicine 8:1191-1198) by the
power family ``alpha(t) = alpha * t**rho`` (Kim and DeMets 1987, "Design and analysis of
group sequential tests based on the type I error spending rate function", Biometrika
74:149-154). At the k-th analysis the boundary ``c_k`` solves
``P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = alpha(t_k) - alpha(t_{k-1})``,
computed by the recursive numerical integration of Armitage, McPherson and Rowe (1969,
"Repeated significance tests on accumulating data", JRSS A 132:235-244) on a grid, as in
Jennison and Turnbull ch. 19 (`boundaries`). Only the information levels and the times of
the looks already made enter, so the boundaries follow from the stored history: a rerun
of a tick computes the same. The total chance of a false crossing is ``alpha(t_last) <=
alpha`` whatever the number and spacing of looks (Lan and DeMets 1983, "Discrete
sequential boundaries for clinical trials", Biometrika 70:659-663).

**Which looks are analyses** (`is_analysis`): a look is tested only when the window has
``min_window`` scored traces, the expected flags and passes under the null
(``n1 * (p2^ + delta)`` and ``n1 * (1 - p2^ - delta)``) are both at least
``min_expected`` (until the first analysis; the normal law at 2 or 3 flags is poor), and
its information exceeds the last analysis's by at least 2% (`MIN_INFO_GAIN`: a look
with no, or hardly any, new traffic spends nothing new). Alpha not spent at a look that is not an analysis is carried to the next
analysis (the spending function is a function of time, not of the looks). At the window's
end ``t = 1``: what is left of alpha is spent there.

**The choices, and why** (`benchmarks/monitor.py` measures them; `docs/monitoring.md`
quotes the figures). ``rho = 0.1`` spends most of alpha at the first analyses (at a tenth
of the window, 79% of it): a rise that matters shows in the first hours, and every look
spent early at little information costs power later (Jennison and Turnbull ch. 7 on the
power family's trade-off). ``min_expected = 15`` keeps the first analysis out of the
counts where the normal law is poor, and also keeps early, low-information analyses from
taking the alpha the first informative one needs: for 5% -> 7.5% (the benchmark's
schedule), `crossing_probabilities` gives a 42% chance of detection within 500 traces
with the first analysis at 5 expected flags and 54% at 15 (rho 0.1); simulated, the
median detection is 600-650 traces at 5 (rho 0.25-0.5) and 350-400 at 15, for a false
rollback rate still under alpha (0.03-0.05 in the simulations, 1% and 5% baselines,
irregular looks). What this test cannot do is left to the mixture test
(`evalkeeper.monitor.decision`): a baseline with fewer than 15 flags is tested by it
alone, and beside this test a tenth of alpha goes to it (a glaring rise before the first
analysis; a window that never reaches one).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

DEFAULT_RHO = 0.1
"""The power family's exponent: alpha * t**rho. Below 1 spends more of alpha early (fast
detection of moderate rises); chosen by the simulation in `benchmarks/monitor.py`."""

DEFAULT_MIN_EXPECTED = 15.0
"""Fewest expected flags (and passes) under the null before the first analysis."""

GRID_STEP = 0.1
"""Grid step of the numerical integration, in standard deviations of the score (Simpson's
rule on a normal density at this step errs by less than 1e-7; the tests check the
crossing probabilities against scipy's multivariate normal and a simulation)."""

MIN_INFO_GAIN = 0.02
"""A look is a new analysis only when its information exceeds the last analysis's by this
share: a look with no (or hardly any) new traffic spends nothing, and the integration's
kernel stays wider than its grid (at a 2% gain the crossing probabilities agree with
scipy's multivariate normal to 1e-6)."""

Z_LOW = -7.0
Z_HIGH = 8.5
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _pdf(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def spending(t: float, alpha: float, rho: float = DEFAULT_RHO) -> float:
    """alpha(t) = alpha * t**rho on [0, 1] (Kim and DeMets 1987): 0 at t <= 0, alpha at t >= 1."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r}: expected a probability in (0, 1)")
    if not rho > 0.0:
        raise ValueError(f"rho={rho!r}: expected a positive exponent, e.g. 0.5")
    if t <= 0.0:
        return 0.0
    return alpha * min(t, 1.0) ** rho


def information(n1: int | float, n2: int | float) -> float:
    """The information of the difference of two rates, up to the rate's variance:
    ``1 / (1/n1 + 1/n2)`` (0 when either side is empty)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    return 1.0 / (1.0 / n1 + 1.0 / n2)


def restricted_mle(x1: float, n1: float, x2: float, n2: float, delta: float) -> tuple[float, float]:
    """The maximum likelihood (p1, p2) of two binomials under ``p1 - p2 = delta``
    (Farrington and Manning 1990, the closed-form root of a cubic)."""
    p1, p2 = x1 / n1, x2 / n2
    if delta == 0.0:
        pooled = (x1 + x2) / (n1 + n2)
        return pooled, pooled
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a * a) + d / (2.0 * a)
    u = math.copysign(math.sqrt(max(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)), v)
    if u == 0.0:
        r1 = -b / (3.0 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3.0
        r1 = 2.0 * u * math.cos(w) - b / (3.0 * a)
    r1 = min(max(r1, delta), 1.0)
    return r1, r1 - delta


def _loglik(x: float, n: float, p: float) -> float:
    return float(special.xlogy(x, p) + special.xlog1py(n - x, -p))


def signed_root(
    x1: int, n1: int, x2: int, n2: int, delta: float = 0.0, *, correction: float = 0.5
) -> float:
    """Z: the signed root of the profile likelihood ratio of ``p1 - p2 = delta``, with the
    window's flags `x1` moved `correction` toward the null (a continuity correction)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"signed_root: n1={n1}, n2={n2}: both sides need scored traces")
    if not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"signed_root: counts x1={x1}/{n1}, x2={x2}/{n2} out of range")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"signed_root: delta={delta!r}: expected a tolerance in [0, 1)")
    diff = x1 / n1 - x2 / n2 - delta
    if correction:
        shift = min(correction, abs(diff) * n1)  # never past the null
        x1c = x1 - math.copysign(shift, diff)
    else:
        x1c = float(x1)
    p1, p2 = x1c / n1, x2 / n2
    diff = p1 - p2 - delta
    if diff == 0.0:
        return 0.0
    r1, r2 = restricted_mle(x1c, n1, x2, n2, delta)
    top = _loglik(x1c, n1, p1) + _loglik(x2, n2, p2)
    null = _loglik(x1c, n1, r1) + _loglik(x2, n2, r2)
    if not math.isfinite(null):  # the null puts no mass where the data are
        return math.copysign(40.0, diff)
    return math.copysign(math.sqrt(max(2.0 * (top - null), 0.0)), diff)


# -- boundaries by recursive numerical integration -------------------------------------


@dataclass(frozen=True)
class _State:
    """The recursion after an analysis: the sub-density of the score S = Z sqrt(I) on
    the continuation region, as (grid, weight x density) pairs, and the boundaries so far."""

    boundaries: tuple[float, ...]
    info: float
    spent: float
    grid: npt.NDArray[np.float64]
    mass: npt.NDArray[np.float64]


def _simpson(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [lo, hi], an odd number of points at most `step` apart."""
    m = max(math.ceil((hi - lo) / (2.0 * step)), 8)
    x = np.linspace(lo, hi, 2 * m + 1)
    h = (hi - lo) / (2 * m)
    w = np.full(2 * m + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * h / 3.0


def _first(info: float, target: float) -> _State:
    c = math.inf if target <= 1e-15 else float(stats.norm.isf(target))
    z, w = _simpson(Z_LOW, min(c, Z_HIGH), GRID_STEP)
    root = math.sqrt(info)
    grid = z * root
    mass = w * _pdf(z)  # Simpson weights in S (w * root) times the density of S (pdf / root)
    return _State((c,), info, target, grid, mass)


def _next(prev: _State, info: float, target: float) -> _State:
    sd = math.sqrt(info - prev.info)
    root = math.sqrt(info)

    def crossing(c: float) -> float:
        return float(np.dot(prev.mass, special.ndtr((prev.grid - c * root) / sd)))

    if target <= 1e-15:
        c = math.inf
    else:
        # crossing(c) <= P(Z_k >= c): the root is at most the single look's boundary
        hi = float(stats.norm.isf(target)) + 0.5
        while crossing(hi) > target and hi < 40.0:  # the grid's error, never more
            hi += 1.0
        lo = hi - 2.5
        while crossing(lo) < target and lo > -10.0:
            lo -= 2.0
        if crossing(lo) <= target:  # cannot spend that much: cross wherever it can
            c = lo
        else:
            c = float(optimize.brentq(lambda x: crossing(x) - target, lo, hi, xtol=1e-9))
    z, w = _simpson(Z_LOW, min(c, Z_HIGH), GRID_STEP)
    grid = z * root
    dens = _pdf((grid[:, None] - prev.grid[None, :]) / sd) / sd @ prev.mass
    return _State((*prev.boundaries, c), info, prev.spent + target, grid, w * root * dens)


_CACHE: OrderedDict[tuple, _State] = OrderedDict()
_CACHE_SIZE = 4096


def boundaries(
    infos: list[float], times: list[float], alpha: float, rho: float = DEFAULT_RHO
) -> list[float]:
    """The boundaries c_1..c_K (Z scale) of analyses at information `infos` (increasing)
    and window times `times` (in [0, 1], non-decreasing): ``P(first crossing at k) =
    alpha(t_k) - alpha(t_{k-1})`` under the null. ``inf`` where nothing is spent."""
    if len(infos) != len(times) or not infos:
        raise ValueError("boundaries: give one time per information level, at least one")
    if any(b <= a for a, b in pairwise(infos)) or infos[0] <= 0:
        raise ValueError(f"boundaries: information must be positive and increasing: {infos}")
    if any(b < a for a, b in pairwise(times)):
        raise ValueError(f"boundaries: times must not decrease: {times}")
    return list(_state(tuple(infos), tuple(times), alpha, rho).boundaries)


def _state(infos: tuple, times: tuple, alpha: float, rho: float) -> _State:
    key = (alpha, rho, infos, times)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    k = len(infos)
    target_total = spending(times[-1], alpha, rho)
    if k == 1:
        state = _first(infos[0], target_total)
    else:
        prev = _state(infos[:-1], times[:-1], alpha, rho)
        state = _next(prev, infos[-1], max(target_total - spending(times[-2], alpha, rho), 0.0))
    _CACHE[key] = state
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return state


def crossing_probabilities(
    infos: list[float], bounds: list[float], drift: float = 0.0
) -> list[float]:
    """P(first crossing at look k) of the canonical joint normal with the given boundaries,
    with ``E[Z_k] = drift * sqrt(I_k)`` (0: the null), by the same recursion. For checks and
    power: the sum is the chance of crossing at all."""
    out: list[float] = []
    grid = np.zeros(1)
    mass = np.ones(1)  # the score at 0 before any look: a point mass
    prev_info = 0.0
    for info, c in zip(infos, bounds, strict=True):
        root = math.sqrt(info)
        sd = math.sqrt(info - prev_info)
        inc = drift * (info - prev_info)
        out.append(float(np.dot(mass, special.ndtr((grid + inc - c * root) / sd))))
        z, w = _simpson(Z_LOW + drift * root, min(c, Z_HIGH + drift * root), GRID_STEP)
        new_grid = z * root
        dens = _pdf((new_grid[:, None] - grid[None, :] - inc) / sd) / sd @ mass
        grid, mass = new_grid, w * root * dens
        prev_info = info
    return out
