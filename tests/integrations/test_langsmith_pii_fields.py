"""LangSmith: a thread id, a tool run's name, a document id and the keys of run inputs,
outputs and metadata holding an email or a phone number are redacted; no raw value is found
in any column of the warehouse, and two runs of one thread get the same conversation id
(the JSONL and OTLP halves: tests/traces/test_pii_outside_fields.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.sources import open_source
from tests.traces.test_pii_outside_fields import (
    CONTEXT_ID,
    CONVERSATION,
    CONVERSATION_PHONE,
    DICT_KEY,
    PHONE_KEY,
    TOOL,
    assert_one_token_per_conversation,
    conversations,
    no_raw_pii,
)

T0 = datetime(2026, 11, 30, 14, 3, tzinfo=UTC)


def langsmith_trace(server: LangSmithServer, at: datetime, conversation: str) -> str:
    root = str(uuid.uuid4())
    order = f"{at:%Y%m%dT%H%M%S%fZ}{root}"
    server.add_run(
        "prod-agent",
        id=root,
        trace_id=root,
        name="agent",
        run_type="chain",
        start_time=at.isoformat(),
        end_time=(at + timedelta(milliseconds=500)).isoformat(),
        inputs={"message": "book me", DICT_KEY: 1},
        outputs={"reply": "done", PHONE_KEY: "x"},
        extra={"metadata": {"thread_id": conversation, DICT_KEY: "v"}},
        dotted_order=order,
    )
    children = [
        ("retriever", "kb", {"query": "hours"}, {"documents": [
            {"page_content": "mornings", "metadata": {"id": CONTEXT_ID}}
        ]}),
        ("tool", TOOL, {DICT_KEY: 1, "slot": "09:00"}, {"output": "done"}),
    ]  # fmt: skip
    for i, (kind, name, inputs, outputs) in enumerate(children):
        child_at = at + timedelta(milliseconds=10 * (i + 1))
        server.add_run(
            "prod-agent",
            trace_id=root,
            name=name,
            run_type=kind,
            start_time=child_at.isoformat(),
            inputs=inputs,
            outputs=outputs,
            parent_run_id=root,
            dotted_order=f"{order}.{child_at:%Y%m%dT%H%M%S%fZ}{i}",
        )
    return root


def test_langsmith_thread_id_tool_name_context_id_and_keys_are_redacted(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    first = langsmith_trace(ls_server, T0, CONVERSATION)
    second = langsmith_trace(ls_server, T0 + timedelta(minutes=1), CONVERSATION)
    third = langsmith_trace(ls_server, T0 + timedelta(minutes=2), CONVERSATION_PHONE)
    summary = asyncio.run(ingest(ls_settings, open_source("langsmith:prod-agent", ls_settings)))
    assert (summary.read, summary.stored, summary.bad_lines) == (3, 3, 0)

    no_raw_pii(ls_settings.warehouse)
    by_trace = conversations(ls_settings.warehouse)
    assert_one_token_per_conversation(by_trace, first, second)
    assert by_trace[third] is not None and by_trace[third].startswith("whatsapp:<PHONE:")
