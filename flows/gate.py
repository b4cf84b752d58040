"""The gate flow: run a suite on a change and judge it against the baseline (for CI)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from evalkeeper.models import Suite
from evalkeeper.settings import Settings
from flows.nightly import run_suite_tasks
from tasks.analysis import compare_with_baseline, publish_verdict


@flow(name="gate", log_prints=True)
def gate(
    target: str,
    suite: Suite = "smoke",
    dataset: str = "appointments",
    baseline: str = "main",
    evaluators: list[str] | None = None,
    experiment: str | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """`baseline` is a branch (its latest completed, non-regressed run) or an experiment id.

    Returns {"verdict", "markdown", "comparison"}; the verdict is "error" when there is no
    baseline to compare with."""
    from evalkeeper import analysis as cmp
    from evalkeeper.report import render_markdown
    from evalkeeper.run import warehouse_for

    settings = Settings(**({"warehouse": warehouse} if warehouse else {}))
    against, settings = cmp.baseline_ref(warehouse_for(settings), baseline, settings)
    summary = run_suite_tasks(
        settings,
        suite=suite,
        dataset=dataset,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        repetitions=1,
    )
    comparison = compare_with_baseline(settings, summary.experiment.experiment_id, against)
    if comparison is None:
        return {"verdict": "error", "markdown": f"no baseline on {baseline}", "comparison": None}
    publish_verdict(comparison)
    return {
        "verdict": comparison.verdict,
        "markdown": render_markdown(comparison),
        "comparison": comparison.model_dump(mode="json"),
    }
