"""One shard of a suite as its own flow run (`suite-shard`), and the parent's side: one run
of the `suite-shard` deployment per shard, on its work pool's workers, waited for and
submitted again when one fails or is lost.

A shard run never opens the warehouse: it gets the experiment as a value, reads its
examples from the dataset file and what is stored from the snapshot its parent published
in the results location, and writes its rows there (`evalkeeper.warehouse.results`); the
parent, the warehouse's one writer, ingests them once every shard has ended. A shard run
submitted twice (a retry, or a run counted lost that still finished) leaves every row
once: the ingest is keyed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from evalkeeper.errors import EvalkeeperError, InputError
from evalkeeper.models import Experiment
from evalkeeper.settings import Settings
from tasks.suite import run_shard

SHARD_FLOW = "suite-shard"


class ShardRunsNeedResults(InputError):
    """Shards as flow runs were asked for (EVALKEEPER_SHARD_DEPLOYMENT) without a results
    location for their rows."""


class ShardLost(EvalkeeperError, RuntimeError):
    """A shard's flow runs all failed, crashed or never ended; the message names them."""


@flow(name=SHARD_FLOW, log_prints=True)
async def suite_shard(
    experiment: dict[str, Any],
    shard: int,
    shards: int,
    results_url: str,
    datasets_dir: str | None = None,
) -> dict[str, Any]:
    """Run shard `shard` of `shards` of `experiment` (as `Experiment.model_dump`), writing
    its rows to `results_url`; the worker's environment gives the rest (the results
    endpoint and credentials, the runner's limits)."""
    settings = Settings()
    update: dict[str, Any] = {"results": settings.results.model_copy(update={"url": results_url})}
    if datasets_dir:
        update["datasets_dir"] = Path(datasets_dir)
    settings = settings.model_copy(update=update)
    exp = Experiment.model_validate(experiment)
    return await run_shard(settings, exp, shard, shards)


def check_shard_runs(settings: Settings) -> None:
    """Shard flow runs need a results location: refuse them without one, before anything
    is recorded."""
    if settings.runner.shard_deployment and not settings.results.url:
        raise ShardRunsNeedResults(
            f"EVALKEEPER_SHARD_DEPLOYMENT={settings.runner.shard_deployment}: shards on other "
            "workers need a results location for their rows; set EVALKEEPER_RESULTS_URL to a "
            "shared directory or s3://bucket/prefix (docs/scale.md)"
        )


async def run_shard_flow_runs(
    settings: Settings, exp: Experiment, shards: int
) -> list[dict[str, Any]]:
    """Each shard as a child flow run of `settings.runner.shard_deployment`, all at once;
    a run that fails, crashes or does not end within `shard_timeout_s` (its worker was
    killed) is marked crashed and submitted again, `shard_attempts` runs at most."""
    check_shard_runs(settings)
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed

    logger = get_run_logger()
    runner = settings.runner
    name = str(runner.shard_deployment)
    parameters = {
        "experiment": exp.model_dump(mode="json"),
        "shards": shards,
        "results_url": settings.results.url,
        "datasets_dir": str(settings.datasets_dir.resolve()),
    }

    async def one(shard: int) -> dict[str, Any]:
        ended = []
        for attempt in range(1, runner.shard_attempts + 1):
            run = await run_deployment(  # type: ignore[misc]
                name,
                parameters={**parameters, "shard": shard},
                flow_run_name=f"{exp.experiment_id}-shard-{shard}-of-{shards}-{attempt}",
                timeout=runner.shard_timeout_s,
                poll_interval=runner.shard_poll_s,
                as_subflow=True,
            )
            state = run.state
            if state is not None and state.is_completed():
                return {"shard": shard, "flow_run": run.name, "attempts": attempt}
            if state is None or not state.is_final():
                message = f"no end within {runner.shard_timeout_s:g}s: counted lost"
                async with get_client() as client:
                    await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                ended.append(f"{run.name}: {message}")
            else:
                ended.append(f"{run.name}: {state.type.value} {state.message or ''}".strip())
            logger.warning("shard %d/%d: %s; submitting it again", shard + 1, shards, ended[-1])
        raise ShardLost(
            f"shard {shard + 1}/{shards} of {exp.experiment_id}: {len(ended)} flow runs of "
            f"{name} ended without completing ({'; '.join(ended)}); its committed rows are "
            "kept in the results location: run the experiment again to complete it"
        )

    return list(await asyncio.gather(*(one(k) for k in range(shards))))
