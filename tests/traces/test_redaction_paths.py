"""The redactor's fast paths against the plain computations they replace.

- The redacted traces of a seeded benchmark corpus are, byte for byte, what the redactor
  gave before the speed work (commit c8855f0): the digest below was recorded with that
  code, and the same digest comes out of the present one. A change of output (on purpose)
  changes the digest: record the new one, and say why in the commit.
- `windows` (one possessive regular expression) against its definition: the runs of
  candidate characters with `MIN_DIGITS` digits or more, cut at commas between numbers.
- `rewindow` (after masking, only the runs a mask touches) against `windows` of the
  masked text.
- `mask` (slices) against masking character by character.
- The detector's one pattern of every configured international prefix against each
  region's own.
- The redactor's tokens (HMAC written out, its keyed states copied per value) against
  `token_for` (`hmac.digest`), for short, block-long and longer keys.
- `redact_json` (type checks by exact type first, the key cache read directly, kinds
  counted once) against its definition, on random nested values of every type.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import IntEnum
from itertools import count
from typing import Any

import pytest

from benchmarks.redaction import make_corpus, make_traces, make_typical_traces
from evalkeeper.settings import DEFAULT_REDACTION_REGIONS
from evalkeeper.traces.batch import _redact_all
from evalkeeper.traces.detectors import mask, protected_spans
from evalkeeper.traces.model import Trace
from evalkeeper.traces.phones import (
    _LIST_COMMA_RE,
    MIN_DIGITS,
    SEGMENT_RE,
    PhoneDetector,
    _segments,
    international,
    rewindow,
    windows,
)
from evalkeeper.traces.redaction import (
    KINDS,
    BuiltinRedactor,
    RedactionConfig,
    _TokenHasher,
    redact_json,
    token_for,
)
from tests.traces.test_phone_oracle import CJK, PIECES

# sha256 of the redacted traces (JSON, sorted keys), and the findings, as recorded with
# the redactor of commit c8855f0 (before the speed work of issue 18)
GOLDEN = "4b933ad095a87522e41974478df9d503e3baee49581602ef5e3f1441311f4154"
GOLDEN_COUNTS = {"CARD": 445, "EMAIL": 474, "IBAN": 401, "NAME": 478, "PHONE": 952}


def test_the_redacted_benchmark_traces_are_what_they_were_before_the_speed_work() -> None:
    corpus = make_corpus(20, 7)  # 260 messages, 13 locales
    rows = make_traces(corpus, 7) + make_typical_traces(corpus, 7)
    traces = [
        Trace.model_validate(r | {"time": datetime(2026, 11, 30, 12, tzinfo=UTC)}) for r in rows
    ]
    redactor = BuiltinRedactor(RedactionConfig(names=tuple(corpus.names)), b"golden-test-key-0123")
    out, counts = _redact_all(traces, redactor)
    blob = json.dumps([t.model_dump(mode="json") for t in out], sort_keys=True, ensure_ascii=False)
    assert dict(sorted(counts.items())) == GOLDEN_COUNTS
    assert hashlib.sha256(blob.encode()).hexdigest() == GOLDEN


def _texts() -> list[str]:
    rng = random.Random(20261130)
    texts = [m.text for m in make_corpus(10, 11).messages] + CJK
    texts += ["".join(rng.choice(PIECES) for _ in range(rng.randint(5, 80))) for _ in range(3000)]
    return texts


def _windows_by_definition(text: str) -> list[tuple[int, int]]:
    """Every maximal run of candidate characters, cut at commas between numbers; the
    pieces with `MIN_DIGITS` digits or more."""

    def digits(s: str) -> int:
        return sum(c.isdecimal() for c in s)

    out = []
    for run in SEGMENT_RE.finditer(text):
        pos = run.start()
        for cut in _LIST_COMMA_RE.finditer(run.group()):
            if digits(text[pos : run.start() + cut.start()]) >= MIN_DIGITS:
                out.append((pos, run.start() + cut.start()))
            pos = run.start() + cut.end()
        if digits(text[pos : run.end()]) >= MIN_DIGITS:
            out.append((pos, run.end()))
    return out


def test_windows_are_the_runs_with_enough_digits() -> None:
    texts = [*_texts(), "a" * 3000 + " 1 2 3 " * 50 + "0301234567", "x1" * 2000]
    found = 0
    for text in texts:
        expected = _windows_by_definition(text)
        assert windows(text) == expected, text
        found += len(expected)
    assert found > 1000


def test_after_masking_only_the_touched_runs_are_searched_again() -> None:
    rng = random.Random(7)
    changed = 0
    for text in _texts():
        segments = _segments(text)
        spans = protected_spans(text)
        spans += [
            (s, s + rng.randint(1, 6)) for s in rng.sample(range(len(text)), min(2, len(text)))
        ]
        spans = [(s, min(e, len(text))) for s, e in spans]
        masked = mask(text, spans)
        assert rewindow(masked, segments, spans) == windows(masked), (text, spans)
        changed += windows(masked) != windows(text)
    assert changed > 500  # the masks did change windows


def test_mask_replaces_exactly_the_characters_of_the_spans() -> None:
    rng = random.Random(3)
    for _ in range(20000):
        text = "".join(rng.choice("ab c1電") for _ in range(rng.randint(0, 30)))
        spans = []
        for _ in range(rng.randint(0, 4)):
            s = rng.randint(0, len(text))
            spans.append((s, rng.randint(s, len(text))))
        inside = {i for s, e in spans for i in range(s, e)}
        expected = "".join("_" if i in inside else c for i, c in enumerate(text))
        assert mask(text, spans) == expected, (text, spans)
    assert mask("abc", []) == "abc" and mask("abc", [(1, 1)]) == "abc"
    assert re.fullmatch("_+", mask("0301234567", [(0, 10)]))


def test_the_combined_international_prefix_misses_no_region() -> None:
    """The detector asks each region for an international prefix only when the combined
    pattern starts the digits: it must start them whenever some region's prefix does."""
    detector = PhoneDetector([*DEFAULT_REDACTION_REGIONS, "RU", "HU", "TH"])
    rng = random.Random(5)
    read_abroad = 0
    for _ in range(20000):
        digits = rng.choice(["0", "00", "01", "011", "8", "810", "1", ""]) + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(4, 12))
        )
        if any(international(s, digits) for s in detector._screens):
            read_abroad += 1
            assert detector._any_idd is not None and detector._any_idd.match(digits), digits
    assert read_abroad > 2000


@pytest.mark.parametrize("key", [b"k", b"golden-test-key-0123", bytes(range(64)), bytes(100)])
def test_the_redactors_tokens_are_token_for_of_hmac_digest(key: bytes) -> None:
    # the redactor's HMAC written out (states copied per value) against `hmac.digest`
    hasher = _TokenHasher(key)
    rng = random.Random(3)
    for kind in KINDS:
        for value in ["", "+441914960072", "jane@example.com", "Zoë Weiß", "x" * 200]:
            assert hasher.token(kind, value) == token_for(key, kind, value)
        for _ in range(50):
            value = "".join(rng.choice("ab9+@é\x00 ") for _ in range(rng.randint(0, 80)))
            assert hasher.token(kind, value) == token_for(key, kind, value)


class _Text(str):
    """A subclass of str (walked as a string)."""


def _redact_json_plainly(value: Any, redactor: BuiltinRedactor) -> tuple[Any, Counter[str]]:
    """`redact_json` by its definition: every string through `redact` (no cache), keys
    included, a taken key numbered, findings counted one by one."""
    counts: Counter[str] = Counter()

    def text(v: str) -> str:
        out, findings = redactor.redact(v)
        counts.update(f.kind for f in findings)
        return out

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, Mapping):
            out: dict[Any, Any] = {}
            for k, x in v.items():
                if isinstance(k, str):
                    k = text(k)
                    if k in out:
                        k = next(f"{k} #{n}" for n in count(2) if f"{k} #{n}" not in out)
                out[k] = walk(x)
            return out
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value), counts


def test_redact_json_walks_every_type_as_its_definition_does() -> None:
    rng = random.Random(5)
    texts = [m.text for m in make_corpus(2, 13).messages] + ["role", "ada@x.org", "Ada@X.org"]
    corpus_names = make_corpus(2, 13).names
    leaves: list[Any] = [1, 2.5, True, False, None, IntEnum("E", "A").A, b"raw", 10**30]

    def value(depth: int) -> Any:
        pick = rng.random()
        if depth > 3 or pick < 0.4:
            leaf = rng.choice([*leaves, *texts])
            return _Text(leaf) if isinstance(leaf, str) and rng.random() < 0.2 else leaf
        items = [(rng.choice(texts), value(depth + 1)) for _ in range(rng.randint(0, 4))]
        if pick < 0.6:
            return dict(items) | {3: "ada@x.org"}
        if pick < 0.7:
            return OrderedDict(items)
        return [v for _, v in items] if pick < 0.85 else tuple(v for _, v in items)

    for _ in range(40):
        v = value(0)
        fast = BuiltinRedactor(RedactionConfig(names=tuple(corpus_names)), b"walk-key")
        plain = BuiltinRedactor(RedactionConfig(names=tuple(corpus_names)), b"walk-key")
        got, counts = redact_json(v, fast)
        want, want_counts = _redact_json_plainly(v, plain)
        assert repr(got) == repr(want)  # the same values, keys in the same order
        assert counts == want_counts
