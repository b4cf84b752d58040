"""`evalkeeper monitor backtest` on recorded traffic, through the real CLI and trace source."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace, iso_utc
from evalkeeper.traces.sampling import sampled
from tests.monitor.traffic import DEPLOY, write_traffic

runner = CliRunner()


def backtest(settings: Settings, path: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    out = runner.invoke(
        app,
        ["monitor", "backtest", "--traces", f"jsonl:{path}", "--service", "agent",
         "--deploy-at", iso_utc(DEPLOY), "--baseline-hours", "48",
         "--warehouse", str(settings.warehouse), *args],
        env=env,
    )  # fmt: skip
    return out


def test_a_rise_after_the_deploy_rolls_back_on_tool_error(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.12)
    out = backtest(settings, path, "--format", "json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["decision"] == "rollback"
    assert data["evaluator"] == "tool_error"
    assert data["baseline_traces"] == 48 * 200
    decided = datetime.fromisoformat(data["decided_at"])
    assert DEPLOY < decided < DEPLOY + timedelta(hours=24)
    # the window's traces are those before the deciding tick, and the replay stopped there
    assert data["window_traces"] == int((decided - DEPLOY).total_seconds() / 18)
    assert data["timeline"][-1]["at"] == data["decided_at"]
    assert [t["decision"] for t in data["timeline"][:-1]] == ["continue"] * (
        len(data["timeline"]) - 1
    )
    last = {e["evaluator"]: e for e in data["timeline"][-1]["evaluators"]}
    assert last["latency_ok"]["decision"] == "continue"
    assert last["tool_error"]["statistic"] >= last["tool_error"]["threshold"]


def test_unchanged_traffic_is_stable_at_the_window_end(settings: Settings, tmp_path: Path) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05, seed=2)
    out = backtest(settings, path, "--format", "json", "--tick-minutes", "60")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["decision"] == "stable"
    assert data["decided_at"] == iso_utc(DEPLOY + timedelta(hours=24))
    assert data["evaluator"] is None
    assert data["window_traces"] == 24 * 200
    assert len(data["timeline"]) == 24


def test_the_table_shows_the_timeline_and_the_decision(settings: Settings, tmp_path: Path) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.12)
    out = backtest(settings, path, "--evaluators", "tool_error")
    assert out.exit_code == 0, out.output
    assert "decision rollback at 2026-11-30T" in out.stdout
    assert "by tool_error" in out.stdout
    assert "tool_error: rollback: window" in out.stdout
    assert "latency_ok" not in out.stdout
    assert iso_utc(DEPLOY + timedelta(minutes=15)) in out.stdout  # the first tick's row


def test_a_recording_that_ends_early_gives_no_final_decision(
    settings: Settings, tmp_path: Path
) -> None:
    # seed 2: seed 1's unchanged traffic reads 28/350 = 8% flags in its first 1.75 hours, a
    # 1-in-100 draw that the default (spending) test's first analysis calls a rollback
    path = write_traffic(
        tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05, hours_after=6, seed=2
    )
    data = json.loads(backtest(settings, path, "--format", "json").stdout)
    assert data["decision"] == "continue" and data["decided_at"] is None
    assert any("no final decision" in n for n in data["notes"])


def test_too_small_a_baseline_is_inconclusive_from_the_first_tick(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05)
    out = backtest(settings, path, "--format", "json", "--min-baseline", "20000")
    data = json.loads(out.stdout)
    assert data["timeline"][0]["decision"] == "inconclusive"
    assert data["decision"] == "inconclusive" and data["evaluator"] == "latency_ok"
    assert "too few baseline traces: 9600 scored, min_baseline is 20000" in data["reasons"][0]


def test_sampling_keeps_the_traces_the_live_monitor_would(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05)
    key = "test-key-0123456789"
    out = backtest(
        settings, path, "--format", "json", "--sample-rate", "0.3",
        env={"EVALKEEPER_REDACTION_KEY": key},
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    traces = [Trace.from_json_line(line) for line in path.read_text().splitlines()]
    expected = sum(1 for t in traces if t.time < DEPLOY and sampled(t.trace_id, 0.3, key.encode()))
    assert json.loads(out.stdout)["baseline_traces"] == expected
    assert 0.25 * 9600 < expected < 0.35 * 9600


def test_bad_lines_are_counted_and_shown(settings: Settings, tmp_path: Path) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05)
    with path.open("a") as f:
        f.write('{"trace_id": "x", "time": "yesterday", "inputs": {}}\n')
    out = backtest(settings, path, "--format", "json")
    assert out.exit_code == 1
    assert json.loads(out.stdout)["bad_lines"] == 1
    assert 'field "time": not ISO 8601' in out.stderr


def test_unusable_commands_exit_2_with_the_fix(settings: Settings, tmp_path: Path) -> None:
    path = write_traffic(tmp_path / "t.jsonl", before_rate=0.05, after_rate=0.05, hours_after=1)
    out = runner.invoke(
        app, ["monitor", "backtest", "--traces", f"jsonl:{path}", "--service", "other",
              "--deploy-at", iso_utc(DEPLOY), "--warehouse", str(settings.warehouse)],
    )  # fmt: skip
    assert out.exit_code == 2
    assert "no trace of service 'other'" in out.stderr and "other services: agent" in out.stderr
    out = backtest(settings, path, "--deploy-at", "2026-11-30T12:00:00")
    assert out.exit_code == 2 and "no UTC offset" in out.stderr
    out = backtest(settings, path, "--evaluators", "tool_error,nope")
    assert out.exit_code == 2 and "unknown evaluator 'nope'" in out.stderr
    out = backtest(settings, tmp_path / "missing.jsonl")
    assert out.exit_code == 2 and "no such file or directory" in out.stderr
