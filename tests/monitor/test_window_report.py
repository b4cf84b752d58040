"""`evalkeeper report --window WIN`: a real window ticked to its rollback, the report written
by the CLI and opened in headless Chromium; every number shown is the warehouse's."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window
from evalkeeper.settings import Settings
from evalkeeper.traces.model import iso_utc
from tests.monitor.conftest import DEPLOY, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic
from tests.report.browser import open_report

runner = CliRunner()


def ticked_window(settings: Settings, traces_file: Path, *, deploy_id: str = "d-report") -> str:
    """A v2 deploy that slowed the service down, ticked every 20 minutes until it decides (the
    group-sequential test's first analysis waits for 15 expected flags: 300 traces at 5%,
    5 hours of this traffic)."""
    traffic(traces_file, version="v2", start=DEPLOY, hours=7, per_hour=60, slow_rate=0.13, seed=7)
    event = DeployEvent(
        service=SERVICE,
        version="v2",
        previous_version="v1",
        deploy_id=deploy_id,
        time=DEPLOY,
        environment="prod",
    )
    window_id = open_window(settings, event, "cli").window.window_id
    for step in range(1, 22):
        summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(minutes=20 * step)))
        if not summary.windows or summary.windows[0].state == "closed":
            break
    return window_id


def stored(settings: Settings, sql: str, *params: Any) -> list[dict[str, Any]]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def write_report(settings: Settings, window_id: str, out: Path) -> str:
    result = runner.invoke(
        app,
        [
            "report",
            "--window",
            window_id,
            "--out",
            str(out),
            "--warehouse",
            str(settings.warehouse),
        ],
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def symbols(opened: Any, chart: str) -> int:
    """The points (Vega symbol marks, not the legend's) of a chart."""
    return int(
        opened.page.evaluate(
            "(n) => document.querySelectorAll(`figure[data-chart='${n}'] g.mark-symbol.role-mark > path`)"
            ".length",
            chart,
        )
    )


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def test_the_window_report_shows_the_ticks_the_statistic_the_decision_and_its_delivery(
    mon_settings: Settings, traces_file: Path, receiver: Receiver, tmp_path: Path
) -> None:
    window_id = ticked_window(mon_settings, traces_file)
    out = tmp_path / "window.html"
    assert str(out) in write_report(mon_settings, window_id, out)

    ticks = stored(
        mon_settings,
        "SELECT * FROM monitor_ticks WHERE window_id = ? ORDER BY tick_at, evaluator",
        window_id,
    )
    (rollback,) = stored(
        mon_settings, "SELECT * FROM monitoring_rollbacks WHERE window_id = ?", window_id
    )
    deliveries = stored(
        mon_settings, "SELECT * FROM monitoring_deliveries WHERE window_id = ?", window_id
    )
    assert len({t["tick_at"] for t in ticks}) >= 3 and len(receiver.delivered) == 1
    assert [d["ok"] for d in deliveries] == [True]

    with open_report(out) as opened:
        assert opened.console_errors == [] and opened.page_errors == []
        assert opened.requests_out == []
        assert opened.page.query_selector('[data-verdict="rollback"]') is not None
        # one point per tick per evaluator where the window had traces; one statistic per
        # tick where the test ran; a boundary (the group-sequential test's) where it analysed
        assert symbols(opened, "flag-rate") == sum(t["window_rate"] is not None for t in ticks)
        assert symbols(opened, "statistic") == sum(t["statistic"] is not None for t in ticks)
        assert symbols(opened, "statistic") >= 2
        decided = [t for t in ticks if t["decision"] == "rollback"]
        assert decided and decided[0]["evaluator"] == "latency_ok"
        # latency_ok: decided by the group-sequential test (no bound U), or by the fast path
        # (the mixture test beside it, with its bound U); either way by its own threshold
        fast = "(fast path: the mixture test" in decided[0]["reason"]
        assert fast == (decided[0]["upper_bound"] is not None)
        assert decided[0]["statistic"] >= decided[0]["threshold"]
        rows = opened.table("ticks")
        assert len(rows) == len(ticks)
        for row, t in zip(rows, ticks, strict=True):
            assert row[0] == iso_utc(t["tick_at"]) and row[2] == t["evaluator"]
            assert row[3] == str(t["window_flags"])
            assert row[4] == str(t["window_traces"] - t["window_errors"])
            assert row[6] == pct(t["window_rate"])
            assert row[7] == str(t["baseline_flags"])
            assert row[9] == pct(t["upper_bound"])
            # tolerance 0: the rate tested is U (mixture) or the baseline's rate (spending)
            tested = t["upper_bound"] if t["upper_bound"] is not None else t["baseline_rate"]
            assert row[10] == pct(tested)
            assert row[12] == ("—" if t["threshold"] is None else f"{t['threshold']:.2f}")
            assert row[11] == ("—" if t["statistic"] is None else f"{t['statistic']:.2f}")
            assert row[13] == t["decision"]
        text = opened.text()
        decided = iso_utc(rollback["decided_at"])
        delivered = iso_utc(deliveries[0]["attempted_at"])
        line = f"rollback decided at {decided} on {rollback['evaluator']}; delivered on http"
        assert f"{line} at {delivered}" in text
        assert opened.table("deliveries") == [["http", "1", delivered, "yes", "200", "—"]]
        for label in ("service", "version", "previous version", "deploy id", "environment"):
            assert label in text
        assert "deploy id\nd-report" in text and "previous version\nv1" in text
    assert opened.screenshot is not None and opened.screenshot.stat().st_size > 10_000


def test_an_undelivered_rollback_reads_not_delivered_with_its_cause(
    mon_settings: Settings, traces_file: Path, tmp_path: Path
) -> None:
    quiet = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"rollback_url": None})}
    )
    window_id = ticked_window(quiet, traces_file, deploy_id="d-nowhere")
    out = tmp_path / "window.html"
    write_report(quiet, window_id, out)
    with open_report(out) as opened:
        text = opened.text()
        assert "NOT DELIVERED: no rollback channel is configured" in text
        (row,) = opened.table("deliveries")
        assert row[0] == "none" and row[3] == "NO"
        assert opened.console_errors == [] and opened.requests_out == []


def test_an_unknown_window_is_one_line_naming_how_to_list_them(mon_settings: Settings) -> None:
    result = runner.invoke(
        app, ["report", "--window", "win-nope", "--warehouse", str(mon_settings.warehouse)]
    )
    assert result.exit_code == 2
    said = (result.stdout + result.stderr).strip()
    assert "unknown window 'win-nope'" in said and "evalkeeper monitor status" in said
    assert len(said.splitlines()) == 1 and "Traceback" not in said


def test_a_window_not_ticked_yet_says_so(mon_settings: Settings, tmp_path: Path) -> None:
    event = DeployEvent(service=SERVICE, version="v2", deploy_id="d-fresh", time=DEPLOY)
    window_id = open_window(mon_settings, event, "cli").window.window_id
    out = tmp_path / "fresh.html"
    write_report(mon_settings, window_id, out)
    page = out.read_text()
    assert 'data-verdict="continue"' in page and "no verdict yet" in page
    assert "no tick yet" in page and "<figure" not in page
