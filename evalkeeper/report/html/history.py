"""The experiment report's sections read from the warehouse beyond the comparison: the pass
rate per evaluator over the last runs of the same suite and dataset, the rows that flip
between runs, the latency distribution against the budget, judge calls, tokens and cost."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkeeper.report.html.page import Section

if TYPE_CHECKING:
    import duckdb

    from evalkeeper.analysis.models import Comparison
    from evalkeeper.settings import Settings


def history_sections(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings, *, runs: int
) -> list[Section]:
    """Pass rate per evaluator over the last `runs` runs (interval bands, the baseline
    marked), and the rows that flip between runs."""
    return []  # not built yet


def usage_sections(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings
) -> list[Section]:
    """Latency distribution against the p95 budget; judge calls, tokens and cost."""
    return []  # not built yet
