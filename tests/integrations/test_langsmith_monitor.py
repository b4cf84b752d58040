"""A monitoring window watching a LangSmith project: the tick reads the project's root runs
through the `langsmith:PROJECT` source (redacted like every source) and scores them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from evalkeeper.traces.store import count_traces

DEPLOY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _run(server: LangSmithServer, at: datetime, version: str, latency_ms: int) -> None:
    root = str(uuid.uuid4())
    server.add_run(
        "prod-agent",
        id=root,
        trace_id=root,
        name="agent",
        run_type="chain",
        start_time=at.isoformat(),
        end_time=(at + timedelta(milliseconds=latency_ms)).isoformat(),
        inputs={"message": "Is Tuesday free? Write to ann.murphy@example.com"},
        outputs={"reply": "Tuesday 10:00 is free."},
        extra={"metadata": {"agent_version": version}},
        dotted_order=f"{at:%Y%m%dT%H%M%S%fZ}{root}",
    )


def test_a_window_watches_a_langsmith_project(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    for i in range(40):  # the previous version, before the deploy
        _run(ls_server, DEPLOY - timedelta(hours=3, minutes=-i), "v7", 300)
    for i in range(30):  # the new one: every answer slow
        _run(ls_server, DEPLOY + timedelta(minutes=2 * i + 1), "v8", 2500)
    settings = ls_settings.model_copy(
        update={
            "monitor": ls_settings.monitor.model_copy(
                update={
                    "traces": "langsmith:prod-agent",
                    "monitors_dir": ls_settings.warehouse.parent,
                }
            )
        }
    )
    event = DeployEvent(
        service="prod-agent", version="v8", previous_version="v7", deploy_id="d-1", time=DEPLOY
    )
    open_window(settings, event, "cli")
    summary = asyncio.run(tick(settings, now=DEPLOY + timedelta(hours=2)))
    assert summary.ingest is not None and summary.ingest.stored == 70
    assert count_traces(settings) == 70
    (w,) = summary.windows
    latency = next(e for e in w.evaluators if e.evaluator == "latency_ok")
    assert (latency.baseline_n, latency.baseline_flags) == (40, 0)
    assert (latency.window_n, latency.window_flags) == (30, 30)
