"""Comparisons in the warehouse: one batch of rows per comparison (`comparisons` table)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import polars as pl

from evalkeeper.warehouse.store import Warehouse
from evalkeeper.warehouse.tables import table_frame

if TYPE_CHECKING:
    from evalkeeper.analysis.models import Comparison

VERDICT_KEY = "__verdict__"


def comparison_frame(c: Comparison) -> pl.DataFrame:
    """The rows `save_comparison` writes: verdict, one per cell, one per row regression."""
    common = {
        "comparison_id": c.comparison_id,
        "experiment_id": c.experiment_id,
        "baseline_id": c.baseline_id,
        "suite": c.suite,
        "dataset": c.dataset,
        "created_at": c.created_at,
    }
    rows: list[dict[str, Any]] = [
        {
            **common,
            "kind": "verdict",
            "evaluator": VERDICT_KEY,
            "category": VERDICT_KEY,
            "example_id": "",
            "verdict": c.verdict,
            "n_examples": c.n_shared_examples,
            "errors_baseline": c.errors_baseline,
            "errors_candidate": c.errors_candidate,
            "details": json.dumps(
                c.model_dump(mode="json", exclude={"cells", "row_regressions"}),
                sort_keys=True,
            ),
        }
    ]
    for x in c.cells:
        rows.append(
            {
                **common,
                "kind": "cell",
                "evaluator": x.evaluator,
                "category": x.category,
                "example_id": "",
                "verdict": x.status,
                "metric": x.metric,
                "n_examples": x.n_examples,
                "baseline_rate": x.baseline.mean,
                "baseline_ci_low": x.baseline.ci_low,
                "baseline_ci_high": x.baseline.ci_high,
                "candidate_rate": x.candidate.mean,
                "candidate_ci_low": x.candidate.ci_low,
                "candidate_ci_high": x.candidate.ci_high,
                "diff": x.diff,
                "diff_ci_low": x.diff_ci_low,
                "diff_ci_high": x.diff_ci_high,
                "test": x.test,
                "p_value": x.p_value,
                "p_adjusted": x.p_adjusted,
                "mde": x.mde,
                "errors_baseline": x.errors_baseline,
                "errors_candidate": x.errors_candidate,
                "details": x.model_dump_json(),
            }
        )
    for r in c.row_regressions:
        rows.append(
            {
                **common,
                "kind": "row",
                "evaluator": r.evaluator,
                "category": r.category,
                "example_id": r.example_id,
                "incident_id": r.incident_id,
                # a flaky row the guard did not gate on: `flaky` (tolerated) or
                # `inconclusive` (too few repetitions to judge it)
                "verdict": {"flaky_tolerated": "flaky", "flaky_undecided": "inconclusive"}.get(
                    r.guard, "regression"
                ),
                "metric": "pass_rate",
                "n_examples": 1,
                "baseline_rate": r.baseline_pass_rate,
                "candidate_rate": r.candidate_pass_rate,
                "diff": r.candidate_pass_rate - r.baseline_pass_rate,
                "baseline_output": r.baseline_output,
                "candidate_output": r.candidate_output,
                "details": r.model_dump_json(),
            }
        )
    return table_frame("comparisons", rows)


def save_comparison(warehouse: Warehouse, c: Comparison) -> str:
    """Store the comparison (verdict row, cells, row regressions) in one batch, folded into
    the file (a comparison ends a unit of work, as an experiment's last write does)."""
    return warehouse.write({"comparisons": comparison_frame(c)}, checkpoint=True)
