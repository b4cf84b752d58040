"""Tasks of the calibration flow: thin wrappers over `evalkeeper.calibration`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper import calibration as cal
from evalkeeper.models import utcnow
from evalkeeper.report.calibration import calibration_markdown, summary_rows
from evalkeeper.report.html import default_report_path
from evalkeeper.report.html.calibration import build_calibration_report
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tasks.events import emit_judge_retired
from tasks.report_links import Reports, write_and_link


def _choices() -> dict[str, tuple[str, ...]]:
    from evaluators.judges import JUDGES

    return {name: tuple(j.choices) for name, j in JUDGES.items()}


@task(name="calibration-judges", cache_policy=NO_CACHE)
async def judges_to_calibrate(settings: Settings, judges: list[str] | None) -> list[str]:
    if judges:
        return judges
    return await asyncio.to_thread(cal.judges_with_runs, Warehouse.from_settings(settings))


@task(name="draw-sample", cache_policy=NO_CACHE)
async def draw_sample(
    settings: Settings,
    judge: str,
    n: int | None,
    since: datetime | None,
    out_dir: str | None,
) -> cal.SampleResult | None:
    """Draw items and write the annotation files; None (with a warning) when there is
    nothing new to draw."""
    try:
        return await asyncio.to_thread(
            cal.sample_items,
            Warehouse.from_settings(settings),
            settings,
            judge,
            n=n,
            since=since,
            out_dir=Path(out_dir) if out_dir else None,
            choices=_choices().get(judge, ("pass", "fail")),
        )
    except cal.SampleError as exc:
        get_run_logger().warning("no sample for %s: %s", judge, exc)
        return None


@task(name="measure-and-decide", cache_policy=NO_CACHE)
async def measure_and_decide(
    settings: Settings, judges: list[str], quarter: str | None
) -> list[cal.JudgeCalibration]:
    """Measure every judge version with labels, decide and record the statuses; emit
    `evalkeeper.judge.retired` for each version this calibration retired."""

    def run() -> tuple[list[cal.JudgeCalibration], list[cal.StatusChange]]:
        wh = Warehouse.from_settings(settings)
        measured = [
            c
            for judge in judges
            for c in cal.measure(wh, settings, judge=judge, quarter=quarter, choices=_choices())
        ]
        started = utcnow()
        recorded = cal.record(wh, measured, now=started)
        return recorded, cal.retired_since(wh, started) if recorded else []

    recorded, retired = await asyncio.to_thread(run)
    measured = {(c.judge, c.version, c.model): c.quarter for c in recorded}
    for change in retired:
        get_run_logger().warning("judge %s RETIRED: %s", change.judge, change.reason)
        key = (change.judge, change.prompt_version, change.judge_model)
        emit_judge_retired(change, settings, quarter, measured.get(key))
    return recorded


@task(name="publish-calibration", cache_policy=NO_CACHE)
async def publish_calibration(cals: list[cal.JudgeCalibration]) -> None:
    await acreate_markdown_artifact(
        markdown=calibration_markdown(cals),
        key="judge-calibration",
        description="; ".join(f"{c.judge}: {c.status}" for c in cals) or "nothing measured",
    )
    table: list[dict[str, Any]] = list(summary_rows(cals))
    if table:
        await acreate_table_artifact(
            table=table, key="judge-calibration-table", description="one row per judge version"
        )


@task(name="calibration-report", cache_policy=NO_CACHE)
async def publish_calibration_report(
    settings: Settings, cals: list[cal.JudgeCalibration], quarter: str | None
) -> Reports:
    """The HTML calibration report of these measurements beside the warehouse
    (`reports/calibration-QUARTER.html`, `-latest` without a quarter), linked as an
    artifact next to the markdown table. A report that fails is warned and counted."""
    reports = Reports()
    ident = quarter or "latest"
    await write_and_link(
        reports,
        f"calibration-{ident}",
        partial(
            build_calibration_report,
            Warehouse.from_settings(settings),
            settings=settings,
            quarter=quarter,
            calibrations=cals,
        ),
        default_report_path(settings, "calibration", ident),
        key="judge-calibration-report",
        description="; ".join(f"{c.judge}: {c.status}" for c in cals) or "nothing measured",
    )
    return reports
