"""The statistics behind `compare`: estimates, paired tests, FDR, power, and the verdict rule.

Pure numpy/scipy; nothing here knows about the warehouse. Every function takes plain arrays
and returns small frozen dataclasses, so the same code scores a real comparison and a
simulated one (see `tests/analysis/test_stats.py`).

Conventions (the formulas, so a reader can check them):

* **Estimate of one side** (`estimate`, `estimate_from_groups`): the mean of the scored rows
  (a pass rate when the rows are 0/1). Two standard errors:

  - CLT: binary rows use the Wald form ``sqrt(p (1 - p) / N)``; continuous rows use
    ``s / sqrt(N)`` with the sample variance ``s**2`` (ddof = 1).
  - cluster-robust (CR1 for an intercept-only model, the same as statsmodels' OLS
    ``cov_type="cluster"``): with clusters ``g = 1..G``, residual sums
    ``S_g = sum_{i in g} (y_i - ybar)`` and ``N`` rows,
    ``V = G / (G - 1) * sum_g S_g**2 / N**2`` and ``se_cluster = sqrt(V)``. (statsmodels'
    extra factor ``(N - 1) / (N - K)`` is 1 here because ``K = 1``.) `compare` clusters by
    example when an experiment has repetitions (and builds the CI on it), and also reports
    the SE clustered by category for the ``__all__`` cell.

  The 95% interval is ``mean ± z_{0.975} * se`` using the cluster-robust SE when there is
  one; a binary interval is clipped to [0, 1] (as statsmodels' ``method="normal"`` does).

* **Paired difference** (`paired_comparison`): repetitions are averaged per example first,
  so each example contributes one number per side and examples are the independent unit
  (for balanced repetitions this is what clustering by example would give).
  ``d_i = candidate_i - baseline_i``; ``diff = mean(d)``, ``se = sd(d, ddof=1) / sqrt(n)``,
  CI ``diff ± z_{0.975} * se`` (clipped to [-1, 1] for pass rates).

* **Paired tests** (two-sided):

  - pass/fail: exact McNemar, i.e. ``binomtest(n_worse, n_worse + n_better, 0.5)`` on the
    discordant examples (``n_worse``: passed in baseline, failed now). With repetitions the
    per-example pass rates are fractions; an example is then discordant when its rate moved,
    and the same binomial test is the sign test, which is McNemar's exact test at one
    repetition (`test` says which one ran).
  - continuous scores: Wilcoxon signed-rank on ``d`` with ``zero_method="pratt"`` (zero
    differences are ranked, then dropped). All-zero differences give ``p = 1`` without
    calling scipy.

  A regression needs the two-sided p-value (after FDR) under alpha *and* a drop, so a
  single cell's false-regression rate is about alpha / 2 — deliberately conservative.

* **FDR** (`bh_adjust`): Benjamini-Hochberg over every evaluator x category cell that has a
  test, via `scipy.stats.false_discovery_control(method="bh")`.

* **Minimum detectable effect** (`mde`): ``(z_{1 - alpha/2} + z_{0.80}) * se_mde`` — the drop
  this paired design would detect with 80% power in a two-sided test at alpha. ``se_mde`` is
  the observed paired SE, floored by a conservative SE so that "no discordant pair seen"
  never reads as "infinitely precise": with ``n`` examples and none (or few) discordant, the
  discordance rate is below ``pi_up = 1 - 0.05**(1/n)`` (the exact 95% upper bound with zero
  events, ≈ 3/n), and since ``|d| <= scale`` we have ``Var(d) <= E[d**2] <= scale**2 * pi_up``,
  hence ``se_floor = scale * sqrt(pi_up / n)``. ``scale`` is 1 for pass rates and the
  observed value range for continuous scores.

* **Verdict** (`decide`): ``regression`` if a guarded (critical / incident) row regressed or a
  cell has ``p_adjusted < alpha`` and ``diff < -tolerance``; else ``inconclusive`` if an
  overall (``__all__``) cell has an error rate above ``max_error_rate`` on either side, has no
  paired example, or is underpowered (``mde > max_mde``, default `MAX_MDE` = 0.20: a gate
  that cannot see a 20-point drop in pass rate says so instead of passing); else ``pass``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Verdict = Literal["pass", "regression", "inconclusive"]
PairedTest = Literal["mcnemar_exact", "sign", "wilcoxon_pratt", "none"]

CONFIDENCE = 0.95
POWER = 0.80
MAX_MDE = 0.20
"""Largest minimum detectable effect (in pass-rate points) an overall cell may have before
the verdict reads "inconclusive (underpowered)" instead of "pass"."""


@functools.lru_cache(maxsize=256)
def z_value(q: float) -> float:
    """Standard normal quantile (cached: the same few quantiles are asked for again and again).
    The standard library's (Wichura's AS 241, agreeing with `scipy.stats.norm.ppf` to
    ~1e-15): SciPy's stats module costs about 1.5 s to import, so it is imported only by the
    functions that need it, inside them."""
    return NormalDist().inv_cdf(q)


Z95 = z_value(0.5 + CONFIDENCE / 2)


# -- one side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean (or pass rate) with its standard errors and 95% interval."""

    n: int
    mean: float
    se: float
    se_cluster: float | None = None
    n_clusters: int | None = None
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def se_used(self) -> float:
        """The SE the interval is built on: cluster-robust when available, else CLT."""
        return self.se_cluster if self.se_cluster is not None else self.se


def _is_binary(values: FloatArray) -> bool:
    return bool(np.all((values == 0.0) | (values == 1.0)))


def estimate_from_groups(
    n_g: npt.ArrayLike,
    sum_g: npt.ArrayLike,
    sumsq_g: npt.ArrayLike,
    *,
    binary: bool,
    clustered: bool,
) -> Estimate:
    """An `Estimate` from per-group row counts, sums and sums of squares.

    The groups are the clusters when `clustered`; otherwise they only carry the totals (the
    CLT SE needs nothing more). Groups with no rows are ignored.
    """
    n_arr = np.asarray(n_g, dtype=np.float64)
    s_arr = np.asarray(sum_g, dtype=np.float64)
    ss_arr = np.asarray(sumsq_g, dtype=np.float64)
    keep = n_arr > 0
    n_arr, s_arr, ss_arr = n_arr[keep], s_arr[keep], ss_arr[keep]
    n = float(n_arr.sum())
    if n == 0:
        return Estimate(n=0, mean=math.nan, se=math.nan)
    mean = float(s_arr.sum() / n)
    if binary:
        se = math.sqrt(max(mean * (1.0 - mean), 0.0) / n)
    elif n > 1:
        var = max(float(ss_arr.sum()) - n * mean * mean, 0.0) / (n - 1)
        se = math.sqrt(var / n)
    else:
        se = math.nan
    se_cluster: float | None = None
    n_clusters: int | None = None
    if clustered:
        g = len(n_arr)
        n_clusters = g
        if g > 1:
            resid = s_arr - n_arr * mean
            se_cluster = math.sqrt(g / (g - 1) * float(np.sum(resid * resid)) / (n * n))
        else:
            se_cluster = math.nan
    used = se_cluster if se_cluster is not None else se
    lo, hi = mean - Z95 * used, mean + Z95 * used
    if binary and math.isfinite(lo):
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return Estimate(
        n=int(n),
        mean=mean,
        se=se,
        se_cluster=se_cluster,
        n_clusters=n_clusters,
        ci_low=lo,
        ci_high=hi,
    )


def estimate(
    values: npt.ArrayLike,
    clusters: npt.ArrayLike | None = None,
    *,
    binary: bool | None = None,
) -> Estimate:
    """Mean of `values` with CLT SE, and cluster-robust SE when `clusters` is given.

    `binary` defaults to "every value is 0 or 1" (then the CLT SE is the Wald form).
    """
    y = np.asarray(values, dtype=np.float64)
    if binary is None:
        binary = _is_binary(y)
    if clusters is None:
        return estimate_from_groups(
            [y.size], [y.sum()], [float(np.dot(y, y))], binary=binary, clustered=False
        )
    _, codes = np.unique(np.asarray(clusters), return_inverse=True)
    codes = codes.ravel()
    n_g = np.bincount(codes)
    s_g = np.bincount(codes, weights=y)
    ss_g = np.bincount(codes, weights=y * y)
    return estimate_from_groups(n_g, s_g, ss_g, binary=binary, clustered=True)


def cluster_robust_se(values: npt.ArrayLike, clusters: npt.ArrayLike) -> float:
    """CR1 standard error of the mean: ``sqrt(G/(G-1) * sum_g S_g**2 / N**2)``."""
    se = estimate(values, clusters, binary=False).se_cluster
    return math.nan if se is None else se


# -- paired comparison ----------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar on the discordant pairs (`worse`: passed before, fails now)."""

    worse: int
    better: int
    chi2: float
    """Uncorrected McNemar statistic ``(worse - better)**2 / (worse + better)``, for reference."""
    p_value: float


@functools.lru_cache(maxsize=65536)
def mcnemar_exact(worse: int, better: int) -> McNemar:
    """Two-sided exact McNemar test: ``binomtest(worse, worse + better, 0.5)``.

    Cached on the two counts (a pure function of them; binomtest takes ~1 ms).
    """
    from scipy import stats as st

    n = worse + better
    if n == 0:
        return McNemar(worse, better, 0.0, 1.0)
    p = float(st.binomtest(worse, n, 0.5, alternative="two-sided").pvalue)
    return McNemar(worse, better, (worse - better) ** 2 / n, min(p, 1.0))


def wilcoxon_pratt(diffs: npt.ArrayLike) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank (Pratt zeros) -> (statistic, p). All-zero -> (0, 1)."""
    from scipy import stats as st

    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or not np.any(d != 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = st.wilcoxon(d, zero_method="pratt", alternative="two-sided")
    stat, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(p):
        p = 1.0
    return stat, min(p, 1.0)


def mde(se: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Minimum detectable effect: ``(z_{1-alpha/2} + z_{power}) * se``."""
    return (z_value(1 - alpha / 2) + z_value(power)) * se


def se_floor(n: int, scale: float = 1.0) -> float:
    """Conservative paired SE when few/no discordant pairs are seen: ``scale*sqrt(pi_up/n)``.

    ``pi_up = 1 - 0.05**(1/n)`` is the exact 95% upper bound on the discordance rate after
    ``n`` examples with none discordant (the "rule of three", ≈ 3/n).
    """
    if n <= 0:
        return math.inf
    pi_up = 1.0 - 0.05 ** (1.0 / n)
    return scale * math.sqrt(pi_up / n)


@dataclass(frozen=True)
class Paired:
    """Candidate minus baseline on the same examples (repetitions averaged per example)."""

    n: int
    diff: float
    se: float
    ci_low: float
    ci_high: float
    test: PairedTest
    statistic: float
    p_value: float | None
    n_worse: int
    n_better: int
    mde: float
    se_mde: float


def paired_comparison(
    baseline: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    binary: bool,
    alpha: float = 0.05,
) -> Paired:
    """Paired difference, test and MDE. Inputs: one number per example and side, aligned.

    `binary` means the rows are pass/fail (inputs are then per-example pass rates in [0, 1]):
    McNemar exact (one repetition) or the sign test (fractions). Otherwise Wilcoxon-Pratt.
    """
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if b.shape != c.shape:
        raise ValueError(f"paired arrays differ in shape: {b.shape} vs {c.shape}")
    n = int(b.size)
    if n == 0:
        return Paired(
            0, math.nan, math.nan, math.nan, math.nan, "none", 0.0, None, 0, 0, math.inf, math.inf
        )
    d = c - b
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    worse, better = int(np.sum(d < 0)), int(np.sum(d > 0))
    test: PairedTest
    if binary:
        mc = mcnemar_exact(worse, better)
        test = "mcnemar_exact" if _is_binary(b) and _is_binary(c) else "sign"
        stat, p = mc.chi2, mc.p_value
        scale = 1.0
    else:
        test = "wilcoxon_pratt"
        stat, p = wilcoxon_pratt(d)
        both = np.concatenate([b, c])
        scale = float(both.max() - both.min()) or 1.0
    floor = se_floor(n, scale)
    se_m = max(se, floor) if math.isfinite(se) else floor
    half = Z95 * se if math.isfinite(se) else math.nan
    lo, hi = diff - half, diff + half
    if binary and math.isfinite(half):  # a difference of pass rates lies in [-1, 1]
        lo, hi = max(lo, -1.0), min(hi, 1.0)
    return Paired(
        n=n,
        diff=diff,
        se=se,
        ci_low=lo,
        ci_high=hi,
        test=test,
        statistic=stat,
        p_value=p,
        n_worse=worse,
        n_better=better,
        mde=mde(se_m, alpha),
        se_mde=se_m,
    )


# -- multiplicity ---------------------------------------------------------------------------


def bh_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values; `None` entries (no test) stay `None`."""
    from scipy import stats as st

    idx = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    raw = np.array([p_values[i] for i in idx], dtype=np.float64)
    adj = st.false_discovery_control(raw, method="bh")
    for i, a in zip(idx, adj, strict=True):
        out[i] = float(a)
    return out


# -- latency --------------------------------------------------------------------------------


def percentiles(values: npt.ArrayLike, qs: Sequence[float] = (50, 95)) -> list[float | None]:
    """Percentiles (linear interpolation, numpy's default); `None` when there is no value."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [None for _ in qs]
    return [float(x) for x in np.percentile(v, list(qs))]


# -- verdict --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellEvidence:
    """What the verdict needs to know about one evaluator x category cell."""

    diff: float
    p_value: float | None
    mde: float | None
    overall: bool = False
    """The evaluator's ``__all__`` cell: the one power and error rates are judged on."""
    power_checked: bool = True
    """False when the score scale is unknown (values outside [0, 1]): MDE is not judged."""
    error_rate: float = 0.0
    """The larger of the two sides' error rates."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    p_adjusted: list[float | None]
    regressed: list[bool]
    underpowered: list[bool]
    too_many_errors: list[bool]
    critical_regressions: int = 0


def decide(
    cells: Sequence[CellEvidence],
    *,
    alpha: float,
    tolerance: float,
    max_error_rate: float,
    max_mde: float = MAX_MDE,
    critical_regressions: int = 0,
) -> Decision:
    """The verdict rule (see the module docstring). Pure: used by `compare` and simulations."""
    p_adj = bh_adjust([c.p_value for c in cells])
    regressed = [
        p is not None and p < alpha and c.diff < -tolerance
        for c, p in zip(cells, p_adj, strict=True)
    ]
    underpowered = [
        c.overall and c.power_checked and (c.mde is None or not (c.mde <= max_mde)) for c in cells
    ]
    no_data = [c.overall and c.p_value is None for c in cells]
    errors = [c.overall and c.error_rate > max_error_rate for c in cells]
    verdict: Verdict
    if critical_regressions or any(regressed):
        verdict = "regression"
    elif any(errors) or any(underpowered) or any(no_data):
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return Decision(
        verdict=verdict,
        p_adjusted=p_adj,
        regressed=regressed,
        underpowered=[u or nd for u, nd in zip(underpowered, no_data, strict=True)],
        too_many_errors=errors,
        critical_regressions=critical_regressions,
    )
