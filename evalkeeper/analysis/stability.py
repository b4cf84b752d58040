"""Flaky rows: is an (example, evaluator) a stable pass, a stable fail, or flaky; and may a
flaky guarded row gate? Pure: counts in, classes out (the counts come from the warehouse's
`row_stability` view, `evalkeeper.warehouse.stability`).

**Observations.** A row's observations are its scored pass/fail rows (not skipped, not
errored) over the repetitions of every run of the same dataset version and target pin, for
the same evaluator version (and judge model). The *target pin* is the experiment's
``(target_spec, agent_version, model)``: what the target declares itself to be. The git
commit is left out on purpose: it is the commit of the checkout the run started from, which
changes with every merge (docs, datasets, unrelated code), so with it in the pin almost
every pin would hold a single run and "history across runs" would mean nothing. A target
whose code changes without its pin changing should declare ``agent_version`` in
``__evalkeeper_pin__`` (README, "CLI": the target spec and its pin).

**Interval.** The Wilson score interval (Wilson 1927) on the pass rate ``p = passes / n`` at
``settings.analysis.flaky_confidence`` (z its two-sided normal quantile)::

    centre = (p + z²/2n) / (1 + z²/n)
    half   = z / (1 + z²/n) · sqrt(p(1 − p)/n + z²/4n²)

Wilson rather than Clopper-Pearson: the "exact" Clopper-Pearson interval guarantees at least
the nominal coverage at every p, and pays for it by covering far more than nominal (it is
wide), most of all at the small n of a row's history; Wilson's coverage stays close to the
nominal level on average over p, and it neither collapses to a point at 0 or n passes (as
Wald does) nor leaves [0, 1] (Agresti and Coull 1998; Brown, Cai and DasGupta 2001, who
recommend it, or Jeffreys', for n up to about 40, the size of most rows' histories). It has a closed form, so the warehouse view computes the
same numbers in SQL (``pass_rate_trend`` uses the same formula). It is checked against
statsmodels' ``proportion_confint(method="wilson")`` in tests/analysis/test_stability.py.

**Classes**, with ``[lo, hi]`` the interval and ε = ``settings.analysis.flaky_tolerance``
(0.10), in this order:

1. ``stable_pass`` — ``lo ≥ 1 − ε``: the fail rate's upper bound, 1 − lo, is at most ε.
2. ``stable_fail`` — ``hi ≤ ε``: the pass rate's upper bound is at most ε.
3. ``flaky`` — both outcomes were seen (``0 < passes < n``) and the row is not stable. Seeing
   both is proof that the row is not deterministic under its pin (so the Wilson interval, whose
   lower bound is above 0 whenever passes > 0, excludes both 0 and 1); the interval then says
   how often it flips. A deterministic row (p = 0 or 1) is never called flaky.
4. ``insufficient`` — every observation agreed but there are too few to bound the other
   outcome's rate under ε (with ε = 0.10 at 95%, at least 35 agreeing observations), or there
   is no observation at all.

The stable classes are statistical claims: a row whose fail rate is above ε is called
``stable_pass`` only when the interval misses on that side, about (1 − confidence)/2 of the
time (Wilson's coverage is close to nominal, not guaranteed: benchmarks/flaky.py measures
it, and how often each class comes out for known flip rates). The flaky class is a plain observation (a flip seen).

**The guard** (the per-row "never ship twice" rule of `evalkeeper.analysis.cells`: a critical
or incident row that passed in the baseline and fails now). Its row is classified from the
candidate pin's history *before* the candidate (runs started earlier, the candidate left out):
a candidate that breaks a row must not make that row look flaky by its own failures. Then
(`guard_row`):

* not flaky (stable, insufficient, no history) — a regression, as before (``regression``);
* flaky, and the candidate ran at least N = ``flaky_gate_of`` repetitions of it, of which at
  least ``ceil(k · R / N)`` failed (k = ``flaky_gate_fails``; "k of every N", default 3 of 3:
  every repetition failed) — a regression too (``flaky_regression``): with a historical pass
  rate p, R repetitions all fail by chance with probability (1 − p)^R;
* flaky, enough repetitions, fewer failures — not a regression, but a warning that names it
  (``flaky_tolerated``): the failure is within what the row's history shows;
* flaky, fewer than N repetitions — the rule cannot decide: the verdict is at least
  ``inconclusive``, with the fix (run with ``--repetitions N``) (``flaky_undecided``). An
  unknown is never turned into a pass.

Sources: E. B. Wilson (1927), "Probable inference, the law of succession, and statistical
inference", JASA 22(158): 209–212. C. J. Clopper and E. S. Pearson (1934), "The use of
confidence or fiducial limits illustrated in the case of the binomial", Biometrika 26(4):
404–413. A. Agresti and B. A. Coull (1998), "Approximate is better than 'exact' for interval
estimation of binomial proportions", The American Statistician 52(2): 119–126. L. D. Brown,
T. T. Cai and A. DasGupta (2001), "Interval estimation for a binomial proportion", Statistical
Science 16(2): 101–133.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from evalkeeper.analysis.stats import z_value
from evalkeeper.settings import AnalysisSettings

Stability = Literal["stable_pass", "stable_fail", "flaky", "insufficient"]
STABILITIES: tuple[Stability, ...] = ("stable_pass", "stable_fail", "flaky", "insufficient")

RowGuard = Literal["regression", "flaky_regression", "flaky_tolerated", "flaky_undecided"]
"""What the per-row guard made of a guarded row that flipped (see the module docstring)."""

GATING: frozenset[RowGuard] = frozenset({"regression", "flaky_regression"})


def wilson(passes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval on ``passes / n``; (nan, nan) when ``n == 0``."""
    if n <= 0:
        return math.nan, math.nan
    z = z_value(0.5 + confidence / 2)
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / denom
    return max(centre - half, 0.0), min(centre + half, 1.0)


def classify(passes: int, n: int, *, confidence: float, tolerance: float) -> Stability:
    """The row's class from its counts (see the module docstring)."""
    if n <= 0:
        return "insufficient"
    lo, hi = wilson(passes, n, confidence)
    if lo >= 1 - tolerance:
        return "stable_pass"
    if hi <= tolerance:
        return "stable_fail"
    if 0 < passes < n:
        return "flaky"
    return "insufficient"


@dataclass(frozen=True)
class RowStability:
    """One row's counts, its interval and its class."""

    runs: int
    observations: int
    passes: int
    ci_low: float | None
    ci_high: float | None
    stability: Stability

    @property
    def fails(self) -> int:
        return self.observations - self.passes

    @property
    def pass_rate(self) -> float | None:
        return self.passes / self.observations if self.observations else None


def row_stability(runs: int, passes: int, n: int, settings: AnalysisSettings) -> RowStability:
    """Counts -> `RowStability`, with the thresholds of `settings`."""
    lo, hi = wilson(passes, n, settings.flaky_confidence)
    return RowStability(
        runs=runs,
        observations=n,
        passes=passes,
        ci_low=None if math.isnan(lo) else lo,
        ci_high=None if math.isnan(hi) else hi,
        stability=classify(
            passes, n, confidence=settings.flaky_confidence, tolerance=settings.flaky_tolerance
        ),
    )


def fails_needed(repetitions: int, settings: AnalysisSettings) -> int | None:
    """Failing candidate repetitions a flaky guarded row needs to gate ("k of every N"), or
    None when the candidate ran fewer than N of them (the rule cannot decide)."""
    k, n = settings.flaky_gate_fails, settings.flaky_gate_of
    if repetitions < n:
        return None
    return math.ceil(k * repetitions / n)


def guard_row(
    history: RowStability | None, repetitions: int, fails: int, settings: AnalysisSettings
) -> RowGuard:
    """What the guard makes of a guarded row that flipped: its history (before the
    candidate, under the candidate's pin) and the candidate's scored repetitions and
    failures of it. See the module docstring."""
    if history is None or history.stability != "flaky":
        return "regression"
    needed = fails_needed(repetitions, settings)
    if needed is None:
        return "flaky_undecided"
    return "flaky_regression" if fails >= needed else "flaky_tolerated"


def judge_flipped(
    flipped: list[dict[str, Any]],
    history: Mapping[tuple[str, str], tuple[int, int, int]],
    settings: AnalysisSettings,
) -> list[dict[str, Any]]:
    """The guard's flipped rows (`evalkeeper.analysis.cells.analyse`) with their `history`
    ((example_id, evaluator) -> (runs, passes, observations) before the candidate:
    `evalkeeper.warehouse.stability.guard_history`) and the `guard` decision of each."""
    out = []
    for r in flipped:
        counts = history.get((r["example_id"], r["evaluator"]))
        h = None if counts is None else row_stability(*counts, settings)
        guard = guard_row(h, r["candidate_repetitions"], r["candidate_fails"], settings)
        hist = None
        if h is not None:
            hist = {
                "runs": h.runs,
                "observations": h.observations,
                "passes": h.passes,
                "pass_rate": h.pass_rate,
                "ci_low": h.ci_low,
                "ci_high": h.ci_high,
                "stability": h.stability,
            }
        out.append({**r, "history": hist, "guard": guard})
    return out


def classify_rows(rows: list[dict[str, Any]], settings: AnalysisSettings) -> list[dict[str, Any]]:
    """Rows of the `row_stability` view with `pass_rate`, `ci_low`, `ci_high` and
    `stability` computed again from their counts with `settings` (the view's own use the
    defaults)."""
    out = []
    for r in rows:
        s = row_stability(int(r["runs"]), int(r["passes"]), int(r["observations"]), settings)
        out.append(
            {
                **r,
                "pass_rate": s.pass_rate,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "stability": s.stability,
            }
        )
    return out
