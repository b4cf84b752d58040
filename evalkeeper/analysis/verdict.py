"""The verdict of a comparison, from its analysis (`evalkeeper.analysis.paired.Analysis`).
Pure: no warehouse, no clock.

* ``decide_verdict(analysis, *, settings, max_mde) -> Ruling`` — the decided cells, the
  verdict, its reasons and the notes it adds to the warnings.

The rule: `evalkeeper.analysis.stats.decide` over every cell — regression (a guarded row
regressed and gates: every one that is not flaky, and a flaky one that failed at least k of
every N repetitions, `evalkeeper.analysis.stability`; or a cell with Benjamini-Hochberg-adjusted p < alpha and a drop larger than
``settings.analysis.tolerance``); inconclusive (an evaluator's ``__all__`` cell has an error rate
above ``settings.analysis.max_error_rate`` on either side, no paired example, or an MDE above
`max_mde`); else pass. Then the candidate's skipped evaluators (not optional, not retired):
they vouch for nothing, so a pass becomes inconclusive and says why; a regression stays one
and names them in a warning. A regression also notes, as warnings, what would otherwise
have made it inconclusive (underpowered cells, error rates). The candidate's evaluators the
baseline did not score (not optional, not retired: `Analysis.one_sided`) are treated the same
way: nothing was compared for them, so they vouch for nothing either. So are the flaky
guarded rows that flipped with fewer than N repetitions (``flaky_undecided``): the k-of-N
rule cannot judge them, so a pass becomes inconclusive and names them. A flaky guarded row
that failed fewer than k of every N (``flaky_tolerated``) does not gate, and is named in a
warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkeeper.analysis import stats
from evalkeeper.analysis.cells import cell_status
from evalkeeper.analysis.models import ALL, Cell
from evalkeeper.analysis.reasons import row_reason, verdict_reasons
from evalkeeper.analysis.stability import GATING
from evalkeeper.analysis.stats import CellEvidence, Verdict
from evalkeeper.settings import Settings

if TYPE_CHECKING:
    from evalkeeper.analysis.paired import Analysis


@dataclass(frozen=True)
class Ruling:
    """What `decide_verdict` decided."""

    verdict: Verdict
    reasons: list[str]
    cells: list[Cell]
    """The analysis' cells with `p_adjusted`, `regressed`, `underpowered` and `status` set."""
    warnings: list[str]
    """Notes for after the analysis' warnings: the skipped evaluators of a regression, and
    what would have made a regression inconclusive."""


def decide_verdict(analysis: Analysis, *, settings: Settings, max_mde: float) -> Ruling:
    """The verdict of `analysis` (see the module docstring); its cells are left as they are."""
    gating = [r for r in analysis.flipped if r.get("guard", "regression") in GATING]
    decision = stats.decide(
        [
            CellEvidence(
                diff=c.diff if c.diff is not None else math.nan,
                p_value=c.p_value,
                mde=c.mde,
                overall=c.category == ALL,
                power_checked=analysis.unit_scale[c.evaluator],
                error_rate=max(c.error_rate_baseline, c.error_rate_candidate),
            )
            for c in analysis.cells
        ],
        alpha=settings.analysis.alpha,
        tolerance=settings.analysis.tolerance,
        max_error_rate=settings.analysis.max_error_rate,
        max_mde=max_mde,
        critical_regressions=len(gating),
    )
    cells = []
    for c, p_adj, reg, under in zip(
        analysis.cells,
        decision.p_adjusted,
        decision.regressed,
        decision.underpowered,
        strict=True,
    ):
        cell = c.model_copy(update={"p_adjusted": p_adj, "regressed": reg, "underpowered": under})
        cell.status = cell_status(cell, settings.analysis.alpha)
        cells.append(cell)

    warnings: list[str] = []
    verdict = decision.verdict
    reasons = verdict_reasons(cells, gating, verdict, settings, max_mde)
    gaps = []
    for r in analysis.flipped:
        if r.get("guard") == "flaky_undecided":
            gaps.append(row_reason(r, settings))
        elif r.get("guard") == "flaky_tolerated":
            warnings.append(row_reason(r, settings))
    if analysis.skipped:
        gaps.append(skipped_reason(analysis.skipped))
    if analysis.one_sided:
        gaps.append(one_sided_reason(analysis.one_sided))
    for gap in reversed(gaps):
        if verdict == "regression":
            warnings.insert(0, gap)
        else:
            if verdict == "pass":
                reasons = []
            verdict = "inconclusive"
            reasons.insert(0, gap)
    tolerated = sum(r.get("guard") == "flaky_tolerated" for r in analysis.flipped)
    if tolerated and verdict == "pass":  # never a quiet pass: counted here, named in warnings
        reasons.append(
            f"{tolerated} flaky critical row(s) failed within their history and do not gate "
            "(named in the warnings)"
        )
    if decision.verdict == "regression":  # what would have made it inconclusive, as notes
        warnings.extend(
            r
            for r in verdict_reasons(cells, [], "inconclusive", settings, max_mde)
            if "underpowered" in r or "error rate" in r
        )
    return Ruling(verdict=verdict, reasons=reasons, cells=cells, warnings=warnings)


def skipped_reason(skipped: list[tuple[str, int, str | None]]) -> str:
    """One reason naming the skipped evaluators, why (grouped), and the way out."""
    by_comment: dict[str, list[str]] = {}
    for name, _n, comment in skipped:
        by_comment.setdefault(comment or "no reason given", []).append(name)
    names = ",".join(name for name, _, _ in skipped)
    causes = "; ".join(f"{', '.join(f'`{n}`' for n in v)}: {k}" for k, v in by_comment.items())
    return (
        f"evaluators skipped, so they vouch for nothing — {causes}. Enable them, or accept "
        f"the gap explicitly with --allow-skipped {names} (or `optional = true` on them in "
        "the dataset's TOML)"
    )


def one_sided_reason(names: list[str]) -> str:
    """One reason naming the candidate's evaluators the baseline did not score, and the way
    out."""
    listed = ", ".join(f"`{n}`" for n in names)
    return (
        f"evaluators scored on the candidate only, so nothing was compared for them — "
        f"{listed}: the baseline did not score them. Compare with a baseline that did "
        f"(--baseline EXP), or accept the gap explicitly with --allow-skipped "
        f"{','.join(names)} on the run (or `optional = true` on them in the dataset's TOML)"
    )
