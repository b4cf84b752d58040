"""The spans of one trace to one trace dict in the trace JSONL form.

The root span (no parent, or a parent that is not in the trace; the earliest if several)
makes the trace: its start time, duration, status, resource (`service.name`,
`service.version`, `deployment.environment.name` or `deployment.environment`), inputs and
outputs. The other spans contribute tool calls, retrieved context, the model and token
usage. A failed run (root status ERROR) has no outputs unless the root recorded some; inputs
taken from a model call leave its system prompt out. What a single span says (the answered
model, a tool's arguments, Traceloop entities, the error) is read in `otlp_spans`. Three
attribute conventions are read:

- OpenTelemetry GenAI (`gen_ai.*`): `gen_ai.operation.name`, `gen_ai.request.model`,
  `gen_ai.response.model`, `gen_ai.input.messages` / `gen_ai.output.messages` (JSON, with
  `parts`), `gen_ai.system_instructions`, the older `gen_ai.prompt` / `gen_ai.completion`
  (JSON or text, or flattened `gen_ai.prompt.{i}.role/content`) and the span events
  `gen_ai.content.prompt` / `gen_ai.content.completion`, `gen_ai.{system,user,assistant,
  tool}.message` and `gen_ai.choice`; tools `gen_ai.tool.name`, `gen_ai.tool.call.arguments`,
  `gen_ai.tool.call.result` (operation `execute_tool`); retrieval `gen_ai.retrieval.documents`
  (operation `retrieval`); usage `gen_ai.usage.input_tokens` / `output_tokens` (and the
  older `prompt_tokens` / `completion_tokens`); `gen_ai.conversation.id`, `gen_ai.agent.name`.
- OpenInference (Arize Phoenix): `openinference.span.kind`, `input.value`, `output.value`,
  `llm.model_name`, `llm.input_messages.{i}.message.role/content` (and `.message.contents.
  {j}.message_content.text`, `.message.tool_calls.{j}.tool_call.function.name/arguments`),
  `llm.output_messages.…`, `llm.token_count.prompt/completion`, `tool.name`,
  `tool.parameters`, `retrieval.documents.{i}.document.id/content`, `session.id`,
  `user.id`, `agent.name`.
- Traceloop / OpenLLMetry: `traceloop.span.kind` (`workflow`, `tool`, …),
  `traceloop.entity.input/output`, `traceloop.association.properties.session_id`, and the
  older flattened `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.tool_calls.{j}.*` with
  `llm.request.type`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from evalkeeper.traces.otlp_decode import STATUS_ERROR, Span
from evalkeeper.traces.otlp_messages import (
    indexed,
    input_messages,
    output_messages,
    parse_json,
    tool_call,
)
from evalkeeper.traces.otlp_spans import (
    answered_model,
    entity_inputs,
    entity_outputs,
    span_error,
    tool_args,
    traceloop_kind,
)

__all__ = ["find_root", "map_trace"]

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
CONVERSATION_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.conversation_id",
)


def find_root(spans: Sequence[Span]) -> Span:
    """The span that makes the trace: no parent (or one not in the trace), earliest first."""
    ids = {s.span_id for s in spans}
    tops = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    true_roots = [s for s in tops if not s.parent_span_id]
    return min(true_roots or tops or spans, key=lambda s: (s.start_ns, s.span_id))


def map_trace(spans: Sequence[Span]) -> dict[str, Any]:
    """One trace dict (trace JSONL form) from the spans of one trace id."""
    if not spans:
        raise ValueError("map_trace: no spans; a trace needs at least its root span")
    root = find_root(spans)
    others = sorted((s for s in spans if s is not root), key=lambda s: (s.start_ns, s.span_id))
    ordered = [root, *others]
    res = root.resource
    llm_spans = [s for s in others if _is_llm(s)]

    inputs = _inputs(root) or next((m for s in llm_spans if (m := _request(s))), None)
    failed = root.status_code == STATUS_ERROR
    outputs = _outputs(root)
    if outputs is None and not failed:  # a failed run has no answer, whatever it asked
        outputs = next((m for s in reversed(llm_spans) if (m := output_messages(s))), None)
    in_tok, out_tok = _usage(root, others)
    metadata: dict[str, Any] = {
        "source": "otlp",
        "span_count": len(spans),
        "root_span": root.name,
        "operation": _operation(root),
    }
    if root.parent_span_id:
        metadata["root_missing"] = True
        metadata["root_parent_span_id"] = root.parent_span_id
    if in_tok is not None:
        metadata["input_tokens"] = in_tok
    if out_tok is not None:
        metadata["output_tokens"] = out_tok
    models = _models(ordered)
    if len(models) > 1:
        metadata["models"] = models
    for key, names in (
        ("agent_name", ("gen_ai.agent.name", "agent.name")),
        ("user_id", ("user.id",)),
    ):
        if value := _first_attr(ordered, names):
            metadata[key] = value
    error_spans = sum(1 for s in others if s.status_code == STATUS_ERROR)
    if error_spans:
        metadata["error_spans"] = error_spans
    if root.scope:
        metadata["scope"] = root.scope
    error = span_error(root, "root span")
    if error is not None and error.type:
        metadata["error_type"] = error.type
    if error is not None and error.detail:
        metadata["error_detail"] = error.detail

    return {
        "trace_id": root.trace_id,
        "time": _iso(root.start_ns),
        "service": _str_or_none(res.get("service.name")),
        "environment": _str_or_none(
            res.get("deployment.environment.name", res.get("deployment.environment"))
        ),
        "version": _str_or_none(res.get("service.version")),
        "model": models[0] if models else None,
        "inputs": inputs or {},
        "outputs": None if failed and not outputs else (outputs or {}),
        "latency_ms": max(0.0, (root.end_ns - root.start_ns) / 1e6),
        "error": error.text if error is not None else None,
        "tool_calls": _tool_calls(ordered),
        "context": _context(ordered),
        "conversation_id": _first_attr(ordered, CONVERSATION_KEYS),
        "feedback": None,
        "metadata": metadata,
    }


# -- span roles -------------------------------------------------------------------------------


def _kind(s: Span) -> str:
    return str(s.attributes.get("openinference.span.kind", "")).upper()


def _operation(s: Span) -> str | None:
    op = s.attributes.get("gen_ai.operation.name")
    if op:
        return str(op)
    kind = _kind(s).lower() or traceloop_kind(s) or str(s.attributes.get("llm.request.type", ""))
    return kind or None


def _is_llm(s: Span) -> bool:
    a = s.attributes
    return (
        a.get("gen_ai.operation.name") in LLM_OPERATIONS
        or _kind(s) == "LLM"
        or (not a.get("gen_ai.operation.name") and a.get("llm.request.type") in LLM_OPERATIONS)
    )


def _is_tool(s: Span) -> bool:
    return (
        s.attributes.get("gen_ai.operation.name") == "execute_tool"
        or _kind(s) == "TOOL"
        or traceloop_kind(s) == "tool"
    )


def _model(s: Span) -> str | None:
    a = s.attributes
    for key in (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.response.model_name",
        "llm.model_name",
        "llm.request.model_name",
    ):
        if value := a.get(key):
            return str(value)
    return None


def _models(ordered: Sequence[Span]) -> list[str]:
    """The models the provider answered with (the model calls' dated names, in order), else
    the names asked for: an agent span's `gpt-4o-mini` does not hide `gpt-4o-mini-2024-07-18`."""
    answered = _unique(m for s in ordered if (m := answered_model(s, llm=_is_llm(s))))
    return answered or _unique(name for s in ordered if (name := _model(s)))


# -- inputs and outputs -------------------------------------------------------------------


def _request(s: Span) -> dict[str, Any] | None:
    """A model call's input messages without its system prompt: the request it carried."""
    found = input_messages(s)
    messages = [m for m in (found or {}).get("messages", []) if m.get("role") != "system"]
    return {"messages": messages} if messages else None


def _inputs(s: Span) -> dict[str, Any] | None:
    if messages := input_messages(s):
        return messages
    value = s.attributes.get("input.value")
    if value is None or value == "":
        return entity_inputs(s)
    parsed = parse_json(value)
    if isinstance(parsed, dict):
        return parsed
    return {"input": value if not isinstance(parsed, list) else parsed}


def _outputs(s: Span) -> dict[str, Any] | None:
    if messages := output_messages(s):
        return messages
    value = s.attributes.get("output.value")
    if value is None or value == "":
        return entity_outputs(s)
    parsed = parse_json(value)
    if isinstance(parsed, dict):
        return parsed
    return {"reply": value if isinstance(value, str) else json.dumps(value)}


# -- tool calls, context, usage, status ---------------------------------------------------


def _tool_calls(ordered: Sequence[Span]) -> list[dict[str, Any]]:
    """From tool spans if there are any; else from the tool calls in the model's messages."""
    calls = []
    without_args = []
    for s in ordered:
        if not _is_tool(s):
            continue
        a = s.attributes
        name = (
            a.get("gen_ai.tool.name") or a.get("tool.name") or a.get("traceloop.entity.name")
        ) or s.name
        args = tool_args(s)
        call = tool_call(name, args)
        if (error := span_error(s, "tool span")) is not None:  # the tool's own error
            call["error"] = error.text
        if args is None:
            without_args.append(call)
        calls.append(call)
    if calls:
        _args_asked_for(without_args, ordered)
        return calls
    sources = [s for s in ordered if _is_llm(s)] or ordered[:1]
    for s in sources:
        for m in (output_messages(s) or {}).get("messages", []):
            calls.extend(m.get("tool_calls", []))
    return calls


def _args_asked_for(calls: list[dict[str, Any]], ordered: Sequence[Span]) -> None:
    """Tool spans without their arguments (OTel GenAI records them on a span only when
    content goes on spans) get those the model asked the tool to run with, by name, in
    order (the model's output messages, e.g. joined from `/v1/logs` records)."""
    if not calls:
        return
    asked = [
        c
        for s in ordered
        if _is_llm(s)
        for m in (output_messages(s) or {}).get("messages", [])
        for c in m.get("tool_calls", [])
    ]
    for call in calls:
        i = next((i for i, c in enumerate(asked) if c["name"] == call["name"]), None)
        if i is not None:
            call["args"] = asked.pop(i)["args"]


def _context(ordered: Sequence[Span]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for s in ordered:
        a = s.attributes
        if (value := a.get("gen_ai.retrieval.documents")) is not None:
            parsed = parse_json(value)
            for i, d in enumerate(parsed if isinstance(parsed, list) else []):
                if isinstance(d, dict):
                    text = d.get("content", d.get("text", ""))
                    docs.append({"id": str(d.get("id", f"{s.span_id}:{i}")), "text": str(text)})
        for i, d in enumerate(indexed(a, "retrieval.documents.")):
            doc_id = d.get("document.id")
            docs.append(
                {
                    "id": str(doc_id) if doc_id is not None else f"{s.span_id}:{i}",
                    "text": str(d.get("document.content", "")),
                }
            )
    return docs


_USAGE_KEYS = (
    ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
)


def _usage(root: Span, others: Sequence[Span]) -> tuple[int | None, int | None]:
    """Tokens summed over the child spans that report them; the root's if none does (an agent
    span's total would count its model calls twice)."""
    totals: list[int | None] = []
    for keys in _USAGE_KEYS:
        values = [v for s in others if (v := _int_attr(s, keys)) is not None]
        totals.append(sum(values) if values else _int_attr(root, keys))
    return totals[0], totals[1]


def _int_attr(s: Span, keys: Iterable[str]) -> int | None:
    for key in keys:
        value = s.attributes.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


# -- helpers --------------------------------------------------------------------------------


def _first_attr(spans: Iterable[Span], keys: Sequence[str]) -> str | None:
    for s in spans:
        for key in keys:
            value = s.attributes.get(key)
            if value is not None and value != "":
                return str(value)
    return None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _iso(ns: int) -> str:
    seconds, rem = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rem // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
