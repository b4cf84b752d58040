"""OpenTelemetry traces over OTLP/HTTP to evalkeeper traces: decode, assemble, map.

    export = decode_export(body, content_type, content_encoding)   # -> DecodedExport
    assembler.add(export.spans)                                     # spans by trace id
    assembler.add_records(decode_logs(body, ...).records)           # GenAI log records
    for spans in assembler.due():                                   # whole traces
        trace = map_trace(spans)                                    # trace JSONL form

The pieces live in `otlp_decode` (bodies to `Span`s), `assembler` (spans to traces,
bounded), `otlp_map` (GenAI, OpenInference and Traceloop attributes to a trace dict),
`otlp_spans` (what one span says: answered model, tool arguments, error) and
`otlp_messages` (the message shapes of the conventions).
"""

from __future__ import annotations

from evalkeeper.traces.assembler import (
    AddResult,
    Assembler,
    AssemblerStats,
    BufferFull,
    RecordsResult,
    record_cost,
    span_cost,
)
from evalkeeper.traces.otlp_decode import (
    JSON,
    PROTOBUF,
    BodyTooLarge,
    DecodedExport,
    DecodedLogs,
    ExportError,
    LogRecord,
    MalformedBody,
    Span,
    SpanEvent,
    UnsupportedMediaType,
    decode_export,
    decode_logs,
    encode_logs_response,
    encode_response,
    encode_status,
    media_type,
)
from evalkeeper.traces.otlp_map import find_root, map_trace

__all__ = [
    "JSON",
    "PROTOBUF",
    "AddResult",
    "Assembler",
    "AssemblerStats",
    "BodyTooLarge",
    "BufferFull",
    "DecodedExport",
    "DecodedLogs",
    "ExportError",
    "LogRecord",
    "MalformedBody",
    "RecordsResult",
    "Span",
    "SpanEvent",
    "UnsupportedMediaType",
    "decode_export",
    "decode_logs",
    "encode_logs_response",
    "encode_response",
    "encode_status",
    "find_root",
    "map_trace",
    "media_type",
    "record_cost",
    "span_cost",
]
