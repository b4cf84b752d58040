"""The gate's decision, once, for the CLI and the gate flow alike: compare the candidate
with its baseline and turn what was found into a verdict and an exit code. A gate that
cannot decide (no baseline, nothing shared, the warehouse locked) says inconclusive, with
the cause, and never pass."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from evalkeeper.analysis.baseline import baseline_ref
from evalkeeper.analysis.compare import compare
from evalkeeper.analysis.models import CompareError, Comparison
from evalkeeper.exitcodes import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION
from evalkeeper.models import ErrorGroup
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, WarehouseLocked, save_comparison


class GateOutcome(BaseModel):
    """What the gate decided, and why."""

    experiment_id: str
    verdict: Literal["pass", "regression", "inconclusive"]
    exit_code: int = Field(description="0 pass, 1 regression, 2 inconclusive (configurable).")
    reasons: list[str]
    comparison: Comparison | None = Field(None, description="None when none could be made.")
    error_groups: list[ErrorGroup] = Field(default_factory=list)
    run_problems: list[str] = Field(
        default_factory=list, description="Error shares of the candidate run above the limit."
    )


def exit_code(verdict: str, settings: Settings) -> int:
    if verdict == "pass":
        return EXIT_OK
    if verdict == "regression":
        return EXIT_REGRESSION
    return EXIT_ERROR if settings.analysis.inconclusive_fails else EXIT_OK


def decide_gate(
    warehouse: Warehouse,
    experiment_id: str,
    baseline: str,
    settings: Settings,
    run_problems: list[str] | None = None,
    error_groups: list[ErrorGroup] | None = None,
) -> GateOutcome:
    """Compare `experiment_id` with `baseline` (a branch or an experiment id), store the
    comparison, and decide. `run_problems` (the candidate run's failed error shares) make a
    pass inconclusive."""
    problems = list(run_problems or [])
    try:
        against, cmp_settings = baseline_ref(warehouse, baseline, settings)
        c = compare(warehouse, experiment_id, against, cmp_settings)
        save_comparison(warehouse, c)
    except (CompareError, WarehouseLocked) as exc:
        return GateOutcome(
            experiment_id=experiment_id,
            verdict="inconclusive",
            exit_code=exit_code("inconclusive", settings),
            reasons=[str(exc), *problems],
            error_groups=error_groups or [],
            run_problems=problems,
        )
    verdict = c.verdict
    reasons = list(c.reasons)
    if problems and verdict == "pass":
        verdict, reasons = "inconclusive", []
    reasons += [p for p in problems if p not in reasons]
    return GateOutcome(
        experiment_id=experiment_id,
        verdict=verdict,
        exit_code=exit_code(verdict, settings),
        reasons=reasons,
        comparison=c,
        error_groups=c.error_groups or error_groups or [],
        run_problems=problems,
    )
