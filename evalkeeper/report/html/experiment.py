"""The report of one experiment against its baseline (`evalkeeper report EXP`).

It shows what `compare` decided and why: the verdict and its reasons, the paired
differences per evaluator and category, the incident rows that failed, then the history
and the cost sections (`history`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkeeper.report.html.history import history_sections, usage_sections
from evalkeeper.report.html.page import Page

if TYPE_CHECKING:
    from evalkeeper.analysis.models import Comparison
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse

HISTORY_RUNS = 20
"""Runs of the same suite and dataset the history section shows by default."""


def build_experiment_report(
    warehouse: Warehouse,
    experiment_id: str,
    *,
    settings: Settings,
    baseline: str = "auto",
    comparison: Comparison | None = None,
    history_runs: int = HISTORY_RUNS,
) -> Page:
    """The page for `experiment_id`: `comparison` when the caller has one (a flow that just
    compared), else `compare(warehouse, experiment_id, baseline)`."""
    if comparison is None:
        from evalkeeper.analysis import compare

        comparison = compare(warehouse, experiment_id, baseline, settings)
    page = Page(
        title=f"experiment {experiment_id}",
        verdict=comparison.verdict,
        summary=comparison.reasons,
        facts=[("experiment", experiment_id), ("baseline", comparison.baseline_id)],
    )
    with warehouse.reading() as con:
        page.sections += history_sections(con, comparison, settings, runs=history_runs)
        page.sections += usage_sections(con, comparison, settings)
    return page
