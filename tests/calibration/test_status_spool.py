"""Calibration statuses are written through the spool while an analyst's read-only
connection holds the warehouse (issue 17, item 10), and read back from it meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from evalkeeper.calibration import record, status_history
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import retired_judges
from tests.calibration.test_status import cal
from tests.helpers import analyst_holding


def test_a_status_change_is_spooled_read_back_and_ingested_once(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb", lock_wait_s=0.5)
    t = [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 4, 7)]
    record(wh, [cal(0.95)], now=t[0])
    with analyst_holding(wh.path) as analyst:
        # before: `record` refused the spool (spool_ok=False) and raised WarehouseLocked
        assert [c.status for c in record(wh, [cal(0.70)], now=t[1])] == ["retired"]
        assert len(wh.spooled_batches()) == 1
        # read back while the analyst still holds the file: the spooled status counts
        with wh.reading() as con:
            assert "j is retired" in retired_judges(con)["j"]
        (again,) = record(wh, [cal(0.97)], now=t[2])  # decided on the spooled status
        assert again.status == "retired" and "new version" in again.reason
        assert [h.status for h in status_history(wh, "j")] == ["healthy", "retired"]
        assert analyst.poll() is None
    assert wh.ingest_spool() == 2
    assert wh.rows("SELECT status FROM judges") == [("retired",)]
    assert [h.status for h in status_history(wh, "j")] == ["healthy", "retired"]
    assert wh.rows("SELECT count(*) FROM judge_calibrations") == [(3,)]
