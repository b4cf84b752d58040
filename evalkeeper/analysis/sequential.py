"""The sequential test of the post-deploy monitor: valid however often it is looked at.

Pure functions of counts (numpy/scipy, no I/O). The question, per online evaluator: has the
rate at which it flags live traffic risen after the deploy above the rate it flagged the
previous version's traffic before it (the baseline), by more than a tolerance? The window
is looked at every tick (every 15 minutes for up to 48 hours), so a test that is valid at
one fixed sample size is not enough: a z-test repeated at 96 looks raises a false alarm in
about a third of unchanged deploys (`benchmarks/monitor.py` measures it).

The construction, at a level `alpha` for one evaluator (Bonferroni across evaluators is
the caller's split, see `evalkeeper.monitor.decision`):

1. **Baseline bound.** From the baseline's `x` flags in `n` scored traces, the one-sided
   Clopper-Pearson upper confidence bound at level ``1 - alpha_b`` (`clopper_pearson_upper`):
   ``U = Beta.ppf(1 - alpha_b; x + 1, n - x)`` (``U = 1`` when ``x = n``), so that
   ``P(U < p_baseline) <= alpha_b`` for every true baseline rate (Clopper and Pearson 1934;
   the same as statsmodels' ``proportion_confint(x, n, 2 * alpha_b, method="beta")[1]``).
   The baseline is fixed before the window opens, so U is fixed for the whole window.

2. **Always-valid test on the window.** With ``p0 = U + tolerance``, test
   ``H0: p_window <= p0`` on the window's `S` flags in `n` scored traces by a mixture of
   likelihood ratios (Robbins 1970, "Statistical methods related to the law of the iterated
   logarithm"; the mixture SPRT of Johari, Pekelis and Walsh 2017/2022, "Always valid
   inference: continuous monitoring of A/B tests"; as a test supermartingale / e-process in
   Howard, Ramdas, McAuliffe and Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic
   confidence sequences")::

       M_n = ∫_{p0}^{1} (p / p0)^S ((1 - p) / (1 - p0))^(n - S) π(p) dp

   with π a Beta(a, b) density truncated to (p0, 1) (`log_mixture_lr`, closed form below).
   For each p > p0 the ratio is a nonnegative supermartingale under any true rate <= p0
   (its one-step mean is ``1 + (q - p0)(p - p0) / (p0 (1 - p0)) <= 1`` at a true rate q),
   hence so is the mixture, with ``M_0 = 1``. Ville's inequality gives
   ``P(sup_n M_n >= 1 / alpha_w) <= alpha_w``: rejecting the first time ``M_n >= 1 /
   alpha_w`` is valid at *every* look, any number of looks, at any times, and with the
   window stopped for any reason. M_n depends on (S, n) only, so it is computed from the
   cumulative counts at each look: a repeated or crashed look changes nothing.

3. **Union bound.** A false rollback (true window rate <= baseline rate + tolerance) needs
   U below the baseline rate (probability <= alpha_b) or, with U above it, H0 true and M
   crossing (probability <= alpha_w). With ``alpha_b + alpha_w = alpha`` the false-rollback
   rate is at most alpha. `alpha_b = alpha_w = alpha / 2` by default.

The closed form: with ``B`` the beta function and ``Q(a, b, p0) = 1 - I_{p0}(a, b)`` the
upper tail of the regularized incomplete beta function,

    log M = log B(a + S, b + n - S) - log B(a, b) + log Q(a + S, b + n - S, p0)
            - log Q(a, b, p0) - S log p0 - (n - S) log(1 - p0).

The prior (`mixture_prior`) is Beta with mean p0 and ``a + b = strength``: it spreads its
mass over rises of the size a rate near p0 can plausibly take (its standard deviation is
``sqrt(p0 (1 - p0) / (strength + 1))``), so small baselines and small rates are treated
alike. `DEFAULT_PRIOR_STRENGTH` was chosen by the simulation in `benchmarks/monitor.py`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

DEFAULT_PRIOR_STRENGTH = 100.0
"""a + b of the Beta mixing prior; larger concentrates the prior on smaller rises."""

FloatLike = float | npt.NDArray[np.float64]


def clopper_pearson_upper(flags: int, n: int, alpha: float) -> float:
    """The exact one-sided upper confidence bound at level 1 - alpha on a binomial rate.

    ``P(bound < true rate) <= alpha`` for every true rate. 1.0 when every trace flagged;
    ``1 - alpha ** (1 / n)`` when none did."""
    _check_counts(flags, n)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r}: expected a probability in (0, 1), e.g. 0.025")
    if n == 0:
        return 1.0
    if flags >= n:
        return 1.0
    return float(special.betaincinv(flags + 1, n - flags, 1.0 - alpha))


def mixture_prior(p0: float, strength: float = DEFAULT_PRIOR_STRENGTH) -> tuple[float, float]:
    """(a, b) of the Beta mixing prior: mean p0, ``a + b = strength`` (before truncation)."""
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0={p0!r}: the null rate must be in (0, 1)")
    if not strength > 0.0:
        raise ValueError(f"strength={strength!r}: expected a positive prior size, e.g. 100")
    return strength * p0, strength * (1.0 - p0)


def log_mixture_lr(flags: FloatLike, n: FloatLike, p0: float, a: float, b: float) -> FloatLike:
    """log M: the Beta(a, b)-mixture likelihood ratio over rates in (p0, 1) against p0.

    `flags` of `n` scored traces flagged (numbers or numpy arrays of the same shape).
    -inf when the data make every alternative infinitely less likely than p0 (underflow of
    a ratio far below 1); never NaN for valid counts. p0 >= 1 leaves no alternative: -inf.
    """
    if p0 >= 1.0:
        return -math.inf if np.ndim(flags) == 0 else np.full(np.shape(flags), -np.inf)
    if not p0 > 0.0:
        raise ValueError(f"p0={p0!r}: the null rate must be in (0, 1)")
    s = np.asarray(flags, dtype=np.float64)
    f = np.asarray(n, dtype=np.float64) - s
    if np.any(s < 0) or np.any(f < 0):
        raise ValueError("log_mixture_lr: flags must be between 0 and n")
    with np.errstate(divide="ignore"):
        tail = np.log(_upper_tail(a + s, b + f, p0))
    out = (
        special.betaln(a + s, b + f)
        - special.betaln(a, b)
        + tail
        - math.log(_upper_tail(a, b, p0))
        - s * math.log(p0)
        - f * math.log1p(-p0)
    )
    return float(out) if np.ndim(out) == 0 else out


def _upper_tail(a: FloatLike, b: FloatLike, x: float) -> FloatLike:
    """``1 - I_x(a, b)`` without cancellation (``I_{1-x}(b, a)``)."""
    return special.betainc(b, a, 1.0 - x)


def rejection_threshold(alpha: float) -> float:
    """log(1 / alpha): reject H0 once log M reaches it (Ville's inequality)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r}: expected a probability in (0, 1)")
    return -math.log(alpha)


def _check_counts(flags: int, n: int) -> None:
    if n < 0 or flags < 0 or flags > n:
        raise ValueError(f"counts flags={flags}, n={n}: expected 0 <= flags <= n")
