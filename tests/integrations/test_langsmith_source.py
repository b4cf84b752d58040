"""`langsmith:PROJECT` trace source: root runs with tool and retriever children, redacted."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.sources import open_source
from evalkeeper.traces.store import get_trace

T0 = datetime(2026, 11, 30, 14, 3, tzinfo=UTC)


def _trace(server: LangSmithServer, at: datetime, email: str) -> str:
    root = str(uuid.uuid4())
    common = {"trace_id": root}
    server.add_run(
        "prod-agent",
        id=root,
        name="agent",
        run_type="chain",
        start_time=at.isoformat(),
        end_time=(at + timedelta(milliseconds=812)).isoformat(),
        inputs={"message": f"Please book me, my email is {email}"},
        outputs={"reply": "Booked for Thursday."},
        extra={"metadata": {"agent_version": "v7", "thread_id": "conv-1", "region": "eu"}},
        dotted_order=f"{at:%Y%m%dT%H%M%S%fZ}{root}",
        **common,
    )
    for i, (kind, name, inputs, outputs) in enumerate(
        [
            (
                "retriever",
                "kb",
                {"query": "hours"},
                {
                    "documents": [
                        {"page_content": f"Write to {email} for hours", "metadata": {"id": "doc-7"}}
                    ]
                },
            ),
            ("llm", "chat", {"messages": []}, {}),
            ("tool", "check_availability", {"input": '{"date": "2026-12-03"}'}, {"output": "ok"}),
            ("tool", "book_slot", {"slot": "09:00", "email": email}, {"output": "done"}),
        ]
    ):
        child_at = at + timedelta(milliseconds=10 * (i + 1))
        server.add_run(
            "prod-agent",
            name=name,
            run_type=kind,
            start_time=child_at.isoformat(),
            inputs=inputs,
            outputs=outputs,
            parent_run_id=root,
            extra={"metadata": {"ls_model_name": "gpt-4o-2024-08-06"}} if kind == "llm" else {},
            dotted_order=f"{at:%Y%m%dT%H%M%S%fZ}{root}.{child_at:%Y%m%dT%H%M%S%fZ}{i}",
            **common,
        )
    return root


def test_ingest_reads_root_runs_since_the_cursor_and_redacts_them(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    first = _trace(ls_server, T0, "ann.murphy@example.com")
    source = open_source("langsmith:prod-agent", ls_settings)
    summary = asyncio.run(ingest(ls_settings, source))
    assert (summary.read, summary.stored, summary.bad_lines) == (1, 1, 0)

    trace = get_trace(ls_settings, first)
    assert trace is not None
    assert trace.time == T0 and trace.latency_ms == pytest.approx(812)
    assert trace.version == "v7" and trace.model == "gpt-4o-2024-08-06"
    assert trace.conversation_id == "conv-1" and trace.service == "prod-agent"
    assert [c.name for c in trace.tool_calls] == ["check_availability", "book_slot"]
    assert trace.tool_calls[0].args == {"date": "2026-12-03"}
    assert [d.id for d in trace.context] == ["doc-7"]
    stored = trace.to_json_line()
    assert "ann.murphy@example.com" not in stored  # inputs, tool args and context redacted
    assert "email is" in trace.inputs["message"]
    assert trace.metadata["region"] == "eu"

    # what the SDK asked: root runs of the project since the cursor, then the trace's runs
    queries = [r.body for r in ls_server.requests_to("POST", "/runs/query")]
    assert queries[0]["is_root"] is True and queries[0]["order"] == "asc"
    assert queries[1]["trace"] == first
    assert not ls_server.unknown_requests()

    # the cursor: nothing new, nothing read; a later run is read alone
    again = asyncio.run(ingest(ls_settings, source))
    assert again.read == 0
    later = _trace(ls_server, T0 + timedelta(minutes=5), "bob@example.org")
    ls_server.reset_requests()
    third = asyncio.run(ingest(ls_settings, source))
    assert (third.read, third.stored, third.duplicates) == (1, 1, 0)
    since = ls_server.requests_to("POST", "/runs/query")[0].body["start_time"]
    assert datetime.fromisoformat(since) == T0
    assert get_trace(ls_settings, later) is not None


def test_traces_show_reads_one_run_redacted(
    ls_server: LangSmithServer, ls_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _trace(ls_server, T0, "ann.murphy@example.com")
    monkeypatch.setenv("EVALKEEPER_LANGSMITH_ENDPOINT", ls_server.url)
    monkeypatch.setenv("EVALKEEPER_REDACTION_KEY", "test-redaction-key")
    result = CliRunner().invoke(
        app,
        [
            "traces",
            "show",
            run_id,
            "--source",
            "langsmith:prod-agent",
            "--warehouse",
            str(ls_settings.warehouse),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trace_id"] == run_id and data["version"] == "v7"
    assert "ann.murphy@example.com" not in result.stdout
    assert ls_server.requests_to("GET", f"/runs/{run_id}")


def test_langsmith_source_without_settings_says_what_to_set(offline_langsmith: None) -> None:
    source = open_source(
        "langsmith:prod-agent", Settings(langsmith_api_key=None, langsmith_endpoint=None)
    )
    with pytest.raises(ValueError, match="EVALKEEPER_LANGSMITH_API_KEY"):
        asyncio.run(source.read(None))
