"""What one span says, in whichever convention wrote it: the model that answered, the
arguments a tool ran with, the input and output of a Traceloop entity, and the error the
span ended with, short enough to read.

- The model: the one the provider answered with (`gen_ai.response.model`, OpenInference
  `llm.response.model_name`, or `llm.model_name` on an `LLM` span, which the OpenInference
  instrumentors fill from the response), before any requested name.
- A tool's arguments: `gen_ai.tool.call.arguments`; Traceloop's `traceloop.entity.input`
  (`{"args": [...], "kwargs": {...}}`); OpenInference's `input.value`. OpenInference's
  `tool.parameters` is the tool's JSON schema, not what it ran with: it is read only when
  it is not a schema (older hand-written spans put the arguments there).
- An error: `exception.type: exception.message` from the span's `exception` event, else
  `error.type` and the status description; at most `ERROR_MAX_CHARS` characters. A status
  description that says more (OpenInference LangChain puts the whole traceback there) is
  kept whole as the detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evalkeeper.traces.otlp_decode import STATUS_ERROR, Span
from evalkeeper.traces.otlp_messages import parse_json

__all__ = [
    "ERROR_MAX_CHARS",
    "SpanError",
    "answered_model",
    "entity_inputs",
    "entity_outputs",
    "span_error",
    "tool_args",
    "traceloop_kind",
]

ERROR_MAX_CHARS = 300
"""The longest error text a trace or a tool call holds; the full text goes to metadata."""

_SCHEMA_KEYS = {"type", "properties", "required", "$schema", "additionalProperties"}


def traceloop_kind(s: Span) -> str:
    """`traceloop.span.kind`: `workflow`, `task`, `agent`, `tool` (empty when absent)."""
    return str(s.attributes.get("traceloop.span.kind", "")).lower()


def answered_model(s: Span, *, llm: bool) -> str | None:
    """The model the provider answered with, as this span records it (`llm`: the span is a
    model call, whose OpenInference `llm.model_name` is the response's)."""
    a = s.attributes
    for key in ("gen_ai.response.model", "llm.response.model_name"):
        if value := a.get(key):
            return str(value)
    if llm and (value := a.get("llm.model_name")):
        return str(value)
    return None


def _unwrap_call(value: Any) -> Any:
    """Traceloop's `{"args": [...], "kwargs": {...}}` as one object: the keyword arguments;
    a lone positional argument as itself; both as `{"args": [...], **kwargs}`."""
    if not (isinstance(value, dict) and value and set(value) <= {"args", "kwargs"}):
        return value
    args = value.get("args") or []
    kwargs = value.get("kwargs") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return value
    if not args:
        return dict(kwargs)
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": args, **kwargs}


def entity_inputs(s: Span) -> dict[str, Any] | None:
    """A Traceloop entity's input (`traceloop.entity.input`) as a trace's inputs: an object
    as is, anything else as `{"input": …}`."""
    raw = s.attributes.get("traceloop.entity.input")
    if raw is None or raw == "":
        return None
    value = _unwrap_call(parse_json(raw))
    if value is None or value == "" or value == {}:
        return None
    return value if isinstance(value, dict) else {"input": value}


def entity_outputs(s: Span) -> dict[str, Any] | None:
    """A Traceloop entity's output (`traceloop.entity.output`) as a trace's outputs: an
    object as is, text as `{"reply": …}`."""
    raw = s.attributes.get("traceloop.entity.output")
    if raw is None or raw == "":
        return None
    value = parse_json(raw)
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    return {"reply": value if isinstance(value, str) else json.dumps(value)}


def _is_schema(value: Any) -> bool:
    parsed = parse_json(value)
    return isinstance(parsed, dict) and (
        "properties" in parsed or (parsed.get("type") == "object" and set(parsed) <= _SCHEMA_KEYS)
    )


def tool_args(s: Span) -> Any:
    """The arguments a tool span's tool ran with, in whichever convention (None if unsaid)."""
    a = s.attributes
    if (value := a.get("gen_ai.tool.call.arguments")) is not None:
        return value
    if (raw := a.get("traceloop.entity.input")) is not None and raw != "":
        return _unwrap_call(parse_json(raw))
    if (value := a.get("input.value")) is not None and value != "":
        return value
    if (value := a.get("tool.parameters")) is not None and not _is_schema(value):
        return value
    return None


@dataclass(frozen=True)
class SpanError:
    """A span's error: `text` to show (at most ERROR_MAX_CHARS), its `type` when known, and
    the status description in full (`detail`) when it says more than `text`."""

    text: str
    type: str | None = None
    detail: str | None = None


def span_error(s: Span, what: str) -> SpanError | None:
    """The error a span ended with, when its status is ERROR (`what` names the span in the
    text used when it says nothing more)."""
    if s.status_code != STATUS_ERROR:
        return None
    status = s.status_message or ""
    etype = str(s.attributes.get("error.type") or "")
    message = ""
    for e in s.events:
        if e.name == "exception":
            etype = str(e.attributes.get("exception.type") or etype)
            message = str(e.attributes.get("exception.message") or "")
            break
    if etype and message:
        text = f"{etype}: {message}"
    elif status:
        first = status.strip().splitlines()[0] if status.strip() else status
        text = first if not etype or first.startswith(etype) else f"{etype}: {first}"
    else:
        text = etype or message or f"error (the {what}'s status is ERROR, without a message)"
    detail = status if status and status.strip() not in text else None
    if len(text) > ERROR_MAX_CHARS:
        detail = detail or text
        text = text[: ERROR_MAX_CHARS - 1] + "…"
    return SpanError(text=text, type=etype or None, detail=detail)
