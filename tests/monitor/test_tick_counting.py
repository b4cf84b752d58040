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
from evalkeeper.models import Score
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


def test_stored_and_new_scores_are_counted_by_one_rule(
    restore_registry: None, tmp_path: Path, mon_settings: Settings
) -> None:
    @registry.evaluator("mixed_outcomes", version="1")
    def factory() -> Callable[..., Any]:
        def score(run: Any = None) -> Score:
            return _mixed_score(run.example_id)

        return score

    path = tmp_path / "mixed.jsonl"
    traffic(path, version="v1", start=DEPLOY - timedelta(hours=4), hours=4, per_hour=40,
            slow_rate=0.05, seed=21)  # fmt: skip
    traffic(path, version="v2", start=DEPLOY, hours=4, per_hour=40, slow_rate=0.05, seed=22)
    settings = mon_settings.model_copy(
        update={"monitor": mon_settings.monitor.model_copy(update={"traces": f"jsonl:{path}"})}
    )
    _config(settings, MIXED)
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
        assert got == (c.total(), c["flag"], c["error"])
    assert e.window_n == 160 and e.baseline_n == 160


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
