"""Test helpers: trace JSONL lines written to real files, and a small redaction function."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

EMAIL = "jane.doe@example.com"
_EMAILISH = re.compile(r"\S*@\S*")


def trace(i: int, **fields: Any) -> dict[str, Any]:
    """Trace number `i`: every field set, the user's e-mail in every free-text field."""
    row: dict[str, Any] = {
        "trace_id": f"t-{i:05d}",
        "time": f"2026-11-30T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "service": "scheduler",
        "environment": "prod",
        "version": "v1" if i % 2 else "v2",
        "model": "gpt-4o-2024-08-06",
        "inputs": {"message": f"book me, I am {EMAIL}", "n": i},
        "outputs": {"reply": f"booked, confirmation sent to {EMAIL}"},
        "latency_ms": 100.0 + i,
        "error": None,
        "tool_calls": [{"name": "book_slot", "args": {"email": EMAIL, "slot": i}}],
        "context": [{"id": "kb-1", "text": f"customer {EMAIL} prefers mornings"}],
        "conversation_id": f"c-{i // 2}",
        "feedback": {"score": 1, "comment": f"thanks, write to {EMAIL}"},
        "metadata": {"contact": EMAIL, "channel": "web"},
    }
    row.update(fields)
    return row


def line(i: int, **fields: Any) -> str:
    return json.dumps(trace(i, **fields)) + "\n"


def append(path: Path, text: str) -> None:
    """Append as an application would (the file is opened, written and closed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def redact_emails(value: Any) -> Any:
    """Replace every word holding an `@` with `<EMAIL:x>`, through any JSON value."""
    if isinstance(value, str):
        return _EMAILISH.sub("<EMAIL:x>", value)
    if isinstance(value, dict):
        return {k: redact_emails(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_emails(v) for v in value]
    return value
