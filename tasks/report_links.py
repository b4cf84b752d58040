"""Write an HTML report beside the warehouse and publish a Prefect link artifact to it.

A report is for reading: one that fails to build or write is logged as a warning and
counted by the caller, and never fails the task, the run or the decision it shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import acreate_link_artifact

from evalkeeper.report.html.page import Page


@dataclass
class Reports:
    """What a flow's reports came to: the files written, the reports that failed."""

    written: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def as_result(self) -> dict[str, object]:
        return {"reports": dict(self.written), "report_failures": len(self.failed)}


async def write_and_link(
    reports: Reports,
    ident: str,
    build: Callable[[], Page],
    path: Path,
    *,
    key: str,
    description: str,
) -> None:
    """Build the page and write it to `path` (in a thread), then publish a link artifact
    (`file://` URL) under `key`. A failure is warned and added to `reports.failed`."""
    logger = get_run_logger()
    try:
        written = await asyncio.to_thread(lambda: build().write(path))
    except Exception as exc:  # a report never changes what it reports on
        logger.warning("report %s not written: %s: %s", ident, type(exc).__name__, exc)
        reports.failed.append(f"{ident}: {type(exc).__name__}: {exc}")
        return
    reports.written[ident] = str(written)
    try:
        await acreate_link_artifact(
            link=written.resolve().as_uri(),
            link_text=written.name,
            key=key,
            description=description,
        )
    except Exception as exc:  # the file is there; only its link is missing
        logger.warning("report %s written to %s, its link not published: %s", ident, written, exc)
        reports.failed.append(f"{ident}: link not published: {exc}")
