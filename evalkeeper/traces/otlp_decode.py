"""OTLP/HTTP trace export bodies in: protobuf or OTLP JSON, optionally gzip, to `Span`s.

`decode_export(body, content_type, content_encoding)` reads one `ExportTraceServiceRequest`
(`opentelemetry-proto`) and flattens it into `Span`s: ids as lowercase hex, attributes as
plain Python values, the resource's attributes shared by its spans. A body that cannot be
read raises `MalformedBody` (HTTP 400; JSON nested too deeply to read is one), an unknown content type or encoding
`UnsupportedMediaType` (415), a body over the limit after decompression `BodyTooLarge`
(413). A span without a valid trace or span id is not a span of any trace: it is rejected,
counted in `DecodedExport.rejected`, and named in `DecodedExport.reasons`.

`decode_logs(body, content_type, content_encoding)` reads an `ExportLogsServiceRequest`
the same way: its GenAI events (log records with an event name starting `gen_ai.`, e.g.
`gen_ai.client.inference.operation.details`, `gen_ai.user.message`, `gen_ai.choice`) become
`LogRecord`s, each with the trace and span id of the span it belongs to; a map body is
merged into its attributes (the shape span events have). A GenAI event without a valid
trace and span id is rejected (it cannot be joined to a span); other log records (plain
application logs) are ignored and counted.

OTLP JSON differs from protobuf's canonical JSON in its ids: `traceId`, `spanId`,
`parentSpanId` (and those of links) are hex strings, where `json_format` expects base64.
They are converted before `json_format.ParseDict`; int64 fields as strings, enums as
integers and lowerCamelCase names are read by `ParseDict` itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from evalkeeper.errors import InputError

__all__ = [
    "JSON",
    "PROTOBUF",
    "BodyTooLarge",
    "DecodedExport",
    "DecodedLogs",
    "ExportError",
    "LogRecord",
    "MalformedBody",
    "Span",
    "SpanEvent",
    "UnsupportedMediaType",
    "decode_export",
    "decode_logs",
    "encode_logs_response",
    "encode_response",
    "encode_status",
    "media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


class ExportError(InputError):
    """An export request that is answered with an error status instead of being read."""

    status_code = 400


class MalformedBody(ExportError):
    status_code = 400


class UnsupportedMediaType(ExportError):
    status_code = 415


class BodyTooLarge(ExportError):
    status_code = 413


@dataclass(slots=True)
class SpanEvent:
    """One span event: its name, time (ns since the epoch) and attributes."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class Span:
    """One OTLP span, flattened: ids in lowercase hex, attribute values as Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    scope: str = ""
    size: int = 0  # its encoded size (protobuf bytes): the assembler's memory estimate


@dataclass(slots=True)
class DecodedExport:
    """The spans of one export request, and the ones rejected (with why, a few examples)."""

    spans: list[Span]
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LogRecord:
    """One GenAI event sent as an OTLP log record, to be joined to its span (trace and span
    id, lowercase hex) as a span event: its event name, time (ns since the epoch) and
    attributes (a map body's fields merged in)."""

    trace_id: str
    span_id: str
    name: str
    time_ns: int
    attributes: dict[str, Any]
    size: int = 0  # its encoded size (protobuf bytes): the assembler's memory estimate


@dataclass(slots=True)
class DecodedLogs:
    """The GenAI events of one logs export; those rejected (no valid trace or span id, with
    why, a few examples); the other log records, ignored."""

    records: list[LogRecord]
    rejected: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)


GENAI_EVENT_PREFIX = "gen_ai."
"""Log records whose event name starts so are read (the GenAI events); others are ignored."""


def media_type(content_type: str | None) -> str:
    """`application/x-protobuf` or `application/json` from a Content-Type header, else raise."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if base == JSON:
        return JSON
    raise UnsupportedMediaType(
        f"Content-Type {content_type or '(none)'!r} is not supported for OTLP; "
        f"send {PROTOBUF} or {JSON}"
    )


def decode_export(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = 16 * 2**20,
) -> DecodedExport:
    """The spans of one OTLP/HTTP trace export body."""
    request = ExportTraceServiceRequest()
    _parse(body, content_type, content_encoding, max_bytes, request, _TRACES_PATH)
    return _flatten(request)


def decode_logs(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    *,
    max_bytes: int = 16 * 2**20,
) -> DecodedLogs:
    """The GenAI events of one OTLP/HTTP logs export body."""
    request = ExportLogsServiceRequest()
    _parse(body, content_type, content_encoding, max_bytes, request, _LOGS_PATH)
    return _flatten_logs(request)


def _parse(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    max_bytes: int,
    request: ExportTraceServiceRequest | ExportLogsServiceRequest,
    json_path: tuple[tuple[str, str], ...],
) -> None:
    """Fill `request` from an export body: its media type checked, decompressed within
    `max_bytes`, then parsed as protobuf or OTLP JSON."""
    kind = media_type(content_type)
    raw = _decompress(body, content_encoding, max_bytes)
    if kind != PROTOBUF:
        _parse_json(raw, request, json_path)
        return
    try:
        request.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        name = type(request).__name__
        raise MalformedBody(f"the body is not a protobuf {name}: {exc}") from exc


def encode_logs_response(kind: str, rejected: int = 0, message: str = "") -> bytes:
    """An `ExportLogsServiceResponse` in the request's encoding (partial success if any)."""
    response = ExportLogsServiceResponse()
    if rejected or message:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    if kind == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()


def encode_response(kind: str, rejected: int = 0, message: str = "") -> bytes:
    """An `ExportTraceServiceResponse` in the request's encoding (partial success if any)."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if kind == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response)).encode()


def encode_status(kind: str, code: int, message: str) -> bytes:
    """A `google.rpc.Status` (code, message) in the given encoding, for an error answer."""
    if kind != PROTOBUF:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding"
        )
    inflater = zlib.decompressobj(wbits=47 if enc != "deflate" else 15)  # 47: gzip or zlib
    try:
        raw = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise MalformedBody(f"the body is not valid {enc} data: {exc}") from exc
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise BodyTooLarge(
            f"the body is over {max_bytes:,} bytes once decompressed; export smaller batches "
            "(the exporter's max batch size) or raise EVALKEEPER_OTLP_MAX_BODY_BYTES"
        )
    if not inflater.eof:
        raise MalformedBody(f"the {enc} body is truncated")
    return raw


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")

# the lists down to the objects that carry hex ids: (camelCase, snake_case) per level
_TRACES_PATH = (
    ("resourceSpans", "resource_spans"),
    ("scopeSpans", "scope_spans"),
    ("spans", "spans"),
)
_LOGS_PATH = (
    ("resourceLogs", "resource_logs"),
    ("scopeLogs", "scope_logs"),
    ("logRecords", "log_records"),
)


def _parse_json(
    raw: bytes,
    request: ExportTraceServiceRequest | ExportLogsServiceRequest,
    path: tuple[tuple[str, str], ...] = _TRACES_PATH,
) -> None:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBody(f"the body is not JSON: {exc}") from exc
    except RecursionError:
        raise MalformedBody(
            "the body is JSON nested too deeply to read; an OTLP JSON export is a few levels "
            "deep (attribute values at most 100)"
        ) from None
    name = type(request).__name__
    (res_c, res_s), (scope_c, scope_s), (item_c, item_s) = path
    if not isinstance(doc, dict):
        raise MalformedBody(
            f'the body is not an OTLP JSON {name}: expected an object with "{res_c}"'
        )
    for i, rs in enumerate(_list(doc, res_c, res_s, where="")):
        for j, ss in enumerate(_list(rs, scope_c, scope_s, where=f"{res_c}[{i}]")):
            where = f"{res_c}[{i}].{scope_c}[{j}]"
            for k, item in enumerate(_list(ss, item_c, item_s, where=where)):
                _hex_ids_to_base64(item, f"{where}.{item_c}[{k}]")
                for n, link in enumerate(_list(item, "links", "links", where=where)):
                    _hex_ids_to_base64(link, f"{where}.{item_c}[{k}].links[{n}]")
    try:  # ParseDict refuses values nested over 100 levels (its max_recursion_depth)
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except RecursionError:
        raise MalformedBody("the body is JSON nested too deeply to read") from None
    except json_format.ParseError as exc:
        raise MalformedBody(f"the body is not an OTLP JSON {name}: {exc}") from exc


def _list(obj: Any, camel: str, snake: str, *, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise MalformedBody(f"{where or 'the body'}: expected an object, got {type(obj).__name__}")
    value = obj.get(camel, obj.get(snake, []))
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedBody(f"{where}.{camel}: expected a list, got {type(value).__name__}")
    return value


def _hex_ids_to_base64(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise MalformedBody(f"{where}: expected an object, got {type(obj).__name__}")
    for key in _ID_FIELDS:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise MalformedBody(f"{where}.{key}: expected a hex string, got {value!r}")
        try:
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise MalformedBody(
                f"{where}.{key}: {value!r} is not hex; OTLP JSON writes ids as hex, "
                'e.g. "5b8efff798038103d269b633813fc60c"'
            ) from None


def _flatten(request: ExportTraceServiceRequest) -> DecodedExport:
    out = DecodedExport(spans=[])
    for rs in request.resource_spans:
        resource = _attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for s in ss.spans:
                problem = _id_problem(s.trace_id, 16, "trace_id") or _id_problem(
                    s.span_id, 8, "span_id"
                )
                if problem is None and s.parent_span_id and len(s.parent_span_id) != 8:
                    problem = f"parent_span_id has {len(s.parent_span_id)} bytes, not 8"
                if problem is not None:
                    out.rejected += 1
                    if len(out.reasons) < 3:
                        out.reasons.append(f"span {s.name!r}: {problem}")
                    continue
                out.spans.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=s.kind,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=_attributes(s.attributes),
                        resource=resource,
                        status_code=s.status.code,
                        status_message=s.status.message,
                        events=[
                            SpanEvent(e.name, e.time_unix_nano, _attributes(e.attributes))
                            for e in s.events
                        ],
                        scope=scope,
                        size=s.ByteSize(),
                    )
                )
    return out


def _flatten_logs(request: ExportLogsServiceRequest) -> DecodedLogs:
    out = DecodedLogs(records=[])
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for r in sl.log_records:
                attributes = _attributes(r.attributes)
                name = r.event_name or str(attributes.get("event.name") or "")
                if not name.startswith(GENAI_EVENT_PREFIX):
                    out.ignored += 1
                    continue
                problem = _id_problem(r.trace_id, 16, "trace_id") or _id_problem(
                    r.span_id, 8, "span_id"
                )
                if problem is not None:
                    out.rejected += 1
                    if len(out.reasons) < 3:
                        out.reasons.append(f"log record {name!r}: {problem}")
                    continue
                body = _value(r.body) if r.HasField("body") else None
                if isinstance(body, dict):
                    attributes.update(body)
                elif body is not None and body != "":
                    attributes.setdefault("gen_ai.event.content", body)
                out.records.append(
                    LogRecord(
                        trace_id=r.trace_id.hex(),
                        span_id=r.span_id.hex(),
                        name=name,
                        time_ns=r.time_unix_nano or r.observed_time_unix_nano,
                        attributes=attributes,
                        size=r.ByteSize(),
                    )
                )
    return out


def _id_problem(value: bytes, size: int, name: str) -> str | None:
    if len(value) != size:
        return f"{name} has {len(value)} bytes, not {size}"
    if not any(value):
        return f"{name} is all zeros (invalid)"
    return None


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return binascii.hexlify(v.bytes_value).decode()
    return None
