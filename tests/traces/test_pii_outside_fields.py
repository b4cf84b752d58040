"""Personal data outside the free-text fields: a conversation id, a tool name, a context id
and the keys of objects holding an email or a phone number are redacted, whichever source
the trace came from (a JSONL file through the CLI, OTLP through the SDK's exporter to the
app on 127.0.0.1; LangSmith through the fake LangSmith server is in
tests/integrations/test_langsmith_pii_fields.py), and no raw value is then
found in any column of the warehouse. Two traces of one conversation get the same stored
id. An unknown key is named by its position, never quoted.

Before the fix, `session.id` was stored as `conversation_id` as it came (50 of 50 raw),
`"name": "call kept3@example.com"` and `{"kept1@example.com": 1}` were stored as they came,
and an unknown key was quoted: `pii.jsonl:43: unknown field "erin@example.com"`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from pydantic import SecretStr
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.http import create_app
from evalkeeper.settings import Settings
from evalkeeper.traces.batch import InlineRedaction, RedactionPool, batch_redaction
from evalkeeper.traces.ingest import make_trace_sink
from evalkeeper.traces.model import Trace
from tests.otlp_helpers import serve, tracer
from tests.traces.test_no_raw_pii import leaks, warehouse_texts

KEY = "pii-fields-test-key-0123456789"
CONVERSATION = "Erin.Conv@example.com"  # one conversation, two traces
CONVERSATION_PHONE = "whatsapp:+44 20 7946 0958"  # another
TOOL = "call kept3@example.com"
CONTEXT_ID = "profile-of-kept4@example.com"
DICT_KEY = "kept1@example.com"
PHONE_KEY = "+1 415-555-0132"
RAW = [CONVERSATION, "7946 0958", TOOL, "kept3@", CONTEXT_ID, "kept4@", DICT_KEY, "555-0132"]
RAW += ["@example.com"]  # no email at all survives


def no_raw_pii(warehouse: Path) -> list[str]:
    """Every column of the warehouse as text, checked for the raw values; its texts."""
    texts, stored = warehouse_texts(warehouse)
    assert stored >= 3
    assert leaks(texts, RAW) == []
    assert any("<EMAIL:" in t for t in texts) and any("<PHONE:" in t for t in texts)
    return texts


def conversations(warehouse: Path) -> dict[str, str | None]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT trace_id, conversation_id FROM traces").fetchall()
    finally:
        con.close()
    return {str(t): c for t, c in rows}


def assert_one_token_per_conversation(by_trace: dict[str, str | None], a: str, b: str) -> None:
    """Traces `a` and `b` share the conversation: the same stored id, a keyed token."""
    assert by_trace[a] == by_trace[b]
    assert by_trace[a] is not None and by_trace[a].startswith("<EMAIL:")


# -- JSONL through the CLI -------------------------------------------------------------------


def jsonl_trace(i: int, conversation: str) -> dict[str, Any]:
    return {
        "trace_id": f"t-{i}",
        "time": f"2026-11-30T14:0{i}:00Z",
        "inputs": {"message": "book me", DICT_KEY: 1, "nested": [{PHONE_KEY: "x"}]},
        "outputs": {"reply": "done", DICT_KEY: {"a": 1}},
        "tool_calls": [{"name": TOOL, "args": {DICT_KEY: True, "slot": 9}}],
        "context": [{"id": CONTEXT_ID, "text": "prefers mornings"}],
        "conversation_id": conversation,
        "feedback": {"score": 1, "comment": "ok"},
        "metadata": {DICT_KEY: "v", PHONE_KEY: 2, "channel": "web"},
    }


def test_jsonl_ids_names_and_keys_are_redacted_and_errors_quote_no_key(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    rows = [
        jsonl_trace(1, CONVERSATION),
        jsonl_trace(2, CONVERSATION.lower()),  # the same address, written otherwise
        jsonl_trace(3, CONVERSATION_PHONE),
        jsonl_trace(4, "c-42"),
    ]
    bad_top = {"trace_id": "bad-1", "time": "2026-11-30T14:09:00Z", "inputs": {}}
    bad_top["erin@example.com"] = 1
    bad_tool = jsonl_trace(5, "c-43") | {"trace_id": "bad-2"}
    bad_tool["tool_calls"] = [{"name": "x", "args": {}, "+44 20 7946 0958": "y"}]
    lines = [json.dumps(r) for r in [*rows, bad_top, bad_tool]]
    path = tmp_path / "pii.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["traces", "ingest", "--source", f"jsonl:{path}", "--warehouse", str(warehouse)],
        env={"EVALKEEPER_REDACTION_KEY": KEY},
    )
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output  # the two bad lines
    assert "bad lines 2" in output
    assert "pii.jsonl:5: field 4 is unknown; allowed: trace_id" in output
    assert "pii.jsonl:6: field 3 of tool_calls[0] is unknown; allowed: name, args, error" in output
    assert leaks([output], [*RAW, "erin@", "7946"]) == []

    texts = no_raw_pii(warehouse)
    by_trace = conversations(warehouse)
    assert_one_token_per_conversation(by_trace, "t-1", "t-2")
    assert by_trace["t-3"] is not None and by_trace["t-3"].startswith("whatsapp:<PHONE:")
    assert by_trace["t-4"] == "c-42"  # an id without personal data is kept
    assert any('"call <EMAIL:' in t for t in texts)  # the tool's name, redacted in place


# -- OTLP through the SDK's exporter -----------------------------------------------------------


def otlp_spans() -> list[Any]:
    provider, memory = tracer()
    t = provider.get_tracer("pii-fields")
    for session in (CONVERSATION, CONVERSATION.upper(), CONVERSATION_PHONE):
        with t.start_as_current_span("invoke_agent support") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("session.id", session)
            root.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
            )
            with t.start_as_current_span(f"execute_tool {TOOL}") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", TOOL)
                tool.set_attribute(
                    "gen_ai.tool.call.arguments", json.dumps({DICT_KEY: 1, PHONE_KEY: "x"})
                )
            with t.start_as_current_span("retrieve") as retrieve:
                retrieve.set_attribute("retrieval.documents.0.document.id", CONTEXT_ID)
                retrieve.set_attribute("retrieval.documents.0.document.content", "mornings")
    return list(memory.get_finished_spans())


def test_otlp_session_id_tool_name_context_id_and_keys_are_redacted(tmp_path: Path) -> None:
    settings = Settings(
        warehouse=tmp_path / "w.duckdb", redaction_key=SecretStr(KEY), otlp_settle_s=0.2
    )
    sink = make_trace_sink(settings)
    spans = otlp_spans()
    roots = [s for s in spans if s.parent is None]
    with serve(create_app(settings, trace_sink=sink)) as url:
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        deadline = time.monotonic() + 60
        while sink.stats.stored < len(roots):
            assert time.monotonic() < deadline, sink.stats
            time.sleep(0.05)

    no_raw_pii(settings.warehouse)
    by_trace = conversations(settings.warehouse)
    ids = [format(s.context.trace_id, "032x") for s in roots]
    assert set(ids) <= set(by_trace)
    assert_one_token_per_conversation(by_trace, ids[0], ids[1])  # upper case: same address
    assert by_trace[ids[2]] is not None and by_trace[ids[2]].startswith("whatsapp:<PHONE:")


# -- worker processes ----------------------------------------------------------------------


def test_the_pool_redacts_ids_names_and_keys_as_one_process_does(settings: Settings) -> None:
    settings = settings.model_copy(
        update={
            "redaction": settings.redaction.model_copy(update={"key": SecretStr(KEY), "workers": 2})
        }
    )
    traces = [
        Trace.model_validate(jsonl_trace(i % 9, (CONVERSATION, CONVERSATION_PHONE)[i % 2]))
        for i in range(300)
    ]
    inline = batch_redaction(
        settings.model_copy(
            update={"redaction": settings.redaction.model_copy(update={"workers": 1})}
        )
    )
    pool = batch_redaction(settings)
    assert isinstance(inline, InlineRedaction) and isinstance(pool, RedactionPool)
    try:
        expected = inline.redact(traces)
        pool.start(wait=True)
        pool.here_s = pool.start_after_s
        got = pool.redact(traces)
        assert pool._executor is not None and pool.ready()  # the batch went to the workers
    finally:
        pool.close()
    assert got == expected
    assert pool.stats == inline.stats
    one = got[0]
    assert one.conversation_id is not None and one.conversation_id.startswith("<EMAIL:")
    assert one.tool_calls[0].name.startswith("call <EMAIL:")
    assert one.context[0].id.startswith("<EMAIL:")  # the local part takes the whole id
    assert DICT_KEY not in one.inputs and PHONE_KEY not in one.metadata
    assert len(one.metadata) == 3 and one.metadata["channel"] == "web"
