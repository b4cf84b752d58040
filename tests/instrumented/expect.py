"""What a user checks by hand on the trace of any instrumentation: the fields of issue 18,
asserted on a stored (redacted) trace of a normal run and of a run whose tool raises."""

from __future__ import annotations

import json

from evalkeeper.traces.model import Trace
from evalkeeper.traces.otlp_spans import ERROR_MAX_CHARS
from tests.instrumented.agent import (
    EMAIL,
    ENVIRONMENT,
    PHONE,
    SERVICE,
    SESSION,
    SYSTEM_PROMPT,
    TOOL_ERROR,
    VERSION,
)
from tests.instrumented.chat_server import DATED_MODEL, FINAL_ANSWER, TOOL, TOOL_ARGS

REQUEST_TAIL = "Please move appointment A-1042 to 14 March at 3pm."


def _text(trace: Trace) -> str:
    return json.dumps(trace.model_dump(mode="json"), ensure_ascii=False)


def common(trace: Trace) -> None:
    """What every run of every instrumentation must give."""
    assert (trace.service, trace.version, trace.environment) == (SERVICE, VERSION, ENVIRONMENT)
    assert trace.model == DATED_MODEL  # the name the provider answered with
    assert trace.conversation_id == SESSION
    inputs = json.dumps(trace.inputs, ensure_ascii=False)
    assert REQUEST_TAIL in inputs  # the user's request...
    assert SYSTEM_PROMPT not in inputs and "scheduling assistant" not in inputs  # ...alone
    text = _text(trace)
    assert EMAIL not in text and PHONE not in text and "415 555 0132" not in text
    assert "<EMAIL:" in inputs and "<PHONE:" in inputs
    assert trace.latency_ms is not None and trace.latency_ms > 0


def normal_run(trace: Trace) -> None:
    common(trace)
    assert trace.outputs is not None and trace.outputs["reply"] == FINAL_ANSWER
    assert [c.model_dump(exclude_none=True) for c in trace.tool_calls] == [
        {"name": TOOL, "args": TOOL_ARGS}  # what the tool ran with, not its JSON schema
    ]
    assert trace.error is None
    assert not {"error_type", "error_detail", "error_spans"} & set(trace.metadata)
    assert "content_missing" not in trace.metadata


def failed_run(trace: Trace, error_type: str) -> None:
    common(trace)
    assert trace.outputs is None  # a failed run has no answer (not the tool-call message)
    error = f"{error_type}: {TOOL_ERROR}"
    assert [c.model_dump(exclude_none=True) for c in trace.tool_calls] == [
        {"name": TOOL, "args": TOOL_ARGS, "error": error}  # the tool's own error
    ]
    assert trace.error == error and len(trace.error) <= ERROR_MAX_CHARS
    assert trace.metadata["error_type"] == error_type
    assert trace.metadata["error_spans"] == 1
