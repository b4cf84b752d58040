"""Agreement between raters on nominal labels: the statistics of judge calibration.

Pure numpy/scipy; nothing here knows about the warehouse. Labels are coded as integers
``0..q-1`` (the caller keeps the category names). The formulas, so a reader can check them:

* **Percent agreement** ``po = (1/n) sum_i [a_i = b_i]`` with the 95% **Wilson** interval
  ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` (it stays inside [0, 1]).
* **Cohen's kappa** on the q x q table of proportions ``p_ij`` (rows: rater a, columns: b):
  ``pe = sum_k p_k+ p_+k`` and ``kappa = (po - pe) / (1 - pe)``. Its asymptotic standard
  error is Fleiss, Cohen & Everitt (1969), valid when kappa is not zero:
  ``var = [sum_i p_ii ((1-pe) - (p_i+ + p_+i)(1-po))² + (1-po)² sum_{i≠j} p_ij (p_+i +
  p_j+)² - (po pe - 2 pe + po)²] / (n (1-pe)^4)`` (statsmodels' ``std_kappa``).
  The interval that calibration reports is a paired, seeded **BCa bootstrap** over items
  (`scipy.stats.bootstrap`): items are resampled with both labels (each item's pair is
  one code, which is what ``paired=True`` does, without its per-resample indexing cost).
* **Gwet's AC1**: ``pi_k = (p_k+ + p_+k) / 2``, ``pe = sum_k pi_k (1 - pi_k) / (q - 1)``,
  ``ac1 = (po - pe) / (1 - pe)``. Its variance for two raters (Gwet 2008, eq. 29, no
  finite-population correction): ``var = [po(1-po) - 4(1-ac1)(sum_k p_kk (1-pi_k)/(q-1)
  - po pe) + 4(1-ac1)² (sum_kl p_kl (1 - (pi_k + pi_l)/2)² / (q-1)² - pe²)] / (n (1-pe)²)``.
  AC1 stays high when one label is rare and the raters agree, where kappa collapses (the
  paradox of Feinstein and Cicchetti: 40/9/6/45 and 80/10/5/5 both agree 85%, kappa 0.70
  and 0.32, AC1 0.70 and 0.81).
* **Krippendorff's alpha**, nominal, any number of raters per item and missing labels:
  from the coincidence matrix ``o_ck = sum_u sum_{pairs i≠j in u} [c, k] / (m_u - 1)`` over
  items with ``m_u >= 2`` labels, ``n_c = sum_k o_ck``, ``n = sum_c n_c``:
  ``alpha = 1 - (n - 1) (n - sum_c o_cc) / (n² - sum_c n_c²)``.
* **Constant-answer baseline**: the agreement of a judge that always gives the commonest
  majority human label ``m``: ``b = max_k n_k / n`` over the n items (the share of the
  modal label), with its Wilson interval. A judge always saying "pass" on a set that is
  90% passes agrees 90% and has kappa 0: agreement only says something above ``b``. On
  the same items, ``agreement - b = (n_up - n_down) / n``, where ``n_up`` counts items the
  judge gets right whose label is not ``m`` and ``n_down`` items labelled ``m`` it gets
  wrong. A judge "beats" the baseline when its agreement is above it on the same items.
* **Sizing**: the labels needed for a Wilson half-width `w` at an expected agreement `p` is
  the smallest n whose interval around ``p`` is at most ``2w`` wide (≈ ``z² p(1-p)/w²``:
  196 at 0.85 and 5 points). Telling ``p1`` from a bar ``p0`` (one-sided alpha
  0.05, power 0.80) needs ``((z_a sqrt(p0 q0) + z_b sqrt(p1 q1)) / (p1 - p0))²`` (368 for
  85% against 80%).

Undefined values (kappa when both raters use one label, an empty table) are ``None``,
never a zero.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Z95 = 1.959963984540054

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Coefficient:
    """A coefficient with its standard error and a 95% interval (each None if undefined)."""

    value: float | None
    se: float | None = None
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class PairAgreement:
    """Two raters on the same items: every measure at once."""

    n_items: int
    agreement: Coefficient
    kappa: Coefficient
    ac1: Coefficient
    confusion: IntArray
    """Counts, rows = rater a (the judge), columns = rater b (the humans)."""


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``k`` successes in ``n`` (None when n is 0)."""
    if n <= 0:
        return None
    return _wilson_p(k / n, n, z)


def _wilson_p(p: float, n: int, z: float) -> tuple[float, float]:
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def confusion(a: Sequence[int] | IntArray, b: Sequence[int] | IntArray, q: int) -> IntArray:
    """The q x q table of counts: ``table[i, j]`` items rated i by a and j by b."""
    x, y = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if x.shape != y.shape:
        raise ValueError(f"raters have {x.size} and {y.size} labels: give one pair per item")
    table = np.zeros((q, q), dtype=np.int64)
    np.add.at(table, (x, y), 1)
    return table


def _proportions(table: IntArray | FloatArray) -> tuple[FloatArray, int]:
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"a confusion table is square; got shape {t.shape}")
    n = round(float(t.sum()))
    return (t / n if n else t), n


def percent_agreement(table: IntArray | FloatArray, z: float = Z95) -> Coefficient:
    """Observed agreement with its Wilson interval and the binomial SE."""
    p, n = _proportions(table)
    if n == 0:
        return Coefficient(None)
    po = float(np.trace(p))
    return Coefficient(po, math.sqrt(po * (1 - po) / n), wilson(round(po * n), n, z))


def cohen_kappa(table: IntArray | FloatArray, z: float = Z95) -> Coefficient:
    """Cohen's kappa with the Fleiss-Cohen-Everitt asymptotic SE and a normal interval."""
    p, n = _proportions(table)
    if n == 0:
        return Coefficient(None)
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po, pe = float(np.trace(p)), float(rows @ cols)
    if math.isclose(pe, 1.0):
        return Coefficient(None)  # both raters used one and the same label: undefined
    kappa = (po - pe) / (1 - pe)
    diag = np.diag(p)
    term1 = float(np.sum(diag * ((1 - pe) - (rows + cols) * (1 - po)) ** 2))
    off = p * (cols[:, None] + rows[None, :]) ** 2  # p_ij (p_+i + p_j+)^2
    term2 = (1 - po) ** 2 * float(off.sum() - np.trace(off))
    term3 = (po * pe - 2 * pe + po) ** 2
    var = max(term1 + term2 - term3, 0.0) / (n * (1 - pe) ** 4)
    se = math.sqrt(var)
    return Coefficient(kappa, se, (kappa - z * se, kappa + z * se))


def gwet_ac1(table: IntArray | FloatArray, z: float = Z95) -> Coefficient:
    """Gwet's AC1 with its variance (two raters, Gwet 2008) and a normal interval."""
    p, n = _proportions(table)
    q = p.shape[0]
    if n == 0 or q < 2:
        return Coefficient(None)
    pi = (p.sum(axis=1) + p.sum(axis=0)) / 2
    po = float(np.trace(p))
    pe = float(np.sum(pi * (1 - pi)) / (q - 1))
    ac1 = (po - pe) / (1 - pe)
    a = float(np.sum(np.diag(p) * (1 - pi)) / (q - 1))
    b = float(np.sum(p * (1 - (pi[:, None] + pi[None, :]) / 2) ** 2) / (q - 1) ** 2)
    var = (po * (1 - po) - 4 * (1 - ac1) * (a - po * pe) + 4 * (1 - ac1) ** 2 * (b - pe * pe)) / (
        n * (1 - pe) ** 2
    )
    se = math.sqrt(max(var, 0.0))
    return Coefficient(ac1, se, (ac1 - z * se, ac1 + z * se))


def _kappa_of_pairs(codes: NDArray[np.integer[Any]], q: int, axis: int = -1) -> FloatArray:
    """Kappa along `axis` of pair codes ``a * q + b`` (NaN when undefined)."""
    n = codes.shape[axis]
    counts = np.stack([np.count_nonzero(codes == c, axis=axis) for c in range(q * q)])
    p = counts.reshape((q, q, *counts.shape[1:])) / n
    po = sum(p[k, k] for k in range(q))
    pe = sum(p[k, :].sum(axis=0) * p[:, k].sum(axis=0) for k in range(q))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1 - pe))
    return out


def kappa_bootstrap_ci(
    a: Sequence[int] | IntArray,
    b: Sequence[int] | IntArray,
    q: int,
    *,
    seed: int,
    n_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """The paired BCa bootstrap interval of kappa (items resampled with both labels).

    Each item's pair of labels is one code (``a * q + b``), so resampling items keeps the
    pairs together. None when kappa is undefined on the sample or the interval cannot be
    formed (fewer than two items, or every resample degenerate)."""
    from scipy import stats as sps  # on use: ~1.5 s to import

    x, y = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if x.shape != y.shape:
        raise ValueError(f"raters have {x.size} and {y.size} labels: give one pair per item")
    codes: NDArray[np.integer[Any]] = (x * q + y).astype(np.int8 if q * q < 128 else np.int64)
    if codes.size < 2 or np.isnan(_kappa_of_pairs(codes, q)):
        return None

    def statistic(c: NDArray[np.integer[Any]], axis: int = -1) -> FloatArray:
        return _kappa_of_pairs(c, q, axis=axis)

    # a constant rater's kappa is 0 in every resample: scipy warns that BCa cannot be formed
    # and gives NaN, returned as None below (the caller falls back on the asymptotic SE)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap(
            (codes,),
            statistic,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=level,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isnan(lo) or math.isnan(hi):
        return None
    return lo, hi


def pair_agreement(
    a: Sequence[int] | IntArray,
    b: Sequence[int] | IntArray,
    q: int,
    *,
    seed: int | None = None,
    n_resamples: int = 2000,
) -> PairAgreement:
    """Agreement (Wilson), kappa (asymptotic SE; BCa interval when `seed` is given, else
    the normal one), AC1 and the confusion table of two raters on the same items."""
    table = confusion(a, b, q)
    kappa = cohen_kappa(table)
    if seed is not None and kappa.value is not None:
        kappa = Coefficient(
            kappa.value, kappa.se, kappa_bootstrap_ci(a, b, q, seed=seed, n_resamples=n_resamples)
        )
    return PairAgreement(
        n_items=int(table.sum()),
        agreement=percent_agreement(table),
        kappa=kappa,
        ac1=gwet_ac1(table),
        confusion=table,
    )


@dataclass(frozen=True)
class ConstantBaseline:
    """The agreement of a judge that always gives the commonest human label."""

    label: int | None
    """The code of the modal human label (the lowest code on a tie); None without items."""
    agreement: Coefficient
    """Its agreement with the humans, `n_label / n`, with the binomial SE and Wilson interval."""


def constant_baseline(human: Sequence[int] | IntArray, q: int, z: float = Z95) -> ConstantBaseline:
    """The constant-answer baseline of the human labels `human` (codes ``0..q-1``): what a
    judge that always answers the modal label agrees with them, and its Wilson interval."""
    counts = np.bincount(np.asarray(human, dtype=np.int64), minlength=q)
    n = int(counts.sum())
    if n == 0:
        return ConstantBaseline(None, Coefficient(None))
    label = int(np.argmax(counts))
    k = int(counts[label])
    p = k / n
    return ConstantBaseline(label, Coefficient(p, math.sqrt(p * (1 - p) / n), wilson(k, n, z)))


def krippendorff_alpha_nominal(units: Sequence[Sequence[int]], q: int) -> float | None:
    """Krippendorff's alpha (nominal) over items, each a list of its labels (any count;
    items with fewer than two labels carry no pairing information). None when undefined
    (no pairable item, or a single label used throughout)."""
    o = np.zeros((q, q), dtype=np.float64)
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=q).astype(np.float64)
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    nc = o.sum(axis=1)
    n = float(nc.sum())
    expected = n * n - float(np.sum(nc * nc))
    if n == 0 or expected == 0:
        return None
    return 1.0 - (n - 1) * (n - float(np.trace(o))) / expected


def labels_for_half_width(expected: float, half_width: float, z: float = Z95) -> int:
    """The fewest labels whose Wilson interval at agreement `expected` is at most
    ``2 * half_width`` wide (the interval is asymmetric: a little more below than above)."""
    if not 0 < expected < 1 or half_width <= 0:
        raise ValueError(
            f"expected agreement {expected} must be in (0, 1) and the half-width {half_width} "
            "positive (e.g. 0.85 and 0.05)"
        )
    n = max(1, int(z * z * expected * (1 - expected) / half_width**2) - 20)
    while True:
        lo, hi = _wilson_p(expected, n, z)
        if (hi - lo) / 2 <= half_width:
            return n
        n += 1


def labels_to_separate(
    expected: float, bar: float, *, alpha: float = 0.05, power: float = 0.80
) -> int:
    """Labels for a one-sided test at `alpha` to tell agreement `expected` from `bar` with
    `power` (the normal approximation of the binomial)."""
    from scipy import stats as sps  # on use: ~1.5 s to import

    if expected == bar:
        raise ValueError(f"expected agreement {expected} equals the bar: nothing to separate")
    za, zb = sps.norm.ppf(1 - alpha), sps.norm.ppf(power)
    num = za * math.sqrt(bar * (1 - bar)) + zb * math.sqrt(expected * (1 - expected))
    return math.ceil((num / (expected - bar)) ** 2)
