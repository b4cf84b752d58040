"""The monitor flows: `post-deploy-monitor` opens a deploy's window and runs its first tick;
`monitor-tick` (every 15 minutes) advances every open window. A window is data, a tick a
short run: no flow sleeps through a 24-hour window. A rollback whose delivery failed on a
configured channel ends the tick's run Failed (it is retried by the next tick, never
dropped); one decided with no channel configured does not (it is recorded, said once, and
delivered by the first tick that has a channel). Each tick also writes the HTML report of
every window it advanced beside the warehouse and links it as an artifact; a report that
fails is warned and counted (`report_failures`), never a failed run or a changed decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from evalkeeper.errors import EvalkeeperError
from evalkeeper.monitor.tick import TickSummary, require_tick_keys
from evalkeeper.monitor.windows import DeployEvent
from evalkeeper.settings import Settings
from tasks.monitor import open_monitor_window, publish_tick, publish_window_reports, run_tick


class RollbackUndelivered(EvalkeeperError, RuntimeError):
    """A rollback decision's delivery failed on a configured channel in this tick."""


def _settings(warehouse: str | None) -> Settings:
    """The run's settings; a rollback secret or redaction key that cannot be a key fails
    the run at once (`WeakSecret`, naming the variable), before any task (and its retries)."""
    settings = Settings(warehouse=warehouse) if warehouse else Settings()
    require_tick_keys(settings)
    return settings


def _finish(summary: TickSummary) -> dict[str, Any]:
    logger = get_run_logger()
    for problem in summary.problems:
        logger.error(problem)
    # a failed attempt fails the run; a decision with no channel configured, or one that
    # another tick is delivering, does not (it is recorded and said once)
    undelivered = [d for d in summary.deliveries if d.status == "failed"]
    if undelivered:
        raise RollbackUndelivered("; ".join(f"{d.window_id}: {d.problem}" for d in undelivered))
    return summary.model_dump(mode="json")


def _given(value: str | None) -> str | None:
    """An optional value templated by a trigger: an absent one renders as "" or "None"."""
    return None if value in (None, "", "None", "null") else value


@flow(name="post-deploy-monitor", log_prints=True)
async def post_deploy_monitor(
    service: str,
    version: str,
    deploy_id: str,
    time: datetime,
    previous_version: str | None = None,
    environment: str | None = None,
    now: datetime | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Open the deploy's window (idempotent: the same deploy id opens one) and tick it."""
    settings = _settings(warehouse)
    event = DeployEvent(
        service=service,
        version=version,
        deploy_id=deploy_id,
        time=time,
        previous_version=_given(previous_version),
        environment=_given(environment),
    )
    opened = await open_monitor_window(settings, event)
    summary = await run_tick(settings, now, opened.window.window_id)
    await publish_tick(summary)
    reports = await publish_window_reports(settings, summary)
    return {
        "window_id": opened.window.window_id,
        "created": opened.created,
        **_finish(summary),
        **reports.as_result(),
    }


@flow(name="monitor-tick", log_prints=True)
async def monitor_tick(
    now: datetime | None = None, window: str | None = None, warehouse: str | None = None
) -> dict[str, Any]:
    """Advance every open window (or one) as of `now` and deliver pending rollbacks."""
    settings = _settings(warehouse)
    summary = await run_tick(settings, now, window)
    await publish_tick(summary)
    reports = await publish_window_reports(settings, summary)
    return {**_finish(summary), **reports.as_result()}
