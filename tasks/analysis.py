"""Tasks that judge an experiment against its baseline and publish the verdict and its
HTML report."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from evalkeeper import analysis as cmp
from evalkeeper.analysis.gate import GateOutcome, decide_gate
from evalkeeper.report.markdown import render_gate
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tasks.report_links import Reports, write_and_link
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


@task(name="experiment-report", cache_policy=NO_CACHE)
async def publish_experiment_report(
    settings: Settings,
    experiment: Any,
    outcome: GateOutcome | None,
    reasons: list[str] | None = None,
) -> dict[str, str | None]:
    """Write the experiment's HTML report beside the warehouse (`default_report_path`) and
    publish a link artifact to it. `outcome` is the gate's decision (None: the run was not
    judged, for `reasons`). Returns {"path", "error"}: a report that cannot be written or
    published is logged and returned as the error, never raised, so the flow keeps its
    verdict and its state."""
    from evalkeeper.report.html import default_report_path
    from evalkeeper.report.html.experiment import build_gate_report, build_unjudged_report

    experiment_id = str(experiment.experiment_id)
    path = default_report_path(settings, "experiment", experiment_id)
    wh = Warehouse.from_settings(settings)

    def build() -> Any:
        if outcome is None:
            return build_unjudged_report(
                wh, experiment_id, settings=settings, reasons=reasons or [], verdict=None
            )
        return build_gate_report(wh, outcome, settings=settings)

    reports = Reports()
    await write_and_link(
        reports,
        experiment_id,
        build,
        path,
        key=artifact_key(f"{experiment.dataset}-{experiment.suite}-report"),
        description=f"HTML report of {experiment_id}"
        + (f": {outcome.verdict}" if outcome is not None else ""),
    )
    written = reports.written.get(experiment_id)
    if reports.failed:  # the report must never cost the flow its verdict
        where = f"written to {written}" if written else f"was not written to {path}"
        return {
            "path": written,
            "error": f"the HTML report of {experiment_id} {where}: "
            + reports.failed[0].split(": ", 1)[1],
        }
    return {"path": written, "error": None}


def report_line(report: dict[str, str | None] | None) -> str:
    """The markdown line naming the HTML report, or saying why there is none."""
    if not report:
        return ""
    if report.get("error"):
        return f"\n> **Warning:** {report['error']}\n"
    return f"\nHTML report: `{report['path']}`\n"


@task(name="publish-verdict", cache_policy=NO_CACHE)
async def publish_verdict(
    outcome: GateOutcome, report: dict[str, str | None] | None = None
) -> None:
    """The verdict as a markdown artifact (with the line naming its HTML report, or the
    warning that it could not be written) and the cells as a table artifact."""
    c = outcome.comparison
    key = artifact_key(
        f"{c.dataset}-{c.suite}" if c is not None else outcome.experiment_id.rsplit("-", 1)[0]
    )
    await acreate_markdown_artifact(
        markdown=render_gate(outcome) + report_line(report),
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
    if c.corrected_rates:  # each judge pass rate beside its judge-corrected rate
        await acreate_table_artifact(
            table=[
                r.model_dump(exclude={"experiment_id", "calibration_id"}) for r in c.corrected_rates
            ],
            key=f"{key}-corrected",
            description="judge-corrected pass rates (a level is biased by a judge's errors; "
            "a paired difference of the same judge is not)",
        )
