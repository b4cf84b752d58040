"""The scan behind the phone windows: `_LONG_SEGMENT_RE`'s case-free class is the
case-insensitive `SEGMENT_RE` class, and the windows are the runs of candidate characters
cut at commas between numbers, with `MIN_DIGITS` digits or more (a run without a comma is
taken whole, as its digits were counted by the pattern)."""

from __future__ import annotations

import random
import re

from evalkeeper.traces.phones import (
    _C,
    _LIST_COMMA_RE,
    CANDIDATE_CHARS,
    MIN_DIGITS,
    SEGMENT_RE,
    windows,
)


def test_case_free_class_is_the_case_insensitive_one() -> None:
    insensitive = re.compile(rf"[\d{re.escape(CANDIDATE_CHARS)}]", re.IGNORECASE)
    written = re.compile(rf"[\d{_C}]")
    differ = [
        hex(c)
        for c in range(0x110000)
        if bool(insensitive.fullmatch(chr(c))) != bool(written.fullmatch(chr(c)))
    ]
    assert differ == []


def _reference(text: str) -> list[tuple[int, int]]:
    out = []
    for run in SEGMENT_RE.finditer(text):
        pos = run.start()
        for cut in _LIST_COMMA_RE.finditer(text, run.start(), run.end()):
            out.append((pos, cut.start()))
            pos = cut.end()
        out.append((pos, run.end()))
    return [(a, b) for a, b in out if sum(c.isdecimal() for c in text[a:b]) >= MIN_DIGITS]


def test_windows_are_the_cut_runs_with_enough_digits() -> None:
    rng = random.Random(20261208)
    chars = "0123456789０٣ ,,.-()+/xXeEOıſДдabcZ\n;#"
    texts = ["030 901820, 030 901821", "call 555-0100 or 555-0101", "tel +49 30 901820"]
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 80))) for _ in range(5000)]
    for text in texts:
        assert windows(text) == _reference(text), text
