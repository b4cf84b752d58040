"""The quarterly calibration flow: draw items for human labels, measure whatever labels
have arrived, decide each judge's status (a retired judge stops gating), publish the table
and the HTML report (a link artifact to the file beside the warehouse)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from evalkeeper.calibration import previous_quarter, quarter_bounds
from evalkeeper.models import utcnow
from evalkeeper.settings import Settings
from tasks.calibration import (
    draw_sample,
    judges_to_calibrate,
    measure_and_decide,
    publish_calibration,
    publish_calibration_report,
)


@flow(name="judge-calibration", log_prints=True)
async def judge_calibration(
    judges: list[str] | None = None,
    n: int | None = None,
    since: str | None = None,
    quarter: str | None = None,
    out_dir: str | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Sample each judge's runs since `since` (default: the start of the previous quarter)
    into annotation files, then measure labels of `quarter` (default: each judge version's
    latest quarter with labels), decide, record and publish.

    Returns {"samples": [...], "judges": [...]} (the JSON shape of `calibrate report`), with
    the HTML report written beside the warehouse (`reports`) and `report_failures`."""
    settings = Settings(warehouse=warehouse) if warehouse else Settings()
    start = (
        datetime.fromisoformat(since.replace("Z", "+00:00"))
        if since
        else quarter_bounds(previous_quarter(utcnow()))[0]
    )
    names = await judges_to_calibrate(settings, judges)
    samples = [await draw_sample(settings, judge, n, start, out_dir) for judge in names]
    cals = await measure_and_decide(settings, names, quarter)
    await publish_calibration(cals)
    reports = await publish_calibration_report(settings, cals, quarter)
    logger = get_run_logger()
    for c in cals:
        logger.info("%s: %s (%s)", c.judge, c.status, c.reason)
    return {
        "samples": [s.model_dump(mode="json") for s in samples if s is not None],
        "judges": [c.model_dump(mode="json") for c in cals],
        **reports.as_result(),
    }
