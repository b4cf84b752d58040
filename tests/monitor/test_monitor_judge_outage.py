"""A judge outage in the middle of a window: its errors are counted apart from its flags,
the window ends `inconclusive` (asking for a human), never `rollback` and never `stable`.
The judge is the production `tone_appropriate` against a scripted OpenAI-compatible server
on 127.0.0.1 that starts answering 500 halfway through."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window, window_status
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tests.monitor.conftest import DEPLOY, Receiver
from tests.monitor.monitor_traffic import SERVICE, traffic

CONFIG = """\
min_baseline = 200
min_window = 50

[[evaluators]]
name = "latency_ok"

[[evaluators]]
name = "tone_appropriate"
args = { votes = 1 }
"""


def test_a_judge_outage_mid_window_is_inconclusive(
    tmp_path: Path, mon_settings: Settings, receiver: Receiver
) -> None:
    path = tmp_path / "judged.jsonl"
    traffic(path, version="v1", start=DEPLOY - timedelta(hours=5), hours=5, per_hour=50,
            slow_rate=0.05, seed=11)  # fmt: skip
    traffic(path, version="v2", start=DEPLOY, hours=24, per_hour=10, slow_rate=0.05, seed=12)
    mon_settings.monitor.monitors_dir.mkdir(parents=True)
    (mon_settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(CONFIG)
    with ScriptedLLMServer() as llm:
        settings = mon_settings.model_copy(
            update={
                "monitor": mon_settings.monitor.model_copy(update={"traces": f"jsonl:{path}"}),
                "judge": mon_settings.judge.model_copy(
                    update={
                        "base_url": llm.base_url,
                        "model": "gpt-4o-2024-08-06",
                        "max_retries": 0,
                        "rpm": 60_000.0,
                        "concurrency": 16,
                    }
                ),
            }
        )
        event = DeployEvent(
            service=SERVICE, version="v2", previous_version="v1", deploy_id="d-judge", time=DEPLOY
        )
        open_window(settings, event, "cli")
        for hours in (2, 4, 6):
            asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=hours)))
        (healthy,) = window_status(settings)
        assert healthy["state"] == "open" and healthy["decision"] == "continue"
        llm.reset(Policy(fail_status=500))  # the judge goes down
        for hours in (12, 18, 24):
            summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=hours)))
        assert llm.calls > 0
    (w,) = summary.windows
    tone = next(e for e in w.evaluators if e.evaluator == "tone_appropriate")
    assert tone.window_errors == 240 - 61 and tone.baseline_errors == 0
    assert tone.window_flags == 0  # an error is not a flag
    (row,) = window_status(settings)
    assert row["state"] == "closed" and row["decision"] == "inconclusive"
    assert row["rollback_decided"] is False and receiver.calls == []
    assert any("inconclusive" in p for p in summary.problems)


def test_a_retired_judge_stops_deciding_windows_and_the_tick_says_so(
    tmp_path: Path, mon_settings: Settings, receiver: Receiver
) -> None:
    import polars as pl

    from evalkeeper.models import utcnow
    from evalkeeper.warehouse import Warehouse

    path = tmp_path / "judged.jsonl"
    traffic(path, version="v1", start=DEPLOY - timedelta(hours=5), hours=5, per_hour=50,
            slow_rate=0.05, seed=11)  # fmt: skip
    traffic(path, version="v2", start=DEPLOY, hours=4, per_hour=10, slow_rate=0.05, seed=12)
    mon_settings.monitor.monitors_dir.mkdir(parents=True)
    (mon_settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(CONFIG)
    retired = {"judge": "tone_appropriate", "model": "gpt-4o-2024-08-06",
               "prompt_version": "b7316ab6c58b", "status": "retired",
               "status_reason": "agreement 0.70, CI 0.61-0.78", "updated_at": utcnow()}  # fmt: skip
    Warehouse.from_settings(mon_settings).write({"judges": pl.DataFrame([retired])})
    with ScriptedLLMServer() as llm:
        settings = mon_settings.model_copy(
            update={
                "monitor": mon_settings.monitor.model_copy(update={"traces": f"jsonl:{path}"}),
                "judge": mon_settings.judge.model_copy(
                    update={"base_url": llm.base_url, "model": "gpt-4o-2024-08-06"}
                ),
            }
        )
        event = DeployEvent(
            service=SERVICE, version="v2", previous_version="v1", deploy_id="d-ret", time=DEPLOY
        )
        open_window(settings, event, "cli")
        summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=2)))
        assert llm.calls == 0  # the retired judge was not asked
    (w,) = summary.windows
    assert [e.evaluator for e in w.evaluators] == ["latency_ok"]
    assert any("tone_appropriate is retired" in r and "not used by this window" in r
               for r in w.reasons)  # fmt: skip
    # a window left with no evaluator but retired judges refuses to decide, and says why
    (mon_settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(
        '[[evaluators]]\nname = "tone_appropriate"\n'
    )
    event = DeployEvent(
        service=SERVICE, version="v3", previous_version="v2", deploy_id="d-ret2", time=DEPLOY
    )
    open_window(settings, event, "cli")
    later = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=3)))
    assert [w.version for w in later.windows] == ["v2"]  # the other window still ticked
    assert any("every online evaluator is a retired judge" in p for p in later.problems)
