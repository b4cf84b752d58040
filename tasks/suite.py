"""Tasks that run a suite: prepare, run a shard, finish, publish.

A suite is split into a few shards, never one task per example: a task run costs Prefect
7-12 ms and the local server records only ~15-20 task runs a second. The tasks are async:
they await the core in the flow's event loop.
"""

from __future__ import annotations

import math
from typing import Any

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper import run as core
from evalkeeper.models import Experiment, Suite
from evalkeeper.settings import Settings
from evalkeeper.warehouse.results import ResultsLocation

MAX_SHARDS = 8
EXAMPLES_PER_SHARD = 2000


def shard_count(n_rows: int) -> int:
    return max(1, min(MAX_SHARDS, math.ceil(n_rows / EXAMPLES_PER_SHARD)))


@task(name="prepare-experiment", cache_policy=NO_CACHE)
async def prepare_experiment(
    settings: Settings,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: list[str] | None,
    experiment_id: str | None,
    repetitions: int | None,
    allow_skipped: list[str] | None = None,
) -> Experiment:
    return await core.prepare(
        settings,
        dataset=dataset,
        suite=suite,
        target=target,
        evaluators=evaluators,
        experiment_id=experiment_id,
        repetitions=repetitions,
        allow_skipped=allow_skipped,
    )


@task(name="run-shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def run_shard(
    settings: Settings, experiment: Experiment, shard: int, shards: int
) -> dict[str, Any]:
    """Run the missing rows of one shard; a retry resumes where the failed attempt stopped.
    With a results location (EVALKEEPER_RESULTS_URL) the shard writes its rows there and
    never opens the warehouse (`publish_results_state` before, `ingest_results` after)."""
    result = await core.run_shard(
        settings,
        experiment,
        shard=shard,
        shards=shards,
        results=ResultsLocation.from_settings(settings),
    )
    return {
        "shard": shard,
        "rows": result.rows,
        "target_errors": result.target_errors,
        "retried": result.retried,
        "rescored": result.rescored,
        "already_done": result.skipped_existing,
        "spooled_batches": result.spooled_batches,
        "wall_s": round(result.wall_s, 3),
    }


@task(name="publish-results-state", cache_policy=NO_CACHE)
async def publish_results_state(settings: Settings, experiment: Experiment) -> int | None:
    """Before shards that write to a results location: ingest what earlier shards of the
    experiment left there, and publish its stored rows for their resume (None without a
    results location)."""
    results = ResultsLocation.from_settings(settings)
    if results is None:
        return None
    return await core.publish_stored(settings, experiment, results)


@task(name="ingest-results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
async def ingest_results(settings: Settings, experiment: Experiment) -> dict[str, Any] | None:
    """After the shards: their batches from the results location into the warehouse (the
    flow is its one writer); None without a results location."""
    results = ResultsLocation.from_settings(settings)
    if results is None:
        return None
    report = await core.ingest_results(settings, experiment, results)
    return {
        "batches": report.batches,
        "incomplete_batches": report.incomplete,
        "spooled": report.spooled,
        "rows": report.rows,
        "seconds": round(report.seconds, 3),
    }


@task(name="finish-experiment", cache_policy=NO_CACHE)
async def finish_experiment(settings: Settings, experiment: Experiment) -> core.Summary:
    return await core.finish(settings, experiment)


def artifact_key(text: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:100]


@task(name="publish-summary", cache_policy=NO_CACHE)
async def publish_summary(summary: core.Summary) -> None:
    exp = summary.experiment
    key = artifact_key(f"{exp.dataset}-{exp.suite}-summary")
    await acreate_table_artifact(
        key=key,
        table=[
            {
                "evaluator": e.evaluator,
                "version": e.version,
                "n": e.n,
                "passed": e.passed,
                "failed": e.failed,
                "errors": e.errors,
                "skipped": e.skipped,
                "optional": e.optional,
                "pass_rate": None if e.pass_rate is None else round(e.pass_rate, 4),
                "mean_value": None if e.mean_value is None else round(e.mean_value, 4),
            }
            for e in summary.evaluators
        ],
        description=(
            f"Experiment `{exp.experiment_id}`: suite {exp.suite}, dataset {exp.dataset} "
            f"@{exp.dataset_version}, target {exp.target.spec} "
            f"({exp.target.agent_version or '-'}, {exp.target.model or '-'}), "
            f"commit {exp.target.git_commit or '-'}; {summary.rows} rows, "
            f"{summary.target_errors} target errors"
            + (f"; FAILED: {'; '.join(summary.problems)}" if summary.problems else "")
        ),
    )
    if summary.error_groups:
        lines = [
            f"## Errors of `{exp.experiment_id}` by cause",
            "",
            *[f"- **{p}**" for p in summary.problems],
            "",
            "| where | error | rows | e.g. example |",
            "|---|---|---:|---|",
            *[
                f"| `{g.where}` | {g.error.replace('|', '/')} | {g.count} | `{g.example_id}` |"
                for g in summary.error_groups
            ],
        ]
        await acreate_markdown_artifact(
            key=f"{key}-errors",
            markdown="\n".join(lines) + "\n",
            description=f"{sum(g.count for g in summary.error_groups)} errors",
        )
