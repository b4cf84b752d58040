"""Judge-corrected pass rates: a pass rate an LLM judge produced, corrected for the judge's
measured errors, with an interval that carries both the run's and the calibration's error.

Pure numpy/scipy; nothing here knows about the warehouse (the calibration counts come from
`evalkeeper.warehouse.judge_errors`, the cells from `compare`).

The method, so a reader can check it:

* **The judge's errors.** Calibration compares the judge's verdict with the majority human
  label on a sample (`evalkeeper.calibration.measure`). Of the ``n_pass`` items the humans
  passed the judge passed ``tp``: the true-pass rate (sensitivity) ``r = tp / n_pass``; of
  the ``n_fail`` items they failed it failed ``tn``: the true-fail rate (specificity)
  ``s = tn / n_fail``. Both are binomial proportions: ``Var(r) = r (1 - r) / n_pass`` and
  ``Var(s) = s (1 - s) / n_fail``. Youden's ``J = r + s - 1`` is how much the judge's
  verdict says about the truth: 1 for a perfect judge, 0 for one whose verdict is
  independent of the truth (a coin, or "always pass").

* **The correction** (Rogan and Gladen 1978, "Estimating prevalence from the results of a
  screening test", American Journal of Epidemiology 107(1):71-76). If a share ``theta`` of
  the rows truly pass, the judge passes ``p = theta r + (1 - theta)(1 - s)`` of them, so

      theta = (p + s - 1) / (r + s - 1) = (p + s - 1) / J,

  reported clipped to [0, 1] (`rogan_gladen`). It assumes the judge's errors on this run
  are those it made on the calibration sample (the same kind of items: calibration draws
  its sample in proportion to the judge's verdicts and categories).

* **Delta-method interval** (the main one, `corrected_rate`). ``p`` (from the run), ``r``
  and ``s`` (from the calibration) are independent estimates; the gradient of ``theta`` is
  ``(1/J, -theta/J, (1 - theta)/J)``, so, with ``theta`` the unclipped estimate,

      Var(theta) = [Var(p) + theta**2 Var(r) + (1 - theta)**2 Var(s)] / J**2.

  ``Var(p)`` is the run's sampling variance of its pass rate: the square of the
  cluster-robust SE by example `compare` computes when examples repeat
  (`SideEstimate.se_cluster`), else of the CLT SE (``p (1 - p) / N``). The interval is
  ``theta ± z_{0.975} sqrt(Var(theta))`` around the unclipped estimate, then clipped to
  [0, 1] (clipping never changes whether it covers a rate inside [0, 1]). The two parts
  are kept apart (`Corrected.var_sampling`, `Corrected.var_calibration`): a run with more
  examples shrinks the first only, more human labels the second only.

* **Where the delta interval is poor.** Its linearisation divides by ``J``: when ``J`` is
  near 0 (or its own interval reaches 0) the ratio's distribution is far from normal,
  ``theta`` swings across [0, 1] with small changes of ``r`` and ``s``, and no symmetric
  interval describes it (the exact confidence set is then unbounded before clipping).
  So a judge whose ``J`` has a 95% lower bound ``J - z sqrt(Var(r) + Var(s))`` at or
  below ``min_j`` (`MIN_J`, 0.1; setting ``EVALKEEPER_CORRECTED_MIN_J``) is flagged
  *uninformative*: its scores carry almost no information about the truth, and its
  corrected rate is not shown as a number (`Corrected.informative` is False). The
  interval is also wide and conservative when one of the human classes has only a few
  dozen items (``Var(s)`` from 10 items is a poor estimate), and it under-covers when
  the true rate is within a point or two of 0 or 1 with few human labels of the rare
  class; `benchmarks/corrected_rates.py` measures coverage in such settings beside the
  usual ones. It ignores that the calibration sample may include rows of the very run
  it corrects (then ``p`` and ``r, s`` are not quite independent).

* **Parametric bootstrap** (`bootstrap_rate`, seeded): the run's rows drawn again as
  ``Binomial(n_eff, p)`` with ``n_eff = p (1 - p) / Var(p)`` (the effective number of rows
  under clustering; ``N`` without), and the calibration's counts as
  ``Binomial(n_pass, r)`` and ``Binomial(n_fail, s)``; ``theta*`` computed from each
  draw, the percentile interval clipped to [0, 1]. A second computation of the same
  uncertainty (the tests compare it with the delta method, and the delta variance with
  an exact sum over the three binomial distributions); draws with ``J* <= 0`` are
  counted (`Bootstrap.n_undefined`), not used.

* **What a paired comparison needs.** Two runs scored by the same judge version have the
  same ``r`` and ``s``: their raw pass rates ``p_c - p_b = J (theta_c - theta_b)``, so a
  constant judge error cancels in the paired difference (no change reads as no change,
  a real change is scaled by ``J``, never reversed) and the verdict stays on the raw
  paired differences. A level ("92% of answers are right") is biased by the judge's
  errors: that is what the corrected rate is for.

Other sources: the delta method for this estimator and its poor coverage near ``J = 0``
are discussed in Lang and Reiczigel (2014), "Confidence limits for prevalence of disease
adjusted for estimated sensitivity and specificity", Preventive Veterinary Medicine
113(1):13-22.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalkeeper.analysis.stats import z_value

CONFIDENCE = 0.95
MIN_J = 0.1
"""Default `min_j`: a judge whose Youden J has a 95% lower bound at or below this is
uninformative (setting ``EVALKEEPER_CORRECTED_MIN_J``)."""

NOTE = (
    "Judge-corrected rates estimate the true pass rate from the judge's measured errors "
    "(Rogan-Gladen). A level such as '92% pass' is biased by a judge's errors; a paired "
    "difference between two runs scored by the same judge version is not (a constant "
    "judge error cancels), so the verdict stays on the raw paired differences."
)
"""The one line shown wherever corrected rates appear (compare, the reports)."""


@dataclass(frozen=True)
class JudgeErrors:
    """A judge version's calibration counts: of `n_pass` items humans passed, the judge
    passed `tp`; of `n_fail` items humans failed, the judge failed `tn`."""

    n_pass: int
    tp: int
    n_fail: int
    tn: int

    @property
    def complete(self) -> bool:
        """Both human classes were labelled (else one rate is unknown)."""
        return self.n_pass > 0 and self.n_fail > 0

    @property
    def tpr(self) -> float:
        return self.tp / self.n_pass if self.n_pass else math.nan

    @property
    def tnr(self) -> float:
        return self.tn / self.n_fail if self.n_fail else math.nan

    @property
    def var_tpr(self) -> float:
        r = self.tpr
        return r * (1.0 - r) / self.n_pass if self.n_pass else math.nan

    @property
    def var_tnr(self) -> float:
        s = self.tnr
        return s * (1.0 - s) / self.n_fail if self.n_fail else math.nan

    @property
    def j(self) -> float:
        """Youden's J = TPR + TNR - 1."""
        return self.tpr + self.tnr - 1.0

    def j_interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Wald interval of J: ``J ± z sqrt(Var(r) + Var(s))``."""
        half = z_value(0.5 + confidence / 2) * math.sqrt(self.var_tpr + self.var_tnr)
        return self.j - half, self.j + half


def errors_from_confusion(confusion: Sequence[Sequence[int]]) -> JudgeErrors:
    """The counts from calibration's confusion table (rows: the judge's label, columns: the
    human majority label; the pass label first, every other label a fail, as
    `JudgeCalibration.confusion` stores it)."""
    table = np.asarray(confusion, dtype=np.int64)
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] < 1:
        raise ValueError(f"confusion table {confusion!r}: expected a square table")
    n_pass = int(table[:, 0].sum())
    return JudgeErrors(
        n_pass=n_pass,
        tp=int(table[0, 0]),
        n_fail=int(table[:, 1:].sum()),
        tn=int(table[1:, 1:].sum()),
    )


def rogan_gladen(p: float, tpr: float, tnr: float, *, clip: bool = True) -> float:
    """``(p + tnr - 1) / (tpr + tnr - 1)``, clipped to [0, 1] unless `clip` is False; NaN
    when ``tpr + tnr = 1`` (the judge's verdict says nothing about the truth)."""
    j = tpr + tnr - 1.0
    if j == 0:
        return math.nan
    theta = (p + tnr - 1.0) / j
    return min(max(theta, 0.0), 1.0) if clip else theta


def delta_variance(
    p: float, var_p: float, tpr: float, var_tpr: float, tnr: float, var_tnr: float
) -> tuple[float, float]:
    """(sampling part, calibration part) of the delta-method variance of the unclipped
    Rogan-Gladen estimate: ``Var(p) / J**2`` and ``(theta**2 Var(r) + (1 - theta)**2
    Var(s)) / J**2``; their sum is ``Var(theta)`` (see the module docstring)."""
    j = tpr + tnr - 1.0
    theta = (p + tnr - 1.0) / j
    return var_p / j**2, (theta**2 * var_tpr + (1.0 - theta) ** 2 * var_tnr) / j**2


@dataclass(frozen=True)
class Corrected:
    """A raw pass rate corrected for its judge's errors, with the delta-method interval."""

    raw: float
    raw_se: float
    tpr: float
    tnr: float
    j: float
    j_ci_low: float
    informative: bool
    """False when J's lower bound is at or below `min_j`: the judge's scores carry almost no
    information, and the fields below are NaN (never a number that looks trustworthy)."""
    estimate: float
    """Clipped to [0, 1]."""
    unclipped: float
    se: float
    ci_low: float
    ci_high: float
    var_sampling: float
    var_calibration: float


def corrected_rate(
    p: float,
    se_p: float,
    errors: JudgeErrors,
    *,
    min_j: float = MIN_J,
    confidence: float = CONFIDENCE,
) -> Corrected:
    """The Rogan-Gladen estimate of the true pass rate behind a raw pass rate `p` (its SE
    `se_p`: the run's sampling error) and the delta-method interval carrying both errors.
    `errors` must be `complete` (a ValueError otherwise)."""
    if not errors.complete:
        raise ValueError(
            f"calibration counts {errors}: both human classes are needed to correct a rate"
        )
    r, s = errors.tpr, errors.tnr
    j = r + s - 1.0
    j_low = errors.j_interval(confidence)[0]
    nan = math.nan
    if not (j_low > min_j):
        return Corrected(p, se_p, r, s, j, j_low, False, nan, nan, nan, nan, nan, nan, nan)
    v_run, v_cal = delta_variance(p, se_p**2, r, errors.var_tpr, s, errors.var_tnr)
    theta = (p + s - 1.0) / j
    se = math.sqrt(v_run + v_cal)
    half = z_value(0.5 + confidence / 2) * se
    return Corrected(
        raw=p,
        raw_se=se_p,
        tpr=r,
        tnr=s,
        j=j,
        j_ci_low=j_low,
        informative=True,
        estimate=min(max(theta, 0.0), 1.0),
        unclipped=theta,
        se=se,
        ci_low=min(max(theta - half, 0.0), 1.0),
        ci_high=min(max(theta + half, 0.0), 1.0),
        var_sampling=v_run,
        var_calibration=v_cal,
    )


@dataclass(frozen=True)
class Bootstrap:
    """The parametric bootstrap of a corrected rate."""

    se: float
    """Standard deviation of the unclipped ``theta*`` over the defined draws."""
    ci_low: float
    ci_high: float
    n_resamples: int
    n_undefined: int
    """Draws whose ``J* <= 0`` (no estimate): left out, counted."""


def bootstrap_rate(
    p: float,
    se_p: float,
    errors: JudgeErrors,
    *,
    seed: int,
    n_resamples: int = 4000,
    confidence: float = CONFIDENCE,
) -> Bootstrap:
    """Parametric bootstrap over the run and the calibration (see the module docstring)."""
    if not errors.complete:
        raise ValueError(f"calibration counts {errors}: both human classes are needed")
    rng = np.random.default_rng(seed)
    r, s = errors.tpr, errors.tnr
    if 0.0 < p < 1.0 and se_p > 0:
        n_eff = max(round(p * (1.0 - p) / se_p**2), 1)
        p_star = rng.binomial(n_eff, p, n_resamples) / n_eff
    else:  # no sampling spread to draw from
        p_star = np.full(n_resamples, p)
    r_star = rng.binomial(errors.n_pass, r, n_resamples) / errors.n_pass
    s_star = rng.binomial(errors.n_fail, s, n_resamples) / errors.n_fail
    j_star = r_star + s_star - 1.0
    ok = j_star > 0
    theta = (p_star[ok] + s_star[ok] - 1.0) / j_star[ok]
    if theta.size < 2:
        return Bootstrap(math.nan, math.nan, math.nan, n_resamples, int((~ok).sum()))
    tail = (1.0 - confidence) / 2
    lo, hi = np.quantile(theta, [tail, 1.0 - tail])
    return Bootstrap(
        se=float(theta.std(ddof=1)),
        ci_low=float(min(max(lo, 0.0), 1.0)),
        ci_high=float(min(max(hi, 0.0), 1.0)),
        n_resamples=n_resamples,
        n_undefined=int((~ok).sum()),
    )
