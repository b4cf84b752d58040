"""The nightly flow: run the full or smoke suite, record it, judge it against its baseline,
publish the summary, the verdict and its HTML report (a link artifact to the file beside
the warehouse; a report that cannot be written is a warning, never a change of verdict or
state). A run whose error shares are above the limit ends in a
Failed state (every row kept), so the Prefect UI shows it red and notifications fire.

A run whose verdict is not pass ends in a Failed-type state named after the verdict,
**Inconclusive** or **Regression** (`verdict_state`; the gate flow ends the same way), not
Completed: Prefect colours a run by its state's type, so a Completed state is green whatever
its name, and nothing would alert. Of the types that are not green, Failed is the one whose
meaning fits (the run could not vouch for the change, or found it worse); Crashed means the
infrastructure broke, Cancelled that someone stopped it. Prefect's own state-change event is
then `prefect.flow-run.Inconclusive` or `prefect.flow-run.Regression`, and the flow also
emits `evalkeeper.verdict.inconclusive` or `evalkeeper.verdict.regression`
(`tasks.events.emit_verdict`: resource `evalkeeper.experiment.<id>`, payload: the flow, the
verdict, the experiment, its baseline, suite, dataset and the reasons), which automations
can act on. The state carries a `VerdictInconclusive` or `VerdictRegression` exception
(both `VerdictNotPass`) holding the flow's result, so a caller of the flow function gets it
raised, with the result (`exc.result`). A pass ends Completed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed, State

from evalkeeper.errors import EvalkeeperError
from evalkeeper.models import Suite
from evalkeeper.settings import Settings
from flows.shard import check_shard_runs, run_shard_flow_runs
from tasks.analysis import (
    baseline_exists,
    gate_decision,
    publish_experiment_report,
    publish_verdict,
)
from tasks.events import emit_verdict
from tasks.suite import (
    finish_experiment,
    ingest_results,
    prepare_experiment,
    publish_results_state,
    publish_summary,
    run_shard,
    shard_count,
)


class RunFailed(EvalkeeperError, RuntimeError):
    """The suite ran and every row is stored, but too many rows errored (the message says
    where and why); raised at the end of a flow so that its run ends Failed."""


class VerdictNotPass(EvalkeeperError, RuntimeError):
    """The run's verdict is not pass: the data of its Failed-type state named after the
    verdict (raised to a caller of the flow function); `result` is the flow's result."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with its result (result storage)
        return (type(self), (str(self), self.result))


class VerdictInconclusive(VerdictNotPass):
    """The verdict is inconclusive: the run ends in a Failed-type state named Inconclusive."""


class VerdictRegression(VerdictNotPass):
    """The verdict is regression: the run ends in a Failed-type state named Regression."""


_NOT_PASS: dict[str, tuple[str, type[VerdictNotPass]]] = {
    "inconclusive": ("Inconclusive", VerdictInconclusive),
    "regression": ("Regression", VerdictRegression),
}


def verdict_state(
    flow_name: str,
    verdict: str | None,
    result: dict[str, Any],
    experiment: Any,
    settings: Settings | None = None,
) -> State[Any] | None:
    """For a verdict that is not pass, emit its event (`INCONCLUSIVE_EVENT` or
    `REGRESSION_EVENT`) and return the state that ends the run: Failed-type, named
    Inconclusive or Regression, its message the first reason. None for pass (or no verdict):
    the run ends Completed with `result`. `experiment` is the run's `Experiment`; with
    `settings`, the event names the experiment's report path."""
    if verdict not in _NOT_PASS:
        return None
    name, error = _NOT_PASS[verdict]
    experiment_id = str(experiment.experiment_id)
    reasons = [str(r) for r in result.get("reasons") or []]
    comparison = result.get("comparison") or {}
    message = f"verdict {verdict} for experiment {experiment_id}" + (
        f": {reasons[0]}" if reasons else ""
    )
    emit_verdict(
        verdict,
        experiment_id,
        {
            "flow": flow_name,
            "verdict": verdict,
            "experiment_id": experiment_id,
            "baseline_id": comparison.get("baseline_id"),
            "suite": experiment.suite,
            "dataset": experiment.dataset,
            "reasons": reasons,
        },
        settings,
    )
    return Failed(name=name, message=message, data=error(message, result))


async def run_suite_tasks(
    settings: Settings,
    *,
    suite: Suite,
    dataset: str,
    target: str,
    evaluators: list[str] | None,
    experiment: str | None,
    repetitions: int | None,
    allow_skipped: list[str] | None = None,
    shards: int | None = None,
) -> Any:
    """prepare -> a few shards -> finish -> publish; returns the summary.

    `shards` None: EVALKEEPER_SHARDS, or one per 2,000 rows (at most 8). With
    EVALKEEPER_SHARD_DEPLOYMENT each shard is a child flow run of that deployment, on its
    work pool (`flows.shard`); otherwise they run here, one after another."""
    check_shard_runs(settings)
    logger = get_run_logger()
    exp = await prepare_experiment(
        settings, dataset, suite, target, evaluators, experiment, repetitions, allow_skipped
    )
    count = shards or settings.runner.shards or shard_count(exp.n_examples * exp.repetitions)
    await publish_results_state(settings, exp)  # with EVALKEEPER_RESULTS_URL only
    if settings.runner.shard_deployment:
        for stats in await run_shard_flow_runs(settings, exp, count):
            logger.info("shard %d/%d: %s", stats["shard"] + 1, count, stats)
    for shard in range(0 if settings.runner.shard_deployment else count):
        # sequential: each shard already runs examples concurrently
        stats = await run_shard(settings, exp, shard, count)
        logger.info("shard %d/%d: %s", shard + 1, count, stats)
    ingested = await ingest_results(settings, exp)
    if ingested is not None:
        logger.info("results ingested: %s", ingested)
    summary = await finish_experiment(settings, exp)
    await publish_summary(summary)
    for group in summary.error_groups[:10]:
        logger.warning(
            "%d error(s) at %s: %s (e.g. example %s)",
            group.count,
            group.where,
            group.error,
            group.example_id,
        )
    return summary


def raise_if_failed(summary: Any, verdict: str | None = None) -> None:
    if summary.problems:
        raise RunFailed(
            f"experiment {summary.experiment.experiment_id} failed"
            + (f" (verdict {verdict})" if verdict else "")
            + f": {'; '.join(summary.problems)}. Every row is kept; fix the cause and run "
            f"again with experiment={summary.experiment.experiment_id} to retry the failed rows"
        )


@flow(name="nightly", log_prints=True)
async def nightly(
    suite: Suite = "full",
    dataset: str = "appointments",
    target: str = "evalkeeper.demo.agent:v1",
    evaluators: list[str] | None = None,
    experiment: str | None = None,
    repetitions: int | None = None,
    baseline: str = "auto",
    warehouse: str | None = None,
    allow_skipped: list[str] | None = None,
    upload: bool | None = None,
    datasets_dir: str | None = None,
    shards: int | None = None,
) -> dict[str, Any] | State[Any]:
    """Run `suite` of `dataset` against `target`, then compare with `baseline`.

    Returns the summary, `report` ({"path", "error"}: the HTML report written beside the
    warehouse and linked as an artifact, or why it could not be) and, when a baseline
    exists, the comparison (`verdict`); an
    inconclusive or regression verdict ends the run in a Failed-type state named
    Inconclusive or Regression instead (`verdict_state`: a caller gets `VerdictInconclusive`
    or `VerdictRegression` raised, with the result).
    `allow_skipped` names evaluators that may be skipped (judges without an endpoint).
    `upload` (default EVALKEEPER_LANGSMITH_UPLOAD) also records the experiment in
    LangSmith; a failed upload ends the run Failed after everything else is done.
    `datasets_dir` (default EVALKEEPER_DATASETS_DIR) is where `dataset` is read from.
    `shards` (default EVALKEEPER_SHARDS; 0 or unset: one per 2,000 rows, at most 8) splits
    the suite; with EVALKEEPER_SHARD_DEPLOYMENT each shard is a flow run on a work pool."""
    settings = Settings(warehouse=warehouse) if warehouse else Settings()
    if datasets_dir:
        settings = settings.model_copy(update={"datasets_dir": Path(datasets_dir)})
    summary = await run_suite_tasks(
        settings,
        suite=suite,
        dataset=dataset,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        repetitions=repetitions,
        allow_skipped=allow_skipped,
        shards=shards,
    )
    result: dict[str, Any] = summary.model_dump(mode="json")
    verdict = None
    outcome = None
    if await baseline_exists(settings, summary.experiment.experiment_id, baseline):
        outcome = await gate_decision(settings, summary, baseline)
        verdict = outcome.verdict
        if outcome.comparison is not None:
            result["comparison"] = outcome.comparison.model_dump(mode="json")
        result["verdict"] = outcome.verdict
        result["reasons"] = outcome.reasons
    upload_error = None
    if settings.langsmith.upload if upload is None else upload:
        from tasks.langsmith import LangSmithError, upload_experiment

        try:
            result["langsmith"] = await upload_experiment(
                settings, summary.experiment.experiment_id
            )
        except LangSmithError as exc:
            get_run_logger().error("%s", exc)
            upload_error = exc
    # after the upload, so that the report links the LangSmith experiment
    result["report"] = await publish_experiment_report(
        settings,
        summary.experiment,
        outcome,
        [f"not judged: no baseline for {summary.experiment.experiment_id} yet ({baseline}); "
         "this run may become the baseline"],
    )  # fmt: skip
    if outcome is not None:
        await publish_verdict(outcome, result["report"])
    raise_if_failed(summary, verdict)
    if upload_error is not None:
        raise upload_error
    return verdict_state("nightly", verdict, result, summary.experiment, settings) or result
