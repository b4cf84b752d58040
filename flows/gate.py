"""The gate flow: run a suite on a change and judge it against the baseline (for CI)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from evalkeeper.models import Suite
from evalkeeper.settings import Settings
from flows.nightly import raise_if_failed, run_suite_tasks, verdict_state
from tasks.analysis import gate_decision, publish_experiment_report, publish_verdict, report_line


@flow(name="gate", log_prints=True)
async def gate(
    target: str,
    suite: Suite = "smoke",
    dataset: str = "appointments",
    baseline: str = "main",
    evaluators: list[str] | None = None,
    experiment: str | None = None,
    warehouse: str | None = None,
    allow_skipped: list[str] | None = None,
    shards: int | None = None,
) -> dict[str, Any] | State[Any]:
    """`baseline` is a branch (its latest run that can be a baseline) or an experiment id.

    Returns {"verdict", "exit_code", "reasons", "markdown", "comparison", "report"}: the same
    decision as `evalkeeper gate` (no baseline is `inconclusive`, with the reason); `report`
    is {"path", "error"}, the HTML report written beside the warehouse and linked as an
    artifact (a report that cannot be written is a warning in the markdown, never a change
    of verdict or state). A pass ends the
    run Completed; an inconclusive or regression verdict ends it in a Failed-type state
    named Inconclusive or Regression, with its event (`flows.nightly.verdict_state`: a
    caller gets `VerdictInconclusive` or `VerdictRegression` raised, with this result). A
    candidate run with too many errors ends the flow run Failed, after the verdict is
    published. `shards` as for `nightly` (default EVALKEEPER_SHARDS)."""
    from evalkeeper.report.markdown import render_gate

    settings = Settings(warehouse=warehouse) if warehouse else Settings()
    summary = await run_suite_tasks(
        settings,
        suite=suite,
        dataset=dataset,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        repetitions=None,
        allow_skipped=allow_skipped,
        shards=shards,
    )
    outcome = await gate_decision(settings, summary, baseline)
    report = await publish_experiment_report(settings, summary.experiment, outcome)
    await publish_verdict(outcome, report)
    raise_if_failed(summary, outcome.verdict)
    result = {
        "verdict": outcome.verdict,
        "exit_code": outcome.exit_code,
        "reasons": outcome.reasons,
        "markdown": render_gate(outcome) + report_line(report),
        "report": report,
        "comparison": None
        if outcome.comparison is None
        else outcome.comparison.model_dump(mode="json"),
    }
    return verdict_state("gate", outcome.verdict, result, summary.experiment, settings) or result
