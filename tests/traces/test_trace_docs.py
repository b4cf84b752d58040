"""The trace queries of docs/warehouse.md run against a warehouse holding ingested traces."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from evalkeeper.settings import Settings
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.sources import JsonlSource
from evalkeeper.warehouse import Warehouse
from tests.traces.trace_lines import append, line, redact_emails

DOC = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"
QUERIES = re.findall(r"```sql traces\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def traced(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "app.jsonl"
    rows = [
        line(
            i,
            error="timeout" if i % 4 == 0 else None,  # v2 (even i) only: 0, 4, 8, 12, 16
            feedback={"score": 0 if i == 3 else 1, "comment": None},
        )
        for i in range(20)
    ]
    append(path, "".join(rows))
    asyncio.run(ingest(settings, JsonlSource(path), redact=redact_emails))
    return settings


def test_there_are_two_trace_queries() -> None:
    assert len(QUERIES) == 2


def test_the_error_rate_query_counts_per_version(traced: Settings) -> None:
    frame = Warehouse.from_settings(traced).query(QUERIES[0])
    rows = {r["version"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {"v1", "v2"}
    assert rows["v2"]["traces"] == 10 and rows["v2"]["error_rate"] == 0.5
    assert rows["v1"]["error_rate"] == 0.0 and rows["v1"]["thumbs_down"] == 0.1
    assert rows["v2"]["thumbs_down"] == 0.0 and rows["v1"]["p95_ms"] == 118.1  # 101..119, odd


def test_the_tools_query_unnests_tool_names(traced: Settings) -> None:
    frame = Warehouse.from_settings(traced).query(QUERIES[1])
    assert frame.rows() == [("v1", "book_slot", 10, 0), ("v2", "book_slot", 10, 5)]
