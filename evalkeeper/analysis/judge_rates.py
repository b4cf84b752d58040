"""Judge-corrected pass rates of a comparison's cells: every raw pass rate an LLM judge
produced, beside the rate corrected for that judge version's measured errors.

Pure: cells and the facts `evalkeeper.warehouse.judge_errors.load_judge_errors` read in,
`CorrectedRate` rows out. The statistics (Rogan-Gladen, the delta-method interval, when a
judge is uninformative) are `evalkeeper.analysis.corrected`'s.

For each pass-rate cell of an evaluator that an LLM judge scored (its rows carry a
`judge_model`), on each side: the judge version (prompt version and model pin) that scored
that side's rows is looked up among the latest calibrations. The side's status is

* ``corrected``: the corrected rate and its 95% interval, carrying the run's sampling
  error (the cell's cluster-robust SE by example when examples repeat, else its CLT SE)
  and the calibration's (binomial error of the true-pass and true-fail rates);
* ``uninformative``: the judge's J = TPR + TNR - 1 has a 95% lower bound at or below
  ``settings.analysis.corrected_min_j``: its scores carry almost no information, and no
  corrected number is given;
* ``uncalibrated``: no calibration of that version, a calibration with fewer labelled items
  than the minimum (it was measured `uncalibrated`), one without human-pass or human-fail
  items, or rows scored by several judge versions: no corrected number either.

A category cell uses the judge's overall calibration (its errors are assumed the same in
every category).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from evalkeeper.analysis.corrected import JudgeErrors, corrected_rate

if TYPE_CHECKING:
    from evalkeeper.analysis.models import Cell, SideEstimate
    from evalkeeper.warehouse.judge_errors import JudgeErrorFacts

Correction = Literal["corrected", "uninformative", "uncalibrated"]


class CorrectedRate(BaseModel):
    """One side of one judge's pass-rate cell: the raw rate and the judge-corrected rate."""

    evaluator: str = Field(description="The judge (evaluator) name.")
    category: str = Field(description="The cell's category (`__all__`: every category).")
    side: Literal["baseline", "candidate"]
    experiment_id: str
    prompt_version: str | None = Field(description="The judge version that scored the rows.")
    judge_model: str | None = Field(description="... and its model pin.")
    n_rows: int = Field(description="Scored rows behind the raw rate.")
    raw: float | None = Field(description="The raw pass rate (the judge's verdicts).")
    raw_se: float | None = Field(
        description="Its SE: cluster-robust by example when examples repeat, else CLT."
    )
    status: Correction
    reason: str = Field(description="Why uninformative or uncalibrated, in words.")
    corrected: float | None = Field(
        None, description="Rogan-Gladen estimate of the true pass rate, clipped to [0, 1]."
    )
    ci_low: float | None = Field(
        None, description="95% delta-method interval (run + calibration error)."
    )
    ci_high: float | None = None
    se: float | None = Field(None, description="Delta-method SE of the corrected rate.")
    se_sampling: float | None = Field(None, description="The run's part of that SE.")
    se_calibration: float | None = Field(None, description="The calibration's part of it.")
    true_pass_rate: float | None = Field(None, description="TPR from the calibration.")
    true_fail_rate: float | None = Field(None, description="TNR from the calibration.")
    n_human_pass: int | None = Field(None, description="Items humans passed (TPR's base).")
    n_human_fail: int | None = Field(None, description="Items humans failed (TNR's base).")
    youden_j: float | None = Field(None, description="J = TPR + TNR - 1.")
    youden_j_ci_low: float | None = Field(None, description="J's 95% lower bound.")
    quarter: str | None = Field(None, description="Quarter of the calibration's labels.")
    calibration_id: str | None = None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def correct_side(
    cell: Cell,
    side: Literal["baseline", "candidate"],
    experiment_id: str,
    facts: JudgeErrorFacts,
    *,
    min_j: float,
) -> CorrectedRate | None:
    """The corrected rate of one side of `cell` (None when no LLM judge scored it)."""
    versions = facts.versions.get((experiment_id, cell.evaluator))
    if not versions or cell.metric != "pass_rate":
        return None
    est: SideEstimate = cell.candidate if side == "candidate" else cell.baseline
    se = est.se_cluster if est.se_cluster is not None else est.se
    base = CorrectedRate(
        evaluator=cell.evaluator,
        category=cell.category,
        side=side,
        experiment_id=experiment_id,
        prompt_version=versions[0][0] if len(versions) == 1 else None,
        judge_model=versions[0][1] if len(versions) == 1 else None,
        n_rows=est.n_rows,
        raw=est.mean,
        raw_se=se,
        status="uncalibrated",
        reason="",
    )
    if len(versions) > 1:
        listed = ", ".join(f"prompt {v}, model {m}" for v, m in versions)
        return base.model_copy(
            update={"reason": f"rows scored by several judge versions ({listed}): not corrected"}
        )
    version, model = versions[0]
    cal = facts.calibrations.get((cell.evaluator, version, model))
    if cal is None:
        return base.model_copy(
            update={
                "reason": f"no calibration of this version (prompt {version}, model {model}): "
                "label a sample (`evalkeeper calibrate sample`) and record it"
            }
        )
    where = {"quarter": cal.quarter, "calibration_id": cal.calibration_id}
    errors = JudgeErrors(n_pass=cal.n_pass, tp=cal.tp, n_fail=cal.n_fail, tn=cal.tn)
    if cal.status == "uncalibrated" or not errors.complete:
        why = (
            f"calibration {cal.quarter} has {cal.n_items} labelled items, fewer than the minimum"
            if cal.status == "uncalibrated"
            else f"calibration {cal.quarter} has {cal.n_pass} human-pass and {cal.n_fail} "
            "human-fail items: both kinds are needed"
        )
        return base.model_copy(update={"reason": why + ": label more items", **where})
    counts = {
        "true_pass_rate": errors.tpr,
        "true_fail_rate": errors.tnr,
        "n_human_pass": errors.n_pass,
        "n_human_fail": errors.n_fail,
        "youden_j": errors.j,
        "youden_j_ci_low": _finite(errors.j_interval()[0]),
        **where,
    }
    if est.mean is None or se is None:
        return base.model_copy(update={"reason": "no scored rows on this side", **counts})
    c = corrected_rate(est.mean, se, errors, min_j=min_j)
    if not c.informative:
        return base.model_copy(
            update={
                "status": "uninformative",
                "reason": f"J = TPR + TNR - 1 = {c.j:.2f} (95% lower bound {c.j_ci_low:.2f}, at "
                f"or below {min_j:g}): its scores carry almost no information",
                **counts,
            }
        )
    return base.model_copy(
        update={
            "status": "corrected",
            "corrected": c.estimate,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "se": c.se,
            "se_sampling": math.sqrt(c.var_sampling),
            "se_calibration": math.sqrt(c.var_calibration),
            **counts,
        }
    )


def correct_cells(
    cells: list[Cell],
    experiment_id: str,
    baseline_id: str,
    facts: JudgeErrorFacts,
    *,
    min_j: float,
) -> list[CorrectedRate]:
    """Every judge pass-rate cell's corrected rates, baseline then candidate, in cell order."""
    out: list[CorrectedRate] = []
    for cell in cells:
        for side, eid in (("baseline", baseline_id), ("candidate", experiment_id)):
            r = correct_side(cell, side, eid, facts, min_j=min_j)  # type: ignore[arg-type]
            if r is not None:
                out.append(r)
    return out


def same_judge_note(rates: list[CorrectedRate]) -> str | None:
    """A warning when a judge's two sides were scored by different versions: then a
    constant judge error no longer cancels in the paired difference."""
    by_ev: dict[str, set[tuple[str | None, str | None]]] = {}
    for r in rates:
        if r.category == "__all__":
            by_ev.setdefault(r.evaluator, set()).add((r.prompt_version, r.judge_model))
    changed = sorted(ev for ev, vs in by_ev.items() if len(vs) > 1)
    if not changed:
        return None
    return (
        f"{', '.join(changed)}: the two runs were scored by different judge versions, so the "
        "judge's errors need not cancel in the paired difference; compare the corrected rates"
    )
