"""The nightly flow: run the full or smoke suite, record it, judge it against its baseline,
publish the summary and the verdict."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from evalkeeper.models import Suite
from evalkeeper.settings import Settings
from tasks.analysis import compare_with_baseline, publish_verdict
from tasks.suite import (
    finish_experiment,
    prepare_experiment,
    publish_summary,
    run_shard,
    shard_count,
)


def run_suite_tasks(
    settings: Settings,
    *,
    suite: Suite,
    dataset: str,
    target: str,
    evaluators: list[str] | None,
    experiment: str | None,
    repetitions: int,
) -> Any:
    """prepare -> a few shards -> finish -> publish; returns the summary."""
    logger = get_run_logger()
    exp = prepare_experiment(settings, dataset, suite, target, evaluators, experiment, repetitions)
    shards = shard_count(exp.n_examples * exp.repetitions)
    for shard in range(shards):  # sequential: each shard already runs examples concurrently
        stats = run_shard(settings, exp, shard, shards)
        logger.info("shard %d/%d: %s", shard + 1, shards, stats)
    summary = finish_experiment(settings, exp)
    publish_summary(summary)
    return summary


@flow(name="nightly", log_prints=True)
def nightly(
    suite: Suite = "full",
    dataset: str = "appointments",
    target: str = "evalkeeper.demo_agent:v1",
    evaluators: list[str] | None = None,
    experiment: str | None = None,
    repetitions: int = 1,
    baseline: str = "auto",
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Run `suite` of `dataset` against `target`, then compare with `baseline`.

    Returns the summary and, when a baseline exists, the comparison (`verdict`)."""
    settings = Settings(**({"warehouse": warehouse} if warehouse else {}))
    summary = run_suite_tasks(
        settings,
        suite=suite,
        dataset=dataset,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        repetitions=repetitions,
    )
    result: dict[str, Any] = summary.model_dump(mode="json")
    comparison = compare_with_baseline(settings, summary.experiment.experiment_id, baseline)
    if comparison is not None:
        publish_verdict(comparison)
        result["comparison"] = comparison.model_dump(mode="json")
    return result
