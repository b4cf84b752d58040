"""Tasks of the monitor flows: open a window, tick, publish the decision. Thin wrappers over
`evalkeeper.monitor`; the Prefect event emitter is `tasks.events`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper.errors import InputError
from evalkeeper.monitor.tick import TickSummary, tick
from evalkeeper.monitor.windows import DeployEvent, Opened, open_window
from evalkeeper.settings import Settings
from tasks.events import prefect_emitter
from tasks.suite import artifact_key


@task(name="open-window", cache_policy=NO_CACHE)
async def open_monitor_window(settings: Settings, event: DeployEvent) -> Opened:
    """Open the deploy's window (or get the one a webhook already opened)."""
    return await asyncio.to_thread(open_window, settings, event, "flow")


def retry_unless_input_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed tick unless it failed on the user's input (a key that cannot be one,
    a bad config): the same input fails the same way 30 s later."""
    return not isinstance(getattr(state, "data", None), InputError)


@task(
    name="monitor-tick",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=30,
    retry_condition_fn=retry_unless_input_error,
)
async def run_tick(
    settings: Settings, now: datetime | None = None, window_id: str | None = None
) -> TickSummary:
    """One tick (crash-safe: a retry resumes from the warehouse, counting nothing twice)."""
    return await tick(settings, now=now, window_id=window_id, emitter=prefect_emitter(settings))


@task(name="publish-monitor", cache_policy=NO_CACHE)
async def publish_tick(summary: TickSummary) -> None:
    """Each window's decision and its evidence as Prefect artifacts, and a rollback that
    is not delivered (a failed delivery; a decision with no channel, once)."""
    for w in summary.windows:
        key = artifact_key(f"monitor-{w.service}-{w.window_id}")
        rows: list[dict[str, Any]] = [
            {
                "evaluator": e.evaluator,
                "decision": e.decision,
                "baseline": f"{e.baseline_flags}/{e.baseline_n}",
                "window": f"{e.window_flags}/{e.window_n}",
                "errors": e.window_errors,
                "baseline_rate": e.baseline_rate,
                "upper_bound": e.upper_bound,
                "window_rate": e.window_rate,
                "statistic": e.statistic,
                "threshold": e.threshold,
            }
            for e in w.evaluators
        ]
        await acreate_table_artifact(
            table=rows,
            key=key,
            description=f"{w.service} {w.version}: {w.decision} as of {w.tick_at.isoformat()}",
        )
        if w.decision in ("rollback", "inconclusive"):
            lines = [f"## {w.service} {w.version}: **{w.decision}**", ""]
            lines += [f"- {r}" for r in w.reasons]
            await acreate_markdown_artifact(
                markdown="\n".join(lines) + "\n", key=f"{key}-decision", description=w.decision
            )
    for d in summary.deliveries:  # a failure at every tick; no channel once
        if d.status == "failed" or d.first_notice:
            await acreate_markdown_artifact(
                markdown=f"## rollback of {d.window_id}: **not delivered**\n\n{d.problem}\n",
                key=artifact_key(f"monitor-rollback-{d.window_id}"),
                description=f"rollback {d.status}",
            )
