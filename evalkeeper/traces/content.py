"""Traces without content: never stored in silence.

An instrumentation with content capture off still sends its spans (the model, the tokens,
the latency), but no messages: the trace is stored without inputs or outputs, and replay
or judging it later has nothing to work with. Such a trace is marked, counted and warned
about once per service, with the setting that turns capture on.

- `missing_content(inputs, outputs, error)`: which of `inputs` / `outputs` are missing
  (outputs only count when the run did not fail: a failed run has none);
- `mark_empty(trace, spans)`: on a trace dict mapped from OTLP spans, `metadata.content_missing`
  (the list) and `metadata.content_hint` (the likely cause and the setting that fixes it,
  for the instrumentation the spans come from);
- `EmptyTraces`: the counter (total, per service) and the warnings, logged once per service
  per process; `counts()` is what `GET /health` and the ingest summary show.

The settings named are the ones the packages read (checked in their source):
OpenTelemetry GenAI (`opentelemetry-instrumentation-openai-v2` with `opentelemetry-util-genai`)
reads `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` as `NO_CONTENT` (default),
`SPAN_ONLY`, `EVENT_ONLY` or `SPAN_AND_EVENT` (case-insensitive): anything else, `true`
included, means no content; OpenInference hides content when `OPENINFERENCE_HIDE_INPUTS`,
`OPENINFERENCE_HIDE_OUTPUTS`, `OPENINFERENCE_HIDE_INPUT_MESSAGES` or
`OPENINFERENCE_HIDE_OUTPUT_MESSAGES` is true; Traceloop records content unless
`TRACELOOP_TRACE_CONTENT` is not `true`, and in events mode (`Traceloop.init(use_attributes=
False)`) sends it as log records through the global LoggerProvider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalkeeper.traces.otlp_decode import Span

__all__ = [
    "CONTENT_HINT",
    "CONTENT_MISSING",
    "HINTS",
    "EmptyTraces",
    "capture_hint",
    "has_content",
    "mark_empty",
    "missing_content",
]

log = logging.getLogger(__name__)

CONTENT_MISSING = "content_missing"
"""The metadata key listing what a trace was stored without (`inputs`, `outputs`)."""
CONTENT_HINT = "content_hint"
"""The metadata key holding the likely cause and the setting that fixes it."""

HINTS: dict[str, str] = {
    "opentelemetry-genai": (
        "OpenTelemetry GenAI instrumentation (e.g. opentelemetry-instrumentation-openai-v2) "
        "records no message content unless OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT "
        "is span_only (messages on the spans) or event_only (messages as log records: also "
        "export logs to this server's /v1/logs); `true` means no content in current versions"
    ),
    "openinference": (
        "OpenInference hides inputs and outputs when OPENINFERENCE_HIDE_INPUTS, "
        "OPENINFERENCE_HIDE_OUTPUTS, OPENINFERENCE_HIDE_INPUT_MESSAGES or "
        "OPENINFERENCE_HIDE_OUTPUT_MESSAGES is true: unset them"
    ),
    "traceloop": (
        "Traceloop (traceloop-sdk / OpenLLMetry) records content only with "
        "TRACELOOP_TRACE_CONTENT=true (the default); in events mode "
        "(Traceloop.init(use_attributes=False)) the messages are log records: set a global "
        "LoggerProvider exporting to this server's /v1/logs"
    ),
    "unknown": (
        "the instrumentation sent no message content: turn content capture on "
        "(OpenTelemetry GenAI: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only, "
        "or event_only with logs exported to /v1/logs; OpenInference: unset "
        "OPENINFERENCE_HIDE_INPUTS/OUTPUTS; Traceloop: TRACELOOP_TRACE_CONTENT=true)"
    ),
}


HIDDEN = "__REDACTED__"
"""What OpenInference writes in place of the content it hides (`OPENINFERENCE_HIDE_*`)."""
_NOT_CONTENT_KEYS = frozenset({"role", "type"})


def has_content(value: Any) -> bool:
    """Whether `value` holds any content: a text other than blank or OpenInference's
    `__REDACTED__`, or a number, anywhere in it (message roles and part types aside)."""
    if isinstance(value, str):
        return value.strip() not in ("", HIDDEN)
    if isinstance(value, dict):
        return any(has_content(v) for k, v in value.items() if k not in _NOT_CONTENT_KEYS)
    if isinstance(value, list | tuple):
        return any(has_content(v) for v in value)
    return value is not None and not isinstance(value, bool)


def missing_content(inputs: Any, outputs: Any, error: Any) -> list[str]:
    """`inputs` and/or `outputs` when they hold no content (outputs only if the run did not
    fail: a failed run has none)."""
    missing = []
    if not has_content(inputs):
        missing.append("inputs")
    if not has_content(outputs) and not error:
        missing.append("outputs")
    return missing


def instrumentation(spans: Sequence[Span]) -> str:
    """Which instrumentation the spans come from (a key of `HINTS`)."""
    keys = {k for s in spans for k in s.attributes}
    scopes = {s.scope for s in spans}
    if any(k.startswith("traceloop.") for k in keys) or any(
        sc.startswith("traceloop") or sc.startswith("opentelemetry.instrumentation.openai.v")
        for sc in scopes
    ):
        return "traceloop"
    if any(k.startswith(("openinference.", "llm.", "input.", "output.")) for k in keys) or any(
        sc.startswith("openinference") for sc in scopes
    ):
        return "openinference"
    if any(k.startswith("gen_ai.") for k in keys):
        return "opentelemetry-genai"
    return "unknown"


def capture_hint(spans: Sequence[Span]) -> str:
    """The likely cause of a trace without content, and the setting that fixes it."""
    return HINTS[instrumentation(spans)]


def mark_empty(trace: dict[str, Any], spans: Sequence[Span]) -> None:
    """Note on `trace` (a mapped trace dict) what it lacks and why, if anything."""
    missing = missing_content(trace.get("inputs"), trace.get("outputs"), trace.get("error"))
    if missing:
        metadata = trace.setdefault("metadata", {})
        metadata[CONTENT_MISSING] = missing
        metadata[CONTENT_HINT] = capture_hint(spans)


MAX_WARNINGS = 100
"""Services warned about, at most (the counts go on)."""


class EmptyTraces:
    """Counts traces without content, per service, and warns once per service (per
    process): the warning names the likely cause and the setting that fixes it."""

    def __init__(self, what: str = "OTLP", *, log_warnings: bool = True) -> None:
        self.what = what
        self.log_warnings = log_warnings
        self.total = 0
        self.by_service: dict[str, int] = {}
        self.warnings: dict[str, str] = {}

    def see(self, trace: Mapping[str, Any]) -> bool:
        """Count `trace` if it lacks inputs or outputs (a trace dict or its `to_json()`);
        True if it did."""
        metadata = trace.get("metadata") or {}
        missing = metadata.get(CONTENT_MISSING) or missing_content(
            trace.get("inputs"), trace.get("outputs"), trace.get("error")
        )
        if not missing:
            return False
        service = str(trace.get("service") or "(no service.name)")
        self.total += 1
        self.by_service[service] = self.by_service.get(service, 0) + 1
        if service not in self.warnings and len(self.warnings) < MAX_WARNINGS:
            hint = metadata.get(CONTENT_HINT) or HINTS["unknown"]
            self.warnings[service] = (
                f"service {service}: trace {trace.get('trace_id')} was stored without "
                f"{' or '.join(missing)} (content capture is likely off): {hint}"
            )
            if self.log_warnings:
                log.warning("%s: %s", self.what, self.warnings[service])
        return True

    def counts(self) -> dict[str, Any]:
        return {
            "empty_traces": self.total,
            "empty_by_service": dict(self.by_service),
            "warnings": list(self.warnings.values()),
        }
