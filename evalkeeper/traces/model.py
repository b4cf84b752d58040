"""The trace model: one root run of the agent in production, and its JSONL form.

A trace line is a JSON object with the model's field names; only `trace_id`, `time` and
`inputs` are required. `time` is ISO 8601 with a UTC offset (`Z` or `+02:00`, converted to
UTC); a time without an offset is rejected, since reading it as UTC could shift every
trace of a server on local time by hours without anyone noticing. A bad line is reported
as `path:line: field "x": problem; fix`. Messages never quote the line's values or its
free keys (an unknown key is named by its position: `field 3 of tool_calls[0] is unknown`):
a raw trace may hold personal data, and errors are printed and logged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalkeeper.errors import InputError
from evalkeeper.models import canonical_json

TIME_EXAMPLE = "2026-11-30T14:03:00Z"


class TraceError(InputError, ValueError):
    """A trace line that cannot be read; the message names file, line, field and fix."""


class ToolCall(BaseModel):
    """One tool the agent called during the trace."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Tool name, e.g. `book_slot`.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="The arguments it was called with (a JSON object)."
    )
    error: str | None = Field(
        None, description="The error the tool returned, when the call failed (else absent)."
    )


class ContextDoc(BaseModel):
    """One retrieved document the agent was given."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The document's id in its store.")
    text: str = Field(description="The text the agent saw.")


class Feedback(BaseModel):
    """What the user said about the answer, when they said something."""

    model_config = ConfigDict(extra="forbid")

    score: float | None = Field(
        None, description="Thumbs up 1 / down 0, or a rating on the application's own scale."
    )
    comment: str | None = Field(None, description="The user's free-text comment.")


class Trace(BaseModel):
    """One root run of the agent: what it was asked, what it did and answered, how it went."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, description="Unique id of the root run.")
    time: datetime = Field(description="When the run started (timezone-aware, UTC).")
    service: str | None = Field(None, description="The service that ran the agent.")
    environment: str | None = Field(None, description="Deployment environment, e.g. `prod`.")
    version: str | None = Field(None, description="The deployed agent version.")
    model: str | None = Field(
        None, description="The LLM behind the run, with its date stamp (gpt-4o-2024-08-06)."
    )
    inputs: dict[str, Any] = Field(description="What the agent received (a JSON object).")
    outputs: dict[str, Any] | None = Field(
        None, description="What it answered (a JSON object); absent when it failed."
    )
    latency_ms: float | None = Field(None, ge=0, description="Wall time of the run (ms).")
    error: str | None = Field(None, description="The error the run ended with, if any.")
    tool_calls: list[ToolCall] = Field(
        default_factory=list, description="Tools called, in order: `[{name, args}]`."
    )
    context: list[ContextDoc] = Field(
        default_factory=list, description="Retrieved context: `[{id, text}]`."
    )
    conversation_id: str | None = Field(
        None, description="The conversation this run belongs to (several runs share one)."
    )
    feedback: Feedback | None = Field(None, description="User feedback, when present.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free keys (region, channel, experiment arm…)."
    )

    @field_validator("time", mode="before")
    @classmethod
    def _utc_time(cls, value: Any) -> datetime:
        return to_utc(value)

    # -- JSONL form --------------------------------------------------------------------

    @classmethod
    def from_json_line(cls, line: str | bytes, where: str = "<trace>") -> Trace:
        """Parse one JSONL line; `where` (`path:line`) starts the error message."""
        try:
            return cls.model_validate_json(line)
        except ValidationError as exc:
            try:
                data = json.loads(line)
            except json.JSONDecodeError as jexc:
                raise TraceError(
                    f"{where}: not valid JSON ({jexc.msg} at column {jexc.colno}); "
                    "write one JSON object a line"
                ) from None
            except UnicodeDecodeError:
                raise TraceError(f"{where}: not UTF-8 text; write the file as UTF-8") from None
            if not isinstance(data, dict):
                raise TraceError(
                    f'{where}: not a JSON object; write e.g. {{"trace_id": "t-1", "time": '
                    f'"{TIME_EXAMPLE}", "inputs": {{…}}}}'
                ) from None
            raise TraceError(f"{where}: {describe(exc, data)}") from None

    def to_json(self) -> dict[str, Any]:
        """The JSONL form as a dict (time as ISO 8601 with `Z`)."""
        data = self.model_dump(mode="json")
        data["time"] = iso_utc(self.time)
        return data

    def to_json_line(self) -> str:
        return canonical_json(self.to_json())


FIELDS = tuple(Trace.model_fields)
REQUIRED = ("trace_id", "time", "inputs")

# what to write instead, by top-level field
_FIX = {
    "trace_id": 'a non-empty string, e.g. "t-0001"',
    "inputs": 'a JSON object, e.g. {"message": "…"}',
    "outputs": 'a JSON object, e.g. {"reply": "…"}, or leave it out',
    "latency_ms": "a number of milliseconds >= 0, e.g. 812.5",
    "tool_calls": 'a list of {"name": "…", "args": {…}} (and "error": "…" when it failed)',
    "context": 'a list of {"id": "…", "text": "…"}',
    "feedback": '{"score": 1, "comment": "…"}',
    "metadata": 'a JSON object, e.g. {"channel": "web"}',
}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unknown(loc: tuple[int | str, ...], data: Any) -> str:
    """Where an unknown key is, by its position in its object (`field 3 of
    tool_calls[0]`): the key itself is the input's, and may be personal data."""
    parent: Any = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            parent = None
            break
    within = f" of {_loc(loc[:-1])}" if len(loc) > 1 else ""
    if isinstance(parent, dict) and loc[-1] in parent:
        return f"field {list(parent).index(loc[-1]) + 1}{within} is unknown"
    return f"a field{within} is unknown"


def describe(err: ValidationError, data: Any = None) -> str:
    """A validation error as `field "x": problem; fix`, one clause per problem. An unknown
    key is named by its position in its object in `data` (the parsed input), never quoted."""
    parts = []
    for e in err.errors():
        loc = _loc(e["loc"])
        top = str(e["loc"][0]) if e["loc"] else ""
        fix = _FIX.get(top)
        if e["type"] == "missing" and len(e["loc"]) == 1:
            parts.append(f'missing field "{loc}"; every trace needs {", ".join(REQUIRED)}')
        elif e["type"] == "missing":
            parts.append(f'missing field "{loc}"; write {fix}')
        elif e["type"] == "extra_forbidden":
            nested = len(e["loc"]) > 1
            allowed = (
                _allowed(top) if nested else ", ".join(FIELDS) + " (put free keys under metadata)"
            )
            parts.append(f"{_unknown(e['loc'], data)}; allowed: {allowed}")
        elif e["type"] == "value_error":  # our validators: the message carries the fix
            parts.append(f'field "{loc}": {e["msg"].removeprefix("Value error, ")}')
        else:
            parts.append(f'field "{loc}": {e["msg"]}' + (f"; write {fix}" if fix else ""))
    return "; ".join(parts)


_NESTED: dict[str, type[BaseModel]] = {
    "tool_calls": ToolCall,
    "context": ContextDoc,
    "feedback": Feedback,
}


def _allowed(top: str) -> str:
    nested = _NESTED.get(top)
    return ", ".join(nested.model_fields) if nested else ""


def iso_utc(when: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, e.g. 2026-11-30T14:03:00.250Z (milliseconds when any)."""
    when = when.astimezone(UTC)
    spec = "milliseconds" if when.microsecond else "seconds"
    if when.microsecond % 1000:
        spec = "microseconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def to_utc(value: Any) -> datetime:
    """An ISO 8601 string (or aware datetime) in UTC; a time without an offset is rejected."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not ISO 8601; write e.g. {TIME_EXAMPLE}") from None
    else:
        raise ValueError(f"not an ISO 8601 string; write e.g. {TIME_EXAMPLE}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"no UTC offset (naive times are rejected); write e.g. {TIME_EXAMPLE} "
            "or 2026-11-30T15:03:00+01:00"
        )
    return when.astimezone(UTC)
