"""The nightly flow: run the full or smoke suite, record it, publish the summary."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from evalkeeper.models import Suite
from evalkeeper.settings import Settings
from tasks.suite import (
    finish_experiment,
    prepare_experiment,
    publish_summary,
    run_shard,
    shard_count,
)


@flow(name="nightly", log_prints=True)
def nightly(
    suite: Suite = "full",
    dataset: str = "appointments",
    target: str = "evalkeeper.demo_agent:v1",
    evaluators: list[str] | None = None,
    experiment: str | None = None,
    repetitions: int = 1,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Run `suite` of `dataset` against `target`; scores land in the warehouse."""
    logger = get_run_logger()
    settings = Settings(**({"warehouse": warehouse} if warehouse else {}))
    exp = prepare_experiment(settings, dataset, suite, target, evaluators, experiment, repetitions)
    shards = shard_count(exp.n_examples * exp.repetitions)
    for shard in range(shards):  # sequential: each shard already runs examples concurrently
        stats = run_shard(settings, exp, shard, shards)
        logger.info("shard %d/%d: %s", shard + 1, shards, stats)
    summary = finish_experiment(settings, exp)
    publish_summary(summary)
    return summary.model_dump(mode="json")
