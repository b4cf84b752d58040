"""The phone detector's fast path (one `phonenumbers.parse` of a plain window) against
`PhoneNumberMatcher` itself: the detector with `fast=False` runs the matcher for every
(window, region) pair, and both must find the same numbers, span for span and E.164 for
E.164, on the Faker corpus of benchmarks/redaction.py, on variants of it written
differently, and on the phone cases of test_redaction.py."""

from __future__ import annotations

import random

import phonenumbers as pn
import pytest

from benchmarks.redaction import Corpus, make_corpus
from evalkeeper.settings import DEFAULT_REDACTION_REGIONS
from evalkeeper.traces.phone_match import matcher_matches, parse_whole, plain
from evalkeeper.traces.phones import WINDOW_RE, PhoneDetector

SEED = 20261130
CASES = [
    "please call 090-3640-5259 today",
    "please call 08808125559 today",
    "please call (0191) 4960072 today",
    "(0191) 4960072 or +44 191 496 0072",
    "090-3640-5259 and +81 90-3640-5259",
    "08808125559, +49 8808 125559",
    "(202) 555-0143 / +1 202-555-0143",
    "04 15 39 15 00 or +33 4 15 39 15 00",
    "206.269.0743x9150 or +1 206 269 0743",
    "Ada Lovelace, ada@example.com, +44 191 496 0072, 12345678 x",
    "Epoch 1764511380 and 1764511380000 in milliseconds.",
    "Version v2.3.1, 12.5% off, a 20261130 batch, and 99 problems.",
    "Card-like but Luhn-invalid: 4111 1111 1111 1112 and 4111111111111112.",
    "Booked for 30/11/2026, or 11-30-26, or 30.11.2026.",
]
# Windows the matcher does not take whole: a slash date, a bracket opened and not closed, a
# page reference, a second number after a slash, a trailing bracket.
NOT_PLAIN = ["12/31/2020 5550143", "0191 (4960072", "12-15 (2001 4960072"]
NOT_PLAIN += ["0191 4960072 / x12", "(0191) 4960072)"]


def _variants(text: str, rng: random.Random) -> str:
    """`text` written differently: runs of spaces, tabs, no parentheses, dots for spaces,
    00 for +, slashes, upper case: windows the fast path must hand to the matcher."""
    edits = [
        lambda s: s.replace(" ", "  ", 3),
        lambda s: s.replace(" ", "\t", 2),
        lambda s: s.replace("-", " "),
        lambda s: s.replace("(", ""),
        lambda s: s.replace(")", ""),
        lambda s: s.replace(" ", ".", 4),
        lambda s: s.replace("+", "00"),
        lambda s: s.replace(" ", "/", 3),
        lambda s: s.upper(),
    ]
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(edits)(text)
    return text


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus(60, SEED)


@pytest.fixture(scope="module")
def texts(corpus: Corpus) -> list[str]:
    """The corpus's messages (cards, IBANs and emails unmasked: more windows that are no
    phone number), the same written differently, its phone numbers alone, the cases."""
    rng = random.Random(SEED)
    out = [m.text for m in corpus.messages] + _phones(corpus)
    return out + [_variants(t, rng) for t in out] + CASES + NOT_PLAIN


def _phones(corpus: Corpus) -> list[str]:
    return [v for m in corpus.messages for k, v in m.pii if k == "PHONE"]


@pytest.mark.parametrize("policy", ["hybrid", "possible", "valid"])
def test_fast_path_finds_what_the_matcher_finds(texts: list[str], policy: str) -> None:
    fast = PhoneDetector(DEFAULT_REDACTION_REGIONS, policy)  # type: ignore[arg-type]
    matcher = PhoneDetector(DEFAULT_REDACTION_REGIONS, policy, fast=False)  # type: ignore[arg-type]
    differ = [(t, f, m) for t in texts if (f := fast.find(t)) != (m := matcher.find(t))]
    assert not differ, differ[:3]
    assert sum(len(matcher.find(t)) for t in texts) > len(texts)  # numbers were there
    # the same (window, region) pairs judged, by the matcher alone when fast=False
    assert fast.region_runs == matcher.region_runs == matcher.matcher_runs


def test_the_corpus_phone_numbers_seldom_need_the_matcher(corpus: Corpus) -> None:
    fast = PhoneDetector(DEFAULT_REDACTION_REGIONS)
    for text in _phones(corpus):
        fast.find(text)
    assert fast.matcher_runs < fast.region_runs / 20


def test_a_plain_window_parses_to_the_matchers_only_match(texts: list[str]) -> None:
    """Window by window, region by region: where the fast path answers, the matcher gives
    exactly that one match, the whole window, the same number."""
    windows = {w.group() for t in texts for w in WINDOW_RE.finditer(t)}
    answered = 0
    for window in sorted(windows):
        if not plain(window):
            continue
        for region in ("ZZ", "US", "GB", "DE", "JP", "BR", "FR"):
            number = parse_whole(window, region)
            if number is None:
                continue
            answered += 1
            found = [(m.start, m.end, m.number) for m in matcher_matches(window, region)]
            assert found == [(0, len(window), number)], (window, region)
    assert answered > 1000


@pytest.mark.parametrize("window", NOT_PLAIN)
def test_windows_the_matcher_would_trim_or_split_are_not_plain(window: str) -> None:
    assert not plain(window)


def test_a_window_that_does_not_parse_whole_goes_to_the_matcher() -> None:
    """`+1 532752` is no possible number for the whole window: the matcher is asked."""
    detector = PhoneDetector(["US", "GB"])
    assert plain("+1 532752") and parse_whole("+1 532752", "ZZ") is None
    detector.find("call +1 532752 now")
    assert detector.matcher_runs == detector.region_runs > 0
    assert pn.is_possible_number(pn.parse("+44 191 496 0072"))
    before = detector.matcher_runs
    assert [h.value for h in detector.find("call +44 191 496 0072 now")] == ["+441914960072"]
    assert detector.matcher_runs == before  # a plain window: no matcher run
