"""Tasks of the monitor flows: open a window, tick, publish the decision. Thin wrappers over
`evalkeeper.monitor`; the Prefect event emitter is `tasks.events`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import Any

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper.errors import InputError
from evalkeeper.monitor.tick import TickSummary, tick
from evalkeeper.monitor.windows import DeployEvent, Opened, open_window
from evalkeeper.report.html import default_report_path
from evalkeeper.report.html.window import build_window_report
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tasks.events import prefect_emitter
from tasks.report_links import Reports, write_and_link
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


@task(name="window-reports", cache_policy=NO_CACHE)
async def publish_window_reports(settings: Settings, summary: TickSummary) -> Reports:
    """The HTML report of every window this tick advanced or delivered a rollback for,
    beside the warehouse (`reports/window-WIN.html`), each linked as an artifact next to
    the window's table. Written at every tick, not only at the decision: the on-call sees
    the e-value near its threshold before it is crossed, for about a second per window
    (docs/reports-window-calibration.md). A report that fails is warned and counted."""
    reports = Reports()
    wh = Warehouse.from_settings(settings)
    ticked_now = {w.window_id: w for w in summary.windows}
    ids = [w.window_id for w in summary.windows] + [d.window_id for d in summary.deliveries]
    for window_id in dict.fromkeys(ids):
        ticked = ticked_now.get(window_id)
        about = f"{ticked.service} {ticked.version}: {ticked.decision}" if ticked else "rollback"
        await write_and_link(
            reports,
            window_id,
            partial(build_window_report, wh, window_id, settings=settings),
            default_report_path(settings, "window", window_id),
            key=artifact_key(f"monitor-report-{window_id}"),
            description=f"window report: {about}",
        )
    return reports
