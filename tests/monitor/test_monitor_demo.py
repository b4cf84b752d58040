"""The demo's monitoring act on a small traffic directory of its own shape."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from evalkeeper.demo.monitor import monitoring_act
from evalkeeper.settings import Settings
from tests.monitor.conftest import DEPLOY
from tests.monitor.monitor_traffic import traffic


def test_the_monitoring_act_shows_the_deploy_its_window_and_the_decision_hour(
    tmp_path: Path, mon_settings: Settings
) -> None:
    directory = tmp_path / "traffic"
    traffic(directory / "a.jsonl", version="v1", start=DEPLOY - timedelta(days=1), hours=24,
            per_hour=40, slow_rate=0.05, seed=21)  # fmt: skip
    traffic(directory / "b.jsonl", version="v2", start=DEPLOY, hours=6, per_hour=100,
            slow_rate=0.6, seed=22)  # fmt: skip
    (directory / "deploys.json").write_text(
        json.dumps([{"version": "v2", "previous": "v1", "time": "2026-11-30T12:00:00Z"}])
    )
    out = io.StringIO()
    last = asyncio.run(monitoring_act(mon_settings, Console(file=out, width=200), directory))
    assert last is not None and last.decision == "rollback"
    text = out.getvalue()
    assert "scheduler v2 deployed 2026-11-30T12:00:00Z" in text
    assert f"decision: rollback at {last.tick_at.isoformat().replace('+00:00', 'Z')}" in text


def test_without_sample_traffic_the_act_says_so(tmp_path: Path, mon_settings: Settings) -> None:
    out = io.StringIO()
    assert asyncio.run(monitoring_act(mon_settings, Console(file=out), tmp_path / "none")) is None
    assert "monitoring act skipped" in out.getvalue()
