"""The built-in detectors except phones: emails, IBANs, card numbers, names, patterns; and
the spans that phone detection must leave alone (dates, times, prices, ids, tokens).

Each detector returns `Hit`s: a span, a kind and the normalised value that the token is
computed from. A `Hit` lives only inside one redaction call; the value is never stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from stdnum import iban as stdnum_iban
from stdnum import luhn


class Hit(NamedTuple):
    """A detected value: `text[start:end]` is of `kind`; `value` is its normalised form."""

    start: int
    end: int
    kind: str
    value: str


# An existing token is never redacted again (redaction is idempotent).
TOKEN_RE = re.compile(r"<(?:EMAIL|PHONE|CARD|IBAN|NAME|PATTERN):[0-9a-f]{8}>")

# -- emails -------------------------------------------------------------------------------

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])", re.UNICODE
)


def find_emails(text: str) -> list[Hit]:
    """Email addresses; the value is the address lowercased."""
    if "@" not in text:
        return []
    return [Hit(m.start(), m.end(), "EMAIL", m.group().lower()) for m in EMAIL_RE.finditer(text)]


# -- IBANs --------------------------------------------------------------------------------

# Country code, check digits, then 11 to 30 letters or digits, in groups or not.
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ \u00a0]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


def find_ibans(text: str) -> list[Hit]:
    """IBANs valid for their country (`stdnum.iban`), with or without spaces.

    A candidate that is not valid is shortened from its end, one group at a time, so an
    IBAN followed by an upper-case word (`DE89 3704 ... 00 OK`) is still found.
    """
    hits: list[Hit] = []
    for m in IBAN_RE.finditer(text):
        candidate = m.group()
        ends = [len(candidate)] + [i for i in range(len(candidate) - 1, 14, -1) if candidate[i] in " \u00a0"]
        for end in ends:
            compact = candidate[:end].replace(" ", "").replace("\u00a0", "")
            if len(compact) >= 15 and stdnum_iban.is_valid(compact):
                hits.append(Hit(m.start(), m.start() + end, "IBAN", compact))
                break
    return hits


# -- card numbers -------------------------------------------------------------------------

DIGIT_RUN_RE = re.compile(r"(?<![\d.,])\d+(?:[ -]\d+)*(?![\d])")
_GROUP_RE = re.compile(r"\d+")


def _is_card(digits: str) -> bool:
    """13 to 19 digits, an issuer prefix (2-6, or JCB's 1800/2131), and a valid Luhn sum.

    The prefix rule keeps epoch milliseconds (17...), most ids and long zero-padded numbers
    out; every major network (Visa 4, Mastercard 2/5, Amex 3, Discover/UnionPay/Maestro 6,
    JCB 35/1800/2131, Diners 30/36/38) is in.
    """
    if not 13 <= len(digits) <= 19:
        return False
    if digits[0] not in "23456" and not digits.startswith("1800"):
        return False
    return luhn.is_valid(digits)


def find_cards(text: str) -> list[Hit]:
    """Card numbers: digit runs (spaces or dashes between groups) that pass `_is_card`.

    When a whole run is not a card, contiguous groups of it are tried, longest first, so a
    card followed by another number (`4111 1111 1111 1111 2027`) is still found.
    """
    hits: list[Hit] = []
    for m in DIGIT_RUN_RE.finditer(text):
        run = m.group()
        if sum(c.isdigit() for c in run) < 13:
            continue
        groups = [(g.start(), g.end()) for g in _GROUP_RE.finditer(run)]
        hits.extend(Hit(m.start() + s, m.start() + e, "CARD", d) for s, e, d in _cards_in(run, groups))
    return hits


def _cards_in(run: str, groups: Sequence[tuple[int, int]]) -> list[tuple[int, int, str]]:
    whole = "".join(run[s:e] for s, e in groups)
    if _is_card(whole):
        return [(groups[0][0], groups[-1][1], whole)]
    found: list[tuple[int, int, str]] = []
    n = len(groups)
    i = 0
    while i < n:
        best = None
        for j in range(n, i, -1):  # longest first
            digits = "".join(run[s:e] for s, e in groups[i:j])
            if len(digits) < 13:
                break
            if _is_card(digits):
                best = (groups[i][0], groups[j - 1][1], digits, j)
                break
        if best is None:
            i += 1
        else:
            found.append(best[:3])
            i = best[3]
    return found


# -- configured names and patterns --------------------------------------------------------


_WORD_RE = re.compile(r"\w+")


def _gap(between: str) -> str:
    """What separates two words of a name, any whitespace counted as one space."""
    return " ".join(between.split()) or (" " if between else "")


class NameIndex:
    """Configured names, found as whole words, case-insensitively, any whitespace between
    their words. A dictionary lookup per word of the text: thousands of names cost what a
    handful do."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        for name in {" ".join(n.split()) for n in names if n.strip()}:
            folded = name.casefold()
            words = tuple(_WORD_RE.findall(folded))
            if not words:
                continue
            gaps = tuple(_gap(g) for g in _WORD_RE.split(folded)[1:-1])
            self._by_first.setdefault(words[0], []).append((words, gaps))
        for entries in self._by_first.values():
            entries.sort(key=lambda e: -len(e[0]))

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def find(self, text: str) -> list[Hit]:
        """The names in `text`; the value is the name casefolded, spaces collapsed."""
        words = [(m.start(), m.end(), m.group().casefold()) for m in _WORD_RE.finditer(text)]
        hits: list[Hit] = []
        i = 0
        while i < len(words):
            entries = self._by_first.get(words[i][2])
            matched = 0
            if entries:
                for name, gaps in entries:
                    k = len(name)
                    if i + k <= len(words) and all(
                        words[i + j][2] == name[j]
                        and _gap(text[words[i + j - 1][1] : words[i + j][0]]) == gaps[j - 1]
                        for j in range(1, k)
                    ):
                        start, end = words[i][0], words[i + k - 1][1]
                        value = " ".join(text[start:end].casefold().split())
                        hits.append(Hit(start, end, "NAME", value))
                        matched = k
                        break
            i += matched or 1
        return hits


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The configured regular expressions; a broken one is named with its position."""
    compiled = []
    for i, p in enumerate(patterns):
        try:
            rx = re.compile(p)
        except re.error as e:
            raise ValueError(
                f"redaction_patterns[{i}] {p!r}: not a valid regular expression ({e}); "
                "fix it (Python `re` syntax) in EVALKEEPER_REDACTION_PATTERNS"
            ) from e
        if rx.fullmatch(""):
            raise ValueError(
                f"redaction_patterns[{i}] {p!r}: matches the empty string, so it would "
                "redact nothing useful; make it require at least one character"
            )
        compiled.append(rx)
    return compiled


def find_patterns(text: str, patterns: Sequence[re.Pattern[str]]) -> list[Hit]:
    """Matches of the configured patterns; the value is the matched text."""
    return [
        Hit(m.start(), m.end(), "PATTERN", m.group())
        for rx in patterns
        for m in rx.finditer(text)
        if m.end() > m.start()
    ]


# -- what phone detection leaves alone ----------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
PROTECTED_RE = re.compile(
    "|".join(
        [
            # ISO 8601 dates and timestamps: 2026-11-30, 2026-11-30T14:30:00.123+01:00
            r"(?<!\d)\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?(?!\d)",
            # 2026/11/30, 2026.11.30
            r"(?<![\d./-])\d{4}([./])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?![\d]|[./-]\d)",
            # 30/11/2026, 11-30-26, 30.11.2026 (but not 04.15.39.15.00)
            r"(?<![\d./-])(?:0?[1-9]|[12]\d|3[01])([./-])(?:0?[1-9]|[12]\d|3[01])\2(?:\d{2}|\d{4})(?![\d]|[./-]\d)",
            # Nov 30, 30 Nov 2026, November 30th, 2026
            rf"(?i:\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?(?!\d))",
            rf"(?i:(?<!\d)\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?\b)",
            # 14:30, 14:30:05
            r"(?<!\d)\d{1,2}:\d{2}(?::\d{2})?(?!\d)",
            # prices: $1,234.56, € 49,90, 49,90 €, 1.234.567,89 EUR, USD 120
            r"(?:[$€£¥₹]|\b(?:USD|EUR|GBP|JPY|CHF|AUD|CAD|BRL|INR)\b)\s?"
            r"(?:\d{1,3}(?:[.,\u00a0]\d{3})+|\d+)(?:[.,]\d{1,2})?(?!\d)",
            r"(?<![\d.,])(?:\d{1,3}(?:[.,\u00a0 ]\d{3})+|\d+)(?:[.,]\d{1,2})?\s?"
            r"(?:[$€£¥₹]|(?:USD|EUR|GBP|JPY|CHF|AUD|CAD|BRL|INR|kr|zł)\b)",
            # thousands groupings: 1,234,567 and 1.234.567
            r"(?<![\d.,+])\d{1,3}(?:([.,])\d{3})(?:\3\d{3})+(?![\d]|[.,]\d)",
            # Unix epoch seconds, milliseconds, microseconds (2017 to 2033)
            r"(?<![\d.,+\-])1[5-9]\d{8}(?:\d{3}){0,2}(?![\d]|[.,]\d)",
            # ids: APT-20261130-0042, ORD-558812, INC-2041, #55881234, v2
            r"\b[A-Za-z]+[-_#/]?\d[\dA-Za-z]*(?:[-_/][\dA-Za-z]+)*",
            r"#\d[\d-]*",
        ]
    )
)


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans of dates, times, prices, ids and existing tokens: never phone numbers."""
    spans = [(m.start(), m.end()) for m in PROTECTED_RE.finditer(text)]
    if "<" in text:
        spans.extend((m.start(), m.end()) for m in TOKEN_RE.finditer(text))
    return spans


def mask(text: str, spans: Iterable[tuple[int, int]], fill: str = "_") -> str:
    """`text` with every span replaced by `fill` characters (offsets unchanged)."""
    chars: list[str] | None = None
    for s, e in spans:
        if chars is None:
            chars = list(text)
        chars[s:e] = fill * (e - s)
    return text if chars is None else "".join(chars)
