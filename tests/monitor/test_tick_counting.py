"""A tick counts every score by one rule (`scoring.classify`), whether the score was stored
by an earlier tick or made by this one; a window that cannot be decided is a problem of the
tick, while a bug propagates."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from evalkeeper import registry
from evalkeeper.models import EvaluatorRef, Score
from evalkeeper.monitor.backtest import BacktestConfig, backtest
from evalkeeper.monitor.decision import MonitorPolicy
from evalkeeper.monitor.scoring import classify
from evalkeeper.monitor.tick import WindowUndecidable, tick
from evalkeeper.monitor.windows import DeployEvent, open_window
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.monitor.conftest import DEPLOY
from tests.monitor.monitor_traffic import SERVICE, traffic

MIXED = """\
min_baseline = 10
min_window = 10

[[evaluators]]
name = "mixed_outcomes"
"""


def _mixed_score(trace_id: str) -> Score:
    """Every kind of score, by a hash of the trace id: pass, flag, error, skip, no verdict."""
    kind = zlib.crc32(trace_id.encode()) % 5
    return [
        Score(passed=True, value=1.0),
        Score(passed=False, value=0.0),
        Score(error="the evaluator broke"),
        Score(skipped=True),
        Score(value=0.5),
    ][kind]


def _deploy(settings: Settings, deploy_id: str) -> str:
    event = DeployEvent(
        service=SERVICE, version="v2", previous_version="v1", deploy_id=deploy_id, time=DEPLOY
    )
    return open_window(settings, event, "cli").window.window_id


def _config(settings: Settings, text: str) -> None:
    settings.monitor.monitors_dir.mkdir(parents=True, exist_ok=True)
    (settings.monitor.monitors_dir / f"{SERVICE}.toml").write_text(text)


def _mixed_traffic(tmp_path: Path, mon_settings: Settings, *, seed: int, config: str) -> Settings:
    """`mixed_outcomes` registered (the test's `restore_registry` undoes it), 4 hours of
    traffic on each side of the deploy, and settings whose ticks ingest it."""

    @registry.evaluator("mixed_outcomes", version="1")
    def factory() -> Callable[..., Any]:
        def score(run: Any = None) -> Score:
            return _mixed_score(run.example_id)

        return score

    path = tmp_path / "mixed.jsonl"
    traffic(path, version="v1", start=DEPLOY - timedelta(hours=4), hours=4, per_hour=40,
            slow_rate=0.05, seed=seed)  # fmt: skip
    traffic(path, version="v2", start=DEPLOY, hours=4, per_hour=40, slow_rate=0.05, seed=seed + 1)
    settings = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"traces": f"jsonl:{path}"})}
    )
    _config(settings, config)
    return settings


def test_stored_and_new_scores_are_counted_by_one_rule(
    restore_registry: None, tmp_path: Path, mon_settings: Settings
) -> None:
    settings = _mixed_traffic(tmp_path, mon_settings, seed=21, config=MIXED)
    window_id = _deploy(settings, "d-mixed")
    for hours in (2, 4):  # the second tick counts stored scores and new ones together
        summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=hours)))
    (w,) = summary.windows
    (e,) = w.evaluators
    rows = Warehouse.from_settings(settings).rows(
        "SELECT phase, passed, error IS NOT NULL, skipped FROM monitoring_scores "
        "WHERE window_id = ?",
        [window_id],
    )
    by_phase = {
        phase: Counter(classify(p, err, sk) for ph, p, err, sk in rows if ph == phase)
        for phase in ("baseline", "window")
    }
    assert len(set(by_phase["window"])) == 3  # flags, passes and errors, all counted
    for phase in ("baseline", "window"):
        got = (getattr(e, f"{phase}_n"), getattr(e, f"{phase}_flags"),
               getattr(e, f"{phase}_errors"))  # fmt: skip
        c = by_phase[phase]
        # n is what was scored (flagged or passed): an error is counted apart, never as a
        # pass, as `monitor backtest` counts it (EvaluatorCounts)
        assert got == (c["flag"] + c["pass"], c["flag"], c["error"])
        assert c.total() == 160  # every trace of the side, in one of the three
    assert e.window_n + e.window_errors == 160 and e.baseline_n + e.baseline_errors == 160


def test_a_window_whose_evaluators_cannot_be_built_is_a_problem_and_others_go_on(
    mon_settings: Settings,
) -> None:
    _config(mon_settings, '[[evaluators]]\nname = "latency_ok"\nargs = { budget = 3 }\n')
    broken = _deploy(mon_settings, "d-broken")
    _config(mon_settings, '[[evaluators]]\nname = "latency_ok"\n')
    fine = _deploy(mon_settings, "d-fine")
    summary = asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=1)))
    assert [w.window_id for w in summary.windows] == [fine]
    assert any("unknown argument(s) ['budget']" in p for p in summary.problems)
    assert broken != fine


def test_a_bug_in_a_window_propagates_out_of_the_tick(
    restore_registry: None, mon_settings: Settings
) -> None:
    @registry.evaluator("buggy_factory", version="1")
    def factory() -> Callable[..., Any]:
        # a factory's ValueError is the user's bad argument (EvaluatorConfigError); any
        # other exception is a bug
        raise RuntimeError("a bug, not a property of the window")

    _config(mon_settings, '[[evaluators]]\nname = "buggy_factory"\n')
    _deploy(mon_settings, "d-bug")
    with pytest.raises(RuntimeError, match="a bug") as caught:
        asyncio.run(tick(mon_settings, now=DEPLOY + timedelta(hours=1)))
    assert not isinstance(caught.value, WindowUndecidable)


def test_a_live_tick_and_a_backtest_count_the_same_traffic_alike(
    restore_registry: None, tmp_path: Path, mon_settings: Settings
) -> None:
    """Seen: on the same traffic a live tick read 13/113 and `monitor backtest` 13/103: the
    tick counted the evaluator's errors inside n, as if they were passes."""

    # baseline_days: the 4 hours before the deploy
    settings = _mixed_traffic(
        tmp_path, mon_settings, seed=31, config=MIXED + "baseline_days = 0.25\n"
    )
    _deploy(settings, "d-alike")
    live = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=4))).windows[0].evaluators[0]
    replayed = asyncio.run(
        backtest(
            settings,
            str(settings.monitor.traces),  # the same recorded traffic the tick ingested
            BacktestConfig(
                service=SERVICE,
                deploy_at=DEPLOY,
                baseline_hours=4,
                window_hours=24,
                tick_minutes=240,
                evaluators=(EvaluatorRef(name="mixed_outcomes"),),
                policy=MonitorPolicy(min_baseline=10, min_window=10),
            ),
        )
    )
    again = replayed.ticks[0].evaluators[0]
    fields = ("baseline_n", "baseline_flags", "baseline_errors", "window_n", "window_flags",
              "window_errors")  # fmt: skip
    assert [getattr(live, f) for f in fields] == [getattr(again, f) for f in fields]
    assert live.window_errors > 0 and live.window_n > 0
    assert (live.statistic, live.decision) == (again.statistic, again.decision)
