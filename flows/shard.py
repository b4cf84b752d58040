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
import time
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

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
    """Each shard as a child flow run of `settings.runner.shard_deployment`: every run is
    created, one after another, before the parent waits for any (so the workers start
    them together), then one request every `shard_poll_s` asks for all the runs not yet
    ended. A run that
    fails, crashes or does not end within `shard_timeout_s` of its creation (its worker was
    killed) is marked crashed and submitted again, `shard_attempts` runs at most."""
    check_shard_runs(settings)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
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

    async def submit(shard: int, attempt: int) -> _Pending:
        run = await run_deployment(  # type: ignore[misc]
            name,
            parameters={**parameters, "shard": shard},
            flow_run_name=f"{exp.experiment_id}-shard-{shard}-of-{shards}-{attempt}",
            timeout=0,  # created, not waited for: the loop below waits for all
            as_subflow=True,
        )
        return _Pending(shard, attempt, run.id, str(run.name), time.monotonic())

    # one after another: created at once, their writes locked each other out of a SQLite
    # server (503, then the client's back-off of seconds), so they reached the workers late
    pending = [await submit(k, 1) for k in range(shards)]
    done: dict[int, dict[str, Any]] = {}
    ended: dict[int, list[str]] = {k: [] for k in range(shards)}
    async with get_client() as client:
        while pending:
            await asyncio.sleep(runner.shard_poll_s)
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[p.id for p in pending])),
                limit=len(pending),
            )
            states = {r.id: r.state for r in runs}
            waiting: list[_Pending] = []
            again: list[tuple[int, int]] = []
            for p in pending:
                state = states.get(p.id)
                if state is not None and state.is_completed():
                    done[p.shard] = {"shard": p.shard, "flow_run": p.name, "attempts": p.attempt}
                    continue
                if state is None or not state.is_final():
                    if time.monotonic() - p.created < runner.shard_timeout_s:
                        waiting.append(p)
                        continue
                    message = f"no end within {runner.shard_timeout_s:g}s: counted lost"
                    await client.set_flow_run_state(p.id, Crashed(message=message), force=True)
                    ended[p.shard].append(f"{p.name}: {message}")
                else:
                    ended[p.shard].append(
                        f"{p.name}: {state.type.value} {state.message or ''}".strip()
                    )
                if p.attempt >= runner.shard_attempts:
                    raise ShardLost(
                        f"shard {p.shard + 1}/{shards} of {exp.experiment_id}: "
                        f"{len(ended[p.shard])} flow runs of {name} ended without completing "
                        f"({'; '.join(ended[p.shard])}); its committed rows are kept in the "
                        "results location: run the experiment again to complete it"
                    )
                logger.warning(
                    "shard %d/%d: %s; submitting it again", p.shard + 1, shards, ended[p.shard][-1]
                )
                again.append((p.shard, p.attempt + 1))
            pending = waiting + [await submit(*a) for a in again]
    return [done[k] for k in range(shards)]


class _Pending(NamedTuple):
    """A shard's flow run the parent waits for."""

    shard: int
    attempt: int
    id: UUID
    name: str
    created: float  # time.monotonic() at its creation
