"""Tasks that judge an experiment against its baseline and publish the verdict."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper import analysis as cmp
from evalkeeper.analysis.gate import GateOutcome, decide_gate
from evalkeeper.report.markdown import render_gate
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tasks.suite import artifact_key


@task(name="find-baseline", cache_policy=NO_CACHE)
async def baseline_exists(settings: Settings, experiment_id: str, baseline: str = "auto") -> bool:
    """Whether `baseline` ("auto", a branch or an experiment id) names a usable baseline;
    a first run on a branch has none (it may become the baseline)."""
    wh = Warehouse.from_settings(settings)
    against, branch_settings = cmp.baseline_ref(wh, baseline, settings)
    if against != "auto":
        return True
    found = cmp.find_baseline(
        wh, experiment_id, branch_settings.analysis.baseline_branch, branch_settings
    )
    if found is None:
        get_run_logger().warning(
            "no baseline on %s for %s yet (`evalkeeper experiments` says why earlier runs "
            "cannot be one): this run may become the baseline",
            branch_settings.analysis.baseline_branch,
            experiment_id,
        )
    return found is not None


@task(name="gate-decision", cache_policy=NO_CACHE)
async def gate_decision(settings: Settings, summary: Any, baseline: str) -> GateOutcome:
    """The gate's verdict (the same decision as `evalkeeper gate`)."""
    return await asyncio.to_thread(
        decide_gate,
        Warehouse.from_settings(settings),
        summary.experiment.experiment_id,
        baseline,
        settings,
        summary.problems,
        summary.error_groups,
    )


@task(name="publish-verdict", cache_policy=NO_CACHE)
async def publish_verdict(outcome: GateOutcome) -> None:
    c = outcome.comparison
    key = artifact_key(
        f"{c.dataset}-{c.suite}" if c is not None else outcome.experiment_id.rsplit("-", 1)[0]
    )
    await acreate_markdown_artifact(
        markdown=render_gate(outcome),
        key=f"{key}-verdict",
        description=f"{outcome.verdict}: {outcome.experiment_id}"
        + (f" vs {c.baseline_id}" if c is not None else ""),
    )
    if c is None:
        return
    table: list[dict[str, Any]] = [
        {
            "evaluator": cell.evaluator,
            "category": cell.category,
            "status": cell.status,
            "n": cell.n_examples,
            "baseline": cell.baseline.mean,
            "candidate": cell.candidate.mean,
            "diff": cell.diff,
            "p_adjusted": cell.p_adjusted,
            "mde": cell.mde,
        }
        for cell in c.cells
    ]
    await acreate_table_artifact(table=table, key=f"{key}-cells", description="cells vs baseline")
