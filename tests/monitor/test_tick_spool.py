"""A tick while an analyst's read-only connection holds the warehouse (issue 17, item
10): the window's scores, tick, counts and new state go to the spool, a second tick reads
them back from there (nothing is scored twice), and the next writer ingests them once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, load_window, open_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.helpers import analyst_holding
from tests.monitor.conftest import DEPLOY
from tests.monitor.monitor_traffic import SERVICE, traffic


def test_a_tick_under_an_analysts_connection_is_spooled_and_ingested_once(
    mon_settings: Settings,
) -> None:
    settings = mon_settings.model_copy(update={"lock_wait_s": 1.0})
    settings.monitor.monitors_dir.mkdir(parents=True, exist_ok=True)
    (settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(
        'min_baseline = 10\nmin_window = 10\n\n[[evaluators]]\nname = "latency_ok"\n'
    )
    path = Path(str(settings.monitor.traces).removeprefix("jsonl:"))
    traffic(path, version="v2", start=DEPLOY, hours=4, per_hour=40, slow_rate=0.05,
            seed=7)  # fmt: skip
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id="d-spool", time=DEPLOY
    )
    window_id = open_window(settings, event, "cli").window.window_id
    first = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=2))).windows[0]
    wh = Warehouse.from_settings(settings)

    with analyst_holding(wh.path) as analyst:
        # before: the tick's write refused the spool and the tick raised WarehouseLocked
        held = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=4), deliver=False))
        (w,) = held.windows
        # every v2 trace of the 4 hours: scored by the first tick or by this one
        assert first.new_window_traces + w.new_window_traces == 160 and w.new_window_traces
        spooled = [b for b in wh.spooled_batches() if (b / "monitoring_ticks.parquet").exists()]
        assert len(spooled) == 1
        # read back from the spool while the analyst still holds the file
        assert load_window(settings, window_id).last_tick_at == DEPLOY + timedelta(hours=4)
        again = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=4), deliver=False))
        assert (again.windows[0].new_window_traces, again.windows[0].new_baseline_traces) == (0, 0)
        assert again.windows[0].evaluators[0].window_n == w.evaluators[0].window_n
        assert analyst.poll() is None

    assert wh.ingest_spool() >= 2
    assert wh.rows(
        "SELECT count(*), count(DISTINCT (trace_id, evaluator)) FROM monitoring_scores "
        "WHERE window_id = ?",
        [window_id],
    ) == [(first.new_window_traces + first.new_baseline_traces + w.new_window_traces,) * 2]
    assert wh.rows(
        "SELECT tick_at - ?, new_window_traces FROM monitoring_ticks WHERE window_id = ? "
        "ORDER BY tick_at",
        [DEPLOY, window_id],
    ) == [(timedelta(hours=2), first.new_window_traces), (timedelta(hours=4), 0)]
    # the +4 h tick: the second one (nothing new) replaced the first, as its key says
    assert load_window(settings, window_id).last_tick_at == DEPLOY + timedelta(hours=4)
