"""The digit-token scan behind `protected_spans`: its look-behind only skips attempts
inside a word, so it finds exactly the whitespace-delimited tokens holding a digit."""

from __future__ import annotations

import random
import re

from evalkeeper.traces.detectors import _DIGIT_TOKEN_RE

_ANY_TOKEN_RE = re.compile(r"\S+")
_A_DIGIT_RE = re.compile(r"\d")


def test_digit_tokens_are_the_tokens_holding_a_digit() -> None:
    rng = random.Random(20261130)
    chars = "0123456789 ,.:-/()$€'\"[]{}«»¿¡!?;\t\n\u00a0\u2003aZxé٣²+_<>"
    texts = ["", " ", "abc", "ab1", "1ab", "a 1 b", "x٣y", "²³", "Nov 30, 2026 at 14:30"]
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 60))) for _ in range(5000)]
    for text in texts:
        expected = [m.span() for m in _ANY_TOKEN_RE.finditer(text) if _A_DIGIT_RE.search(m.group())]
        assert [m.span() for m in _DIGIT_TOKEN_RE.finditer(text)] == expected, text
