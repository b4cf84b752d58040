"""Decoding OTLP/HTTP bodies: the SDK's own protobuf encoding, OTLP JSON with hex ids,
gzip, and the errors that become 400/413/415."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from evalkeeper.traces.otlp import (
    BodyTooLarge,
    MalformedBody,
    UnsupportedMediaType,
    decode_export,
    media_type,
)
from tests.otlp_helpers import protobuf_body, tracer


def _sdk_spans() -> list:
    provider, memory = tracer()
    t = provider.get_tracer("decode")
    with t.start_as_current_span("root") as root:
        root.set_attribute("n", 3)
        root.set_attribute("ratio", 0.5)
        root.set_attribute("ok", True)
        root.set_attribute("tags", ["a", "b"])
        root.add_event("gen_ai.user.message", {"content": "hello"})
        with t.start_as_current_span("child"):
            pass
    return list(memory.get_finished_spans())


def test_protobuf_from_the_sdk_encoder() -> None:
    sdk = _sdk_spans()
    export = decode_export(protobuf_body(sdk), "application/x-protobuf", None)
    assert export.rejected == 0
    by_name = {s.name: s for s in export.spans}
    root, child = by_name["root"], by_name["child"]
    assert root.trace_id == f"{sdk[0].context.trace_id:032x}"
    assert child.parent_span_id == root.span_id and root.parent_span_id == ""
    assert root.attributes == {"n": 3, "ratio": 0.5, "ok": True, "tags": ["a", "b"]}
    assert root.resource["service.name"] == "scheduler-agent"
    assert root.resource is child.resource  # one dict per resource, shared
    assert root.events[0].name == "gen_ai.user.message"
    assert root.events[0].attributes == {"content": "hello"}
    assert root.scope == "decode"


def test_gzip_and_deflate_bodies() -> None:
    body = protobuf_body(_sdk_spans())
    for encoded, encoding in ((gzip.compress(body), "gzip"), (zlib.compress(body), "deflate")):
        assert len(decode_export(encoded, "application/x-protobuf", encoding).spans) == 2


def test_otlp_json_hex_ids_and_string_int64() -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "",
                                "name": "x",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "k", "value": {"intValue": "9007199254740993"}}],
                                "links": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b173"}],
                                "kind": 2,
                            }
                        ]
                    }
                ]
            }
        ]
    }  # fmt: skip
    (s,) = decode_export(json.dumps(doc).encode(), "application/json; charset=utf-8").spans
    assert s.trace_id == "5b8efff798038103d269b633813fc60c"
    assert s.start_ns == 1544712660000000000 and s.kind == 2
    assert s.attributes["k"] == 9007199254740993  # beyond a float's precision: kept exact


def test_invalid_ids_are_rejected_with_a_reason() -> None:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b174", "name": "zeros"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "name": "no span id"},
    ]}]}]}  # fmt: skip
    export = decode_export(json.dumps(doc).encode(), "application/json")
    assert (export.spans, export.rejected) == ([], 2)
    assert "span 'zeros': trace_id is all zeros" in export.reasons[0]
    assert "span_id has 0 bytes" in export.reasons[1]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"[1, 2]", "expected an object"),
        (b'{"resourceSpans": {"a": 1}}', "resourceSpans: expected a list"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}', "traceId: expected a hex string"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "not an OTLP JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
)  # fmt: skip
def test_malformed_json(body: bytes, match: str) -> None:
    with pytest.raises(MalformedBody, match=match):
        decode_export(body, "application/json")


def test_truncated_gzip_is_malformed() -> None:
    data = gzip.compress(protobuf_body(_sdk_spans()))
    with pytest.raises(MalformedBody, match="truncated"):
        decode_export(data[: len(data) // 2], "application/x-protobuf", "gzip")


def test_decompressed_size_is_limited() -> None:
    bomb = gzip.compress(b"\x00" * 100_000)
    with pytest.raises(BodyTooLarge, match="decompressed"):
        decode_export(bomb, "application/x-protobuf", "gzip", max_bytes=10_000)


def test_media_types() -> None:
    assert media_type("application/x-protobuf") == "application/x-protobuf"
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    with pytest.raises(UnsupportedMediaType, match="send application/x-protobuf or"):
        media_type("text/plain")
    with pytest.raises(UnsupportedMediaType, match="none"):
        media_type(None)
    with pytest.raises(UnsupportedMediaType, match="zstd"):
        decode_export(b"", "application/json", "zstd")
