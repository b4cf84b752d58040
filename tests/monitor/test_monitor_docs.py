"""The monitoring queries of docs/warehouse.md run against a warehouse holding a window that
rolled back."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.conftest import DEPLOY, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic

DOC = Path(__file__).resolve().parents[2] / "docs" / "warehouse.md"
QUERIES = re.findall(r"```sql monitor\n(.*?)```", DOC.read_text(), re.S)


def test_the_monitoring_queries_run_on_a_rolled_back_window(
    mon_settings: Settings, traces_file: Path, receiver: Receiver
) -> None:
    assert len(QUERIES) == 3
    traffic(traces_file, version="v2", start=DEPLOY, hours=4, per_hour=100, slow_rate=0.6, seed=2)
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id="d-docs", time=DEPLOY
    )
    open_window(mon_settings, event, "cli")
    for hours in (1, 2, 3, 4):
        asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=hours)))
    wh = Warehouse.from_settings(mon_settings)
    windows, timeline, speed = (wh.query(q) for q in QUERIES)
    (row,) = windows.iter_rows(named=True)
    assert row["decision"] == "rollback" and row["rollback_delivered"] is True
    assert set(timeline["evaluator"]) == {"latency_ok", "tool_error"}
    assert timeline["decision"].to_list().count("rollback") >= 1
    assert speed.row(0, named=True)["rollbacks"] == 1
    assert 0 < speed.row(0, named=True)["mean_hours_to_decision"] <= 4
    assert len(receiver.calls) == 1
