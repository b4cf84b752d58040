"""Issue 18: the trace a user gets from each instrumentation package, asserted field by
field on what a real `evalkeeper listen` stored (redacted) from the real packages' spans:
a normal run, and one whose tool raises; then `promote` and `replay` of a trace from each
on the healthy agent."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.datasets import load_dataset
from tests.instrumented.agent import (
    TOOL_ERROR,
    VERSION,
)
from tests.instrumented.chat_server import DATED_MODEL, TOOL, TOOL_ARGS, ChatServer
from tests.instrumented.conftest import INSTRUMENTATIONS, RECORDED
from tests.instrumented.expect import REQUEST_TAIL, failed_run, normal_run
from tests.instrumented.replay_target import LLM_URL_ENV
from tests.instrumented.traffic import REDACTION_KEY, Traffic

pytestmark = pytest.mark.slow
ALL = [*INSTRUMENTATIONS, *RECORDED]
# the agent ran as `python -m tests.instrumented.agent`: its module is __main__
ERROR_TYPE = "__main__.BookingUnavailable"


@pytest.mark.parametrize("instrumentation", ALL)
def test_a_normal_run(traffic: Traffic, instrumentation: str) -> None:
    normal_run(traffic.stored(instrumentation, "ok"))


@pytest.mark.parametrize("instrumentation", ALL)
def test_a_run_whose_tool_raises(traffic: Traffic, instrumentation: str) -> None:
    failed_run(traffic.stored(instrumentation, "tool_error"), ERROR_TYPE)


def test_a_traceback_in_the_status_is_kept_whole_in_metadata_only(traffic: Traffic) -> None:
    """OpenInference LangChain's status description is the whole traceback (2.5 KB)."""
    trace = traffic.stored("openinference-langchain", "tool_error")
    detail = trace.metadata["error_detail"]
    assert "Traceback (most recent call last)" in detail and len(detail) > 1000
    assert TOOL_ERROR in detail
    assert "Traceback" not in (trace.error or "")
    assert all("Traceback" not in (c.error or "") for c in trace.tool_calls)


@pytest.fixture
def healthy_agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ChatServer()
    monkeypatch.setenv(LLM_URL_ENV, server.start())
    try:
        yield "tests.instrumented.replay_target:scheduler"
    finally:
        server.stop()


@pytest.mark.parametrize("instrumentation", ALL)
def test_promote_then_replay_passes_on_the_healthy_agent(
    traffic: Traffic,
    instrumentation: str,
    healthy_agent: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = traffic.settings.model_copy(
        update={"datasets_dir": tmp_path_factory.mktemp("datasets")}
    )
    trace_id = traffic.trace_id(instrumentation, "ok")
    reference = {"tool_calls": [{"name": TOOL, "args": TOOL_ARGS}], "must_include": ["A-1042"]}
    env = {
        "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
        "EVALKEEPER_REDACTION_KEY": REDACTION_KEY,
    }
    warehouse = ["--warehouse", str(settings.warehouse)]
    runner = CliRunner()
    promote = ["promote", trace_id, "--dataset", "reschedules", "--reference"]
    promote += [json.dumps(reference), "--incident", "INC-18", "--category", "reschedule"]
    promoted = runner.invoke(app, [*promote, *warehouse], env=env)
    assert promoted.exit_code == 0, promoted.stdout + promoted.stderr
    (example,) = load_dataset(
        settings.datasets_dir / "reschedules.jsonl", settings.datasets_dir
    ).examples
    extra = example.metadata.model_extra or {}
    assert extra["model"] == DATED_MODEL and extra["agent_version"] == VERSION
    assert REQUEST_TAIL in json.dumps(example.inputs)
    replay = ["replay", trace_id, "--target", healthy_agent, "--repeat", "2", "--format", "json"]
    # the dataset's evaluators that read the answer; its latency budget is left out (the
    # latency of a run on a loaded test machine says nothing of the mapping)
    replay += ["--evaluators", "tool_call_correct,contains"]
    replayed = runner.invoke(app, [*replay, *warehouse], env=env)
    assert replayed.exit_code == 0, replayed.stdout + replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["evaluators"] == ["tool_call_correct", "contains"]
    assert report["verdict"] == "not_reproduced"
    assert report["original"]["outcome"] == "passed", report["original"]  # the healthy original
    assert report["passes"] == 2 and report["failures"] == 0
    for attempt in report["attempts"]:
        assert attempt["outputs"]["tool_calls"] == [{"name": TOOL, "args": TOOL_ARGS}]
