"""The monitor's decision at one look: per evaluator, then for the window, from counts alone.

`decide(counts, policy, final=...)` is a pure function of the cumulative counts at a look
(baseline and window: traces scored, flagged, errored, per evaluator). It keeps no state,
so a tick that crashes and runs again decides the same; "once rollback, always rollback"
is the caller's rule. The statistics are in `evalkeeper.analysis.sequential` (a
Clopper-Pearson bound on the baseline's flag rate, then a Beta-mixture likelihood ratio on
the window that stays valid at every look).

Per evaluator, in this order:

* `inconclusive` when the baseline errored too often (errors / (scored + errors) above
  `max_error_rate`) or has fewer than `min_baseline` scored traces: the window can never
  reach `stable` for it (the baseline is fixed before the window), and says so from the
  first look;
* `inconclusive` when the window errored too often (looked at once the window holds
  `min_window` traces, and at the end): an evaluator that cannot score is never a
  rollback and never stable; it asks for a human;
* `continue` while the window has fewer than `min_window` scored traces (`inconclusive`
  at the end: too little traffic);
* `rollback` when log M reaches the threshold;
* `stable` at the end, `continue` before it.

Alpha is split across the k evaluators of the window (Bonferroni: alpha / k each), and each
evaluator's share between the baseline bound (`baseline_share`) and the window test (the
rest). So the chance that an unchanged deploy is rolled back is at most `alpha`, however
many looks and evaluators there are. k is the number of counts passed: pass every
configured evaluator at every look, also those that are inconclusive.

The window: `rollback` if any evaluator says so; at the end `stable` only if every
evaluator is stable, else `inconclusive`; before the end `inconclusive` if any evaluator is
(not final: a later look may still roll back on another evaluator, or recover when the
error rate falls back), else `continue`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypedDict

from evalkeeper.analysis.group_sequential import (
    DEFAULT_MIN_EXPECTED,
    DEFAULT_RHO,
    MIN_INFO_GAIN,
    boundaries,
    information,
    signed_root,
    spending,
)
from evalkeeper.analysis.sequential import (
    DEFAULT_PRIOR_STRENGTH,
    clopper_pearson_upper,
    log_mixture_lr,
    mixture_prior,
    rejection_threshold,
)

Decision = Literal["continue", "rollback", "stable", "inconclusive"]
Method = Literal["spending", "mixture"]
METHODS: tuple[Method, ...] = ("spending", "mixture")

STAT_FLOOR = -1000.0
"""log M below this (a ratio that underflows) is reported as this: finite, JSON-safe."""


@dataclass(frozen=True)
class EvaluatorCounts:
    """One evaluator's cumulative counts at a look.

    `*_n` are traces scored (flagged or passed), `*_flags` those flagged (a failed score),
    `*_errors` those the evaluator could not score (counted apart, never a flag)."""

    evaluator: str
    baseline_n: int
    baseline_flags: int
    baseline_errors: int
    window_n: int
    window_flags: int
    window_errors: int

    def __post_init__(self) -> None:
        for side in ("baseline", "window"):
            n, flags, errors = (getattr(self, f"{side}_{k}") for k in ("n", "flags", "errors"))
            if min(n, flags, errors) < 0 or flags > n:
                raise ValueError(
                    f"evaluator {self.evaluator!r}: {side} counts n={n}, flags={flags}, "
                    f"errors={errors}: expected 0 <= flags <= n and errors >= 0 (n counts "
                    "the traces scored, flags those that failed)"
                )


@dataclass(frozen=True)
class MonitorPolicy:
    """How a window decides.

    alpha: the chance of rolling back an unchanged deploy, for the whole window.
    tolerance: a rise of the flag rate up to this (absolute, 0.01 = one point) is accepted.
    min_baseline: fewer scored baseline traces than this: inconclusive from the start.
    min_window: no decision before the window has this many scored traces.
    max_error_rate: evaluator errors / (scored + errors) above this: inconclusive.
    method: `spending` (the default: a group-sequential two-sample test, alpha spent over
      the window's time) or `mixture` (the earlier test: a Clopper-Pearson bound on the
      baseline and a mixture likelihood ratio on the window, valid at any looks).
    baseline_share: `mixture` only: the part of each evaluator's alpha spent on the
      baseline bound.
    prior_strength: `mixture` only: a + b of the Beta mixing prior (mean at the null rate).
    rho: `spending` only: alpha(t) = alpha * t**rho over the window's elapsed share t.
    min_expected: `spending` only: no analysis before the window's expected flags (and
      passes) under the null reach this (the normal law is poor at a few flags).
    fast_share: `spending` only: the part of each evaluator's alpha given to the mixture
      test beside it (a glaring rise is seen before the first analysis; a window that
      never reaches one is still decided).
    """

    alpha: float = 0.05
    tolerance: float = 0.0
    min_baseline: int = 200
    min_window: int = 50
    max_error_rate: float = 0.2
    baseline_share: float = 0.5
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    method: Method = "spending"
    rho: float = DEFAULT_RHO
    min_expected: float = DEFAULT_MIN_EXPECTED
    fast_share: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.alpha < 1.0:
            problems.append(f"alpha={self.alpha!r}: use a probability in (0, 1), e.g. 0.05")
        if not 0.0 <= self.tolerance < 1.0:
            problems.append(
                f"tolerance={self.tolerance!r}: use a rate rise in [0, 1), e.g. 0.01 for a point"
            )
        if self.min_baseline < 1 or self.min_window < 1:
            problems.append(
                f"min_baseline={self.min_baseline}, min_window={self.min_window}: use at least 1"
            )
        if not 0.0 <= self.max_error_rate < 1.0:
            problems.append(f"max_error_rate={self.max_error_rate!r}: use a rate in [0, 1)")
        if not 0.0 < self.baseline_share < 1.0:
            problems.append(f"baseline_share={self.baseline_share!r}: use a share in (0, 1)")
        if not self.prior_strength > 0.0:
            problems.append(f"prior_strength={self.prior_strength!r}: use a positive number")
        if self.method not in METHODS:
            problems.append(f"method={self.method!r}: use one of {', '.join(METHODS)}")
        if not self.rho > 0.0:
            problems.append(f"rho={self.rho!r}: use a positive exponent, e.g. 0.1")
        if not 0.0 <= self.fast_share < 1.0:
            problems.append(f"fast_share={self.fast_share!r}: use a share in [0, 1), e.g. 0.1")
        if not self.min_expected >= 0.0:
            problems.append(f"min_expected={self.min_expected!r}: use a count >= 0, e.g. 15")
        if problems:
            raise ValueError("monitor policy: " + "; ".join(problems))


@dataclass(frozen=True)
class EvaluatorDecision:
    """One evaluator's decision at a look, with its evidence.

    baseline_rate, window_rate: flags / scored on each side (None without traces).
    upper_bound: `mixture`: the Clopper-Pearson upper bound U on the baseline's rate
      (None with `spending`, which tests the two samples directly).
    null_rate: the rate the window is tested against: U + tolerance (`mixture`), the
      baseline's rate + tolerance (`spending`).
    statistic: `mixture`: log M, the log mixture likelihood ratio, floored at
      `STAT_FLOOR`; `spending`: Z, the signed root of the likelihood ratio (None when not
      computed).
    threshold: rollback once the statistic reaches it: log(1 / alpha_window) (`mixture`);
      the look's group-sequential boundary (`spending`; None before the first analysis;
      at a look with no new traffic, the last analysis's).
    alpha: this evaluator's share of the window's alpha (alpha / k).
    method: the test (`spending` or `mixture`).
    spent: `spending`: the alpha spent by this look (alpha(t) of the last analysis).
    analyses: `spending`: the number of analyses so far, this look included.
    """

    evaluator: str
    decision: Decision
    reason: str
    baseline_rate: float | None
    upper_bound: float | None
    window_rate: float | None
    statistic: float | None
    threshold: float | None
    null_rate: float | None = None
    alpha: float = 0.0
    method: Method = "mixture"
    spent: float | None = None
    analyses: int = 0
    baseline_n: int = 0
    baseline_flags: int = 0
    baseline_errors: int = 0
    window_n: int = 0
    window_flags: int = 0
    window_errors: int = 0


@dataclass(frozen=True)
class WindowDecision:
    """The window's decision at a look, its per-evaluator decisions, and why."""

    decision: Decision
    evaluators: list[EvaluatorDecision]
    reasons: list[str] = field(default_factory=list)
    final: bool = False

    @property
    def rollback_by(self) -> list[EvaluatorDecision]:
        """The evaluators that call for a rollback."""
        return [e for e in self.evaluators if e.decision == "rollback"]


Look = tuple[float, EvaluatorCounts]
"""A look as the `spending` test reads its history: (share of the window elapsed, counts)."""


def decide(
    counts: list[EvaluatorCounts],
    policy: MonitorPolicy,
    *,
    final: bool,
    elapsed: float | None = None,
    history: Mapping[str, Sequence[Look]] | None = None,
) -> WindowDecision:
    """The window's decision from every evaluator's cumulative counts at this look.

    `final` is the window's last look (its end): `continue` becomes `stable` or
    `inconclusive`. The `spending` method also needs `elapsed`, the share of the window's
    time elapsed at this look (in [0, 1]; 1 at the end), and `history`, per evaluator its
    earlier looks of this window (oldest first; an evaluator missing has none): the
    boundary follows from the looks already made, so the same history and counts decide
    the same."""
    if not counts:
        raise ValueError("decide: no evaluator counts; a window monitors at least one evaluator")
    names = [c.evaluator for c in counts]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"decide: evaluator(s) {dupes} given twice; pass one count per evaluator")
    alpha_each = policy.alpha / len(counts)
    if policy.method == "spending":
        if elapsed is None or not 0.0 <= elapsed <= 1.0:
            raise ValueError(
                f"decide: elapsed={elapsed!r}: the spending method needs the share of the "
                "window elapsed at this look, in [0, 1]"
            )
        at = 1.0 if final else elapsed
        past = history or {}
        decisions = []
        for c in counts:
            looks = list(past.get(c.evaluator, ()))
            if sparse_baseline([*looks, (at, c)], policy):
                d = decide_evaluator(c, policy, alpha=alpha_each, final=final)
                d = replace(d, reason=f"{d.reason} (mixture test: {SPARSE_NOTE})")
            else:
                d = _with_fast_path(c, policy, alpha_each, final, at, looks)
            decisions.append(d)
    else:
        decisions = [decide_evaluator(c, policy, alpha=alpha_each, final=final) for c in counts]
    by = {d.decision for d in decisions}
    window: Decision
    if "rollback" in by:
        window = "rollback"
    elif final:
        window = "stable" if by == {"stable"} else "inconclusive"
    else:
        window = "inconclusive" if "inconclusive" in by else "continue"
    reasons = [f"{d.evaluator}: {d.decision}: {d.reason}" for d in decisions]
    return WindowDecision(decision=window, evaluators=decisions, reasons=reasons, final=final)


def _rates(c: EvaluatorCounts) -> tuple[float | None, float | None]:
    """(baseline, window) flag rates: flags / scored, None on a side without scored traces."""
    base_rate = c.baseline_flags / c.baseline_n if c.baseline_n else None
    win_rate = c.window_flags / c.window_n if c.window_n else None
    return base_rate, win_rate


class _Counts(TypedDict):
    baseline_n: int
    baseline_flags: int
    baseline_errors: int
    window_n: int
    window_flags: int
    window_errors: int


def _counts(c: EvaluatorCounts) -> _Counts:
    """The counts an `EvaluatorDecision` carries, as its keyword arguments."""
    return {
        "baseline_n": c.baseline_n,
        "baseline_flags": c.baseline_flags,
        "baseline_errors": c.baseline_errors,
        "window_n": c.window_n,
        "window_flags": c.window_flags,
        "window_errors": c.window_errors,
    }


def decide_evaluator(
    c: EvaluatorCounts, policy: MonitorPolicy, *, alpha: float, final: bool
) -> EvaluatorDecision:
    """One evaluator's decision at level `alpha` (its Bonferroni share), `mixture` test."""
    alpha_b = alpha * policy.baseline_share
    threshold = rejection_threshold(alpha - alpha_b)
    base_rate, win_rate = _rates(c)

    def out(
        decision: Decision,
        reason: str,
        upper: float | None = None,
        statistic: float | None = None,
    ) -> EvaluatorDecision:
        return EvaluatorDecision(
            evaluator=c.evaluator,
            decision=decision,
            reason=reason,
            baseline_rate=base_rate,
            upper_bound=upper,
            window_rate=win_rate,
            statistic=statistic,
            threshold=threshold,
            null_rate=None if upper is None else upper + policy.tolerance,
            alpha=alpha,
            **_counts(c),
        )

    base_err = _error_problem("baseline", c.baseline_n, c.baseline_errors, policy.max_error_rate)
    if base_err:
        return out("inconclusive", base_err + "; the baseline rate cannot be trusted")
    if c.baseline_n < policy.min_baseline:
        return out(
            "inconclusive",
            f"too few baseline traces: {c.baseline_n} scored, min_baseline is "
            f"{policy.min_baseline}; lengthen the baseline period or raise the sample rate",
        )
    upper = clopper_pearson_upper(c.baseline_flags, c.baseline_n, alpha_b)
    window_total = c.window_n + c.window_errors
    if final or window_total >= policy.min_window:
        win_err = _error_problem("window", c.window_n, c.window_errors, policy.max_error_rate)
        if win_err:
            return out("inconclusive", win_err + "; check the evaluator, a human decides", upper)
    if c.window_n < policy.min_window:
        if final:
            return out(
                "inconclusive",
                f"too little traffic: {c.window_n} window traces scored, min_window is "
                f"{policy.min_window}",
                upper,
            )
        return out(
            "continue",
            f"collecting: {c.window_n} of min_window={policy.min_window} traces scored",
            upper,
        )
    p0 = upper + policy.tolerance
    if p0 >= 1.0:
        reason = f"baseline bound {_pct(upper)} + tolerance reaches 100%: no rise can be seen"
        return out("inconclusive" if final else "continue", reason, upper)
    a, b = mixture_prior(p0, policy.prior_strength)
    statistic = max(float(log_mixture_lr(c.window_flags, c.window_n, p0, a, b)), STAT_FLOOR)
    rates = (
        f"window {c.window_flags}/{c.window_n} = {_pct(win_rate)} vs baseline "
        f"{c.baseline_flags}/{c.baseline_n} = {_pct(base_rate)} (bound {_pct(p0)}"
        + (f" with tolerance {policy.tolerance:g}" if policy.tolerance else "")
        + f"); log LR {_num(statistic)} "
    )
    if statistic >= threshold:
        return out("rollback", rates + f">= {threshold:.2f}: the flag rate rose", upper, statistic)
    if final:
        return out("stable", rates + f"< {threshold:.2f}: no rise detected", upper, statistic)
    return out("continue", rates + f"< {threshold:.2f}", upper, statistic)


def _blocked(c: EvaluatorCounts, policy: MonitorPolicy, *, final: bool) -> tuple[str, str] | None:
    """(decision, reason) when the counts cannot be tested at this look, else None: the
    checks both methods share, in the module's order (the baseline, then the window)."""
    base_err = _error_problem("baseline", c.baseline_n, c.baseline_errors, policy.max_error_rate)
    if base_err:
        return "inconclusive", base_err + "; the baseline rate cannot be trusted"
    if c.baseline_n < policy.min_baseline:
        return (
            "inconclusive",
            f"too few baseline traces: {c.baseline_n} scored, min_baseline is "
            f"{policy.min_baseline}; lengthen the baseline period or raise the sample rate",
        )
    if final or c.window_n + c.window_errors >= policy.min_window:
        win_err = _error_problem("window", c.window_n, c.window_errors, policy.max_error_rate)
        if win_err:
            return "inconclusive", win_err + "; check the evaluator, a human decides"
    if c.window_n < policy.min_window:
        if final:
            return (
                "inconclusive",
                f"too little traffic: {c.window_n} window traces scored, min_window is "
                f"{policy.min_window}",
            )
        return (
            "continue",
            f"collecting: {c.window_n} of min_window={policy.min_window} traces scored",
        )
    return None


def _expected(c: EvaluatorCounts, tolerance: float) -> float:
    """The fewer of the window's expected flags and passes under the null (baseline rate +
    tolerance)."""
    p0 = min(c.baseline_flags / c.baseline_n + tolerance, 1.0)
    return min(c.window_n * p0, c.window_n * (1.0 - p0))


SPARSE_NOTE = "too few baseline flags for the normal law"
NO_ANALYSIS = "too few flags to test"
FAST_NOTE = "the mixture test beside the group-sequential one"


def _with_fast_path(
    c: EvaluatorCounts,
    policy: MonitorPolicy,
    alpha: float,
    final: bool,
    elapsed: float,
    looks: list[Look],
) -> EvaluatorDecision:
    """The `spending` test at ``(1 - fast_share) * alpha`` beside the `mixture` test at
    ``fast_share * alpha`` (the union bound keeps the sum at alpha): the mixture sees a
    glaring rise from the first `min_window` traces, before the spending test's first
    analysis, and decides a window whose traffic never reaches that analysis. The
    evidence shown (statistic, threshold, method) is that of the test that decided: the
    mixture test's when its rollback came first, else the spending test's."""
    spend = decide_spending(
        c, policy, alpha=alpha * (1 - policy.fast_share), final=final, elapsed=elapsed,
        history=looks,
    )  # fmt: skip
    if policy.fast_share <= 0.0:
        return spend
    fast = decide_evaluator(c, policy, alpha=alpha * policy.fast_share, final=final)
    if fast.decision == "rollback" and spend.decision != "rollback":
        # the evidence is the deciding test's: log LR >= ln(1 / alpha_w), U on the baseline
        return replace(
            fast, alpha=alpha, spent=spend.spent, analyses=spend.analyses,
            reason=f"{fast.reason} (fast path: {FAST_NOTE})",
        )  # fmt: skip
    if (
        spend.decision == "inconclusive"
        and NO_ANALYSIS in spend.reason
        and fast.decision == "stable"
    ):
        return replace(
            spend, decision="stable", alpha=alpha,
            reason=f"{spend.reason.split(' (no analysis yet')[0]}; no analysis of the spending "
            f"test (too few expected flags); the mixture test: {fast.reason}",
        )  # fmt: skip
    return replace(spend, alpha=alpha)


def sparse_baseline(looks: Sequence[Look], policy: MonitorPolicy) -> bool:
    """True when the `spending` method tests this evaluator by the `mixture` test instead:
    at the first look whose baseline can be used, the baseline has fewer than
    `min_expected` flags (or passes). The choice reads the baseline only (fixed before the
    window), never the window, and is the same at every later look of the window."""
    for _, c in looks:
        if c.baseline_n < policy.min_baseline or _error_problem(
            "baseline", c.baseline_n, c.baseline_errors, policy.max_error_rate
        ):
            continue
        return min(c.baseline_flags, c.baseline_n - c.baseline_flags) < policy.min_expected
    return False


def analyses(looks: Sequence[Look], policy: MonitorPolicy) -> list[tuple[int, float, float]]:
    """The looks that are analyses of the `spending` test, as (index, information, elapsed):
    testable counts (`_blocked` is None), the first with `min_expected` expected flags and
    passes under the null, each later one with more information than the last (a look
    with no new traffic is not an analysis and spends nothing)."""
    out: list[tuple[int, float, float]] = []
    for i, (at, c) in enumerate(looks):
        if _blocked(c, policy, final=False) is not None:
            continue
        info = information(c.window_n, c.baseline_n)
        if out:
            if info < out[-1][1] * (1.0 + MIN_INFO_GAIN):
                continue
        elif _expected(c, policy.tolerance) < policy.min_expected:
            continue
        out.append((i, info, max(at, out[-1][2] if out else 0.0)))
    return out


def decide_spending(
    c: EvaluatorCounts,
    policy: MonitorPolicy,
    *,
    alpha: float,
    final: bool,
    elapsed: float,
    history: list[Look],
) -> EvaluatorDecision:
    """One evaluator's decision at level `alpha` (its Bonferroni share) by the
    group-sequential test (`evalkeeper.analysis.group_sequential`), at `elapsed` of the
    window, after the looks of `history`."""
    base_rate, win_rate = _rates(c)
    done = analyses([*history, (elapsed, c)], policy)
    current = bool(done) and done[-1][0] == len(history)
    threshold: float | None = None
    spent: float | None = None
    if done:
        bounds = boundaries([a[1] for a in done], [a[2] for a in done], alpha, policy.rho)
        threshold = bounds[-1]
        spent = spending(done[-1][2], alpha, policy.rho)

    def out(decision: Decision, reason: str, statistic: float | None = None) -> EvaluatorDecision:
        return EvaluatorDecision(
            evaluator=c.evaluator,
            decision=decision,
            reason=reason,
            baseline_rate=base_rate,
            upper_bound=None,
            window_rate=win_rate,
            statistic=statistic,
            threshold=None if threshold is None or math.isinf(threshold) else threshold,
            null_rate=None if base_rate is None else min(base_rate + policy.tolerance, 1.0),
            alpha=alpha,
            method="spending",
            spent=spent,
            analyses=len(done),
            **_counts(c),
        )

    blocked = _blocked(c, policy, final=final)
    if blocked is not None:
        decision, reason = blocked
        return out(decision, reason)  # type: ignore[arg-type]
    assert base_rate is not None and win_rate is not None  # both sides have scored traces
    p0 = base_rate + policy.tolerance
    if p0 >= 1.0:
        reason = f"baseline rate {_pct(base_rate)} + tolerance reaches 100%: no rise can be seen"
        return out("inconclusive" if final else "continue", reason)
    statistic = signed_root(
        c.window_flags, c.window_n, c.baseline_flags, c.baseline_n, policy.tolerance
    )
    rates = (
        f"window {c.window_flags}/{c.window_n} = {_pct(win_rate)} vs baseline "
        f"{c.baseline_flags}/{c.baseline_n} = {_pct(base_rate)}"
        + (f" + tolerance {policy.tolerance:g}" if policy.tolerance else "")
        + f"; Z {statistic:.2f} "
    )
    if not done:
        expected = _expected(c, policy.tolerance)
        why = (
            f"no analysis yet: {expected:.1f} expected flags or passes under the null, "
            f"min_expected is {policy.min_expected:g}"
        )
        if final:
            return out(
                "inconclusive",
                rates + f"({why}): {NO_ANALYSIS}; raise the sample rate, lengthen "
                'the window, or use method = "mixture" for rare flags',
                statistic,
            )
        return out("continue", rates + f"({why})", statistic)
    assert threshold is not None and spent is not None
    where = f"boundary {threshold:.2f} at analysis {len(done)}, alpha spent {spent:.3g}"
    if current and statistic >= threshold:
        return out("rollback", rates + f">= {where}: the flag rate rose", statistic)
    if not current:
        where += "; no new traffic since that analysis"
    if final:
        return out("stable", rates + f"< {where}: no rise detected", statistic)
    return out("continue", rates + f"< {where}", statistic)


def _error_problem(side: str, scored: int, errors: int, max_rate: float) -> str | None:
    total = scored + errors
    if total and errors / total > max_rate:
        return (
            f"{side}: {errors} of {total} traces errored in the evaluator "
            f"({errors / total:.0%} > max_error_rate {max_rate:.0%})"
        )
    return None


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _num(x: float) -> str:
    return f"<= {x:.0f}" if x <= STAT_FLOOR else f"{x:.2f}"
