"""Messages in the shapes the GenAI and OpenInference conventions record them, to
`{"role", "content", "tool_calls"?}` dicts; tool calls to `{"name", "args"}`."""

from __future__ import annotations

import json
import re
from typing import Any

from evalkeeper.traces.otlp_decode import Span

__all__ = ["indexed", "input_messages", "output_messages", "parse_json", "tool_call"]

_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def input_messages(s: Span) -> dict[str, Any] | None:
    a = s.attributes
    messages: list[dict[str, Any]] = []
    if (sys := a.get("gen_ai.system_instructions")) is not None:
        text = _text_of_parts(parse_json(sys))
        if text:
            messages.append({"role": "system", "content": text})
    found = (
        _genai_messages(a.get("gen_ai.input.messages"))
        or _legacy_messages(a, "gen_ai.prompt", "user")
        or _event_messages(s, output=False)
        or _openinference_messages(a, "llm.input_messages")
    )
    messages.extend(found)
    return {"messages": messages} if messages else None


def output_messages(s: Span) -> dict[str, Any] | None:
    a = s.attributes
    messages = (
        _genai_messages(a.get("gen_ai.output.messages"))
        or _legacy_messages(a, "gen_ai.completion", "assistant")
        or _event_messages(s, output=True)
        or _openinference_messages(a, "llm.output_messages")
    )
    if not messages:
        return None
    reply = next((m["content"] for m in reversed(messages) if m.get("content")), "")
    return {"reply": reply, "messages": messages}


def _genai_messages(value: Any) -> list[dict[str, Any]]:
    """`gen_ai.input.messages` / `gen_ai.output.messages`: `[{role, parts: [...]}]`."""
    parsed = parse_json(value) if value is not None else None
    if not isinstance(parsed, list):
        return []
    return [m for item in parsed if isinstance(item, dict) and (m := _message(item))]


def _message(item: dict[str, Any], default_role: str = "user") -> dict[str, Any] | None:
    """One message in any of the shapes seen: GenAI parts, OpenAI `content`/`tool_calls`."""
    inner = item.get("message")
    msg: dict[str, Any] = inner if isinstance(inner, dict) else item
    role = str(msg.get("role") or default_role)
    calls: list[dict[str, Any]] = []
    texts: list[str] = []
    parts = msg.get("parts")
    if isinstance(parts, list):
        for part in parts:
            if not isinstance(part, dict):
                continue
            ptype = part.get("type")
            if ptype == "tool_call":
                calls.append(tool_call(part.get("name"), part.get("arguments")))
            elif ptype == "tool_call_response":
                resp = part.get("response", part.get("result"))
                texts.append(resp if isinstance(resp, str) else json.dumps(resp))
            elif isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    content = msg.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.append(_text_of_parts(content))
    for tc in msg.get("tool_calls") or []:
        if isinstance(tc, dict):
            inner_fn = tc.get("function")
            fn: dict[str, Any] = inner_fn if isinstance(inner_fn, dict) else tc
            calls.append(tool_call(fn.get("name"), fn.get("arguments", fn.get("args"))))
    text = "\n".join(t for t in texts if t)
    if not text and not calls:
        return None
    out: dict[str, Any] = {"role": role, "content": text}
    if calls:
        out["tool_calls"] = calls
    return out


def _text_of_parts(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            p if isinstance(p, str) else str(p.get("content") or p.get("text") or "")
            for p in value
            if isinstance(p, str | dict)
        ).strip()
    return ""


def _legacy_messages(a: dict[str, Any], key: str, role: str) -> list[dict[str, Any]]:
    """`gen_ai.prompt` / `gen_ai.completion`: JSON messages or text; or the flattened form
    (OpenLLMetry before 0.50): `{key}.{i}.role/content`, `{key}.{i}.tool_calls.{j}.name/arguments`."""
    value = a.get(key)
    if value is not None and value != "":
        parsed = parse_json(value)
        if isinstance(parsed, list):
            return [m for x in parsed if isinstance(x, dict) and (m := _message(x, role))]
        if isinstance(parsed, dict):
            m = _message(parsed, role)
            return [m] if m else []
        return [{"role": role, "content": str(value)}]
    flat = [_flat_tool_calls(item) for item in indexed(a, key + ".")]
    return [m for item in flat if (m := _message(item, role))]


def _flat_tool_calls(item: dict[str, Any]) -> dict[str, Any]:
    """OpenLLMetry's flattened `tool_calls.{j}.name/arguments` as OpenAI `tool_calls`."""
    calls = indexed(item, "tool_calls.")
    if not calls or "tool_calls" in item:
        return item
    return {
        **item,
        "tool_calls": [
            {"function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for c in calls
            if c.get("name")
        ],
    }


def _event_messages(s: Span, *, output: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in s.events:
        a = e.attributes
        if e.name == "gen_ai.client.inference.operation.details":  # a log record, joined
            out.extend(_genai_messages(a.get(f"gen_ai.{'output' if output else 'input'}.messages")))
        elif output and e.name == "gen_ai.content.completion":
            out.extend(_legacy_messages(a, "gen_ai.completion", "assistant"))
        elif not output and e.name == "gen_ai.content.prompt":
            out.extend(_legacy_messages(a, "gen_ai.prompt", "user"))
        elif (output and e.name == "gen_ai.choice") or (not output and e.name in _MESSAGE_EVENTS):
            role = "assistant" if output else _MESSAGE_EVENTS[e.name]
            body = parse_json(a["gen_ai.event.content"]) if "gen_ai.event.content" in a else dict(a)
            if isinstance(body, dict):
                if isinstance(body.get("message"), str):
                    body = {**body, "message": parse_json(body["message"])}
                if isinstance(body.get("tool_calls"), str):
                    body = {**body, "tool_calls": parse_json(body["tool_calls"])}
                if isinstance(body.get("message"), dict) and body.get("tool_calls"):
                    # gen_ai.choice: the tool calls sit beside the message, not in it
                    body = {
                        **body,
                        "message": {"tool_calls": body["tool_calls"], **body["message"]},
                    }
                if m := _message(body, role):
                    out.append(m)
    return out


def _openinference_messages(a: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    out = []
    for item in indexed(a, prefix + "."):
        role = str(item.get("message.role") or "user")
        content = item.get("message.content")
        texts = [content] if isinstance(content, str) else []
        for part in indexed(item, "message.contents."):
            if isinstance(part.get("message_content.text"), str):
                texts.append(part["message_content.text"])
        msg: dict[str, Any] = {"role": role, "content": "\n".join(t for t in texts if t)}
        calls = [
            tool_call(tc.get("tool_call.function.name"), tc.get("tool_call.function.arguments"))
            for tc in indexed(item, "message.tool_calls.")
            if tc.get("tool_call.function.name")
        ]
        if calls:
            msg["tool_calls"] = calls
        if msg["content"] or calls:
            out.append(msg)
    return out


def tool_call(name: Any, args: Any) -> dict[str, Any]:
    """`{"name", "args"}`: args a JSON object as is, anything else as `{"_raw": args}`."""
    parsed = parse_json(args) if isinstance(args, str) else args
    if parsed is None or parsed == "":
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {"_raw": args}
    return {"name": str(name or ""), "args": parsed}


_INDEX = re.compile(r"(\d+)\.(.+)")


def indexed(a: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`{prefix}{i}.{rest}` keys as a list of `{rest: value}` dicts ordered by `i`."""
    groups: dict[int, dict[str, Any]] = {}
    n = len(prefix)
    for key, value in a.items():
        if key.startswith(prefix) and (m := _INDEX.fullmatch(key, n)):
            groups.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [groups[i] for i in sorted(groups)]


def parse_json(value: Any) -> Any:
    """A JSON text decoded; anything else (or text that is not JSON) as it is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in '[{"':
        return value
    try:
        return json.loads(text)
    except ValueError:
        return value
