"""The built-in detectors except phones and names: emails, IBANs, card numbers, patterns;
and the spans that phone detection must leave alone (dates, times, prices, ids, tokens).

Each detector returns `Hit`s (`evalkeeper.traces.hits`): a span, a kind and the normalised
value that the token is computed from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from stdnum import iban as stdnum_iban

from evalkeeper.errors import ConfigError
from evalkeeper.traces.hits import Hit

# An existing token is never redacted again (redaction is idempotent).
TOKEN_RE = re.compile(r"<(?:EMAIL|PHONE|CARD|IBAN|NAME|PATTERN):[0-9a-f]{8}>")

# -- emails -------------------------------------------------------------------------------

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])", re.UNICODE
)


def find_emails(text: str) -> list[Hit]:
    """Email addresses; the value is the address lowercased.

    What `EMAIL_RE.finditer` finds, without its scan of every position: a match holds one
    `@` (its domain has none) right after its local part, and starts where the run of
    local-part characters before that `@` starts (the look-behind fails anywhere inside
    the run; the run cannot stop earlier, an `@` being no local-part character). So each
    `@` is tried once, from that start, unless the run begins inside the previous match
    (finditer resumes after it, inside the run: no match there either)."""
    hits: list[Hit] = []
    end = 0  # where the previous match ended
    at = text.find("@")
    while at >= 0:
        start = at
        while start and _local_char(text[start - 1]):
            start -= 1
        if start < at and start >= end:
            m = EMAIL_RE.match(text, start)  # the look-behind sees text[start - 1]
            if m is not None:
                hits.append(Hit(start, m.end(), "EMAIL", m.group().lower()))
                end = m.end()
        at = text.find("@", at + 1)
    return hits


def _local_char(c: str) -> bool:
    """`[\\w.%+-]` for one character (`\\w` of a str pattern: `str.isalnum()` or `_`)."""
    return c.isalnum() or c in "_.%+-"


# -- IBANs --------------------------------------------------------------------------------

# Country code, check digits, then 11 to 30 letters or digits, in groups or not. (The
# look-behind after the first letters keeps the regex's fast scan for capitals.)
IBAN_RE = re.compile(
    r"[A-Z]{2}(?<![A-Za-z0-9][A-Z]{2})\d{2}(?:[ \u00a0]?[A-Z0-9]){11,30}(?![A-Za-z0-9])"
)
_IBAN_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(65, 91)})


def _iban_valid(compact: str) -> bool:
    """ISO 7064 mod 97-10 first (cheap, rejects nearly every look-alike), then the
    country's BBAN structure and national check from `stdnum.iban`, its registry looked up
    once per country (the lookup is most of `stdnum.iban.is_valid`'s cost)."""
    if int((compact[4:] + compact[:4]).translate(_IBAN_DIGITS)) % 97 != 1:
        return False
    rule = _country_rule(compact[:2])
    if rule is None:
        return bool(stdnum_iban.is_valid(compact))
    structure, module = rule
    if structure is None or not structure.match(compact[4:]):
        return False
    return module is None or bool(module.is_valid(compact))


@lru_cache(maxsize=256)
def _country_rule(country: str) -> tuple[re.Pattern[str] | None, Any] | None:
    """The BBAN structure and national-check module of `country`, or None when this
    stdnum release does not expose them (then `stdnum.iban.is_valid` is called)."""
    try:
        info = stdnum_iban._ibandb.info(country)
        bban = info[0][1].get("bban") if info and info[0][1] else None
        structure = stdnum_iban._struct_to_re(bban) if bban else None
        return structure, stdnum_iban._get_cc_module(country)
    except AttributeError:  # pragma: no cover - private helpers moved
        return None


def find_ibans(text: str) -> list[Hit]:
    """IBANs valid for their country (`stdnum.iban`), with or without spaces.

    A candidate that is not valid is shortened from its end, one group at a time, so an
    IBAN followed by an upper-case word (`DE89 3704 ... 00 OK`) is still found.
    """
    hits: list[Hit] = []
    for m in IBAN_RE.finditer(text):
        candidate = m.group()
        ends = [len(candidate)]
        ends += [i for i in range(len(candidate) - 1, 14, -1) if candidate[i] in " \u00a0"]
        for end in ends:
            compact = candidate[:end].replace(" ", "").replace("\u00a0", "")
            if len(compact) >= 15 and _iban_valid(compact):
                hits.append(Hit(m.start(), m.start() + end, "IBAN", compact))
                break
    return hits


# -- card numbers -------------------------------------------------------------------------

# 13 or more digits, single spaces or dashes between them, not glued to other digits.
CARD_RUN_RE = re.compile(r"\d(?<![\d.,]\d)(?:[ -]?\d){12,}(?!\d)")
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
    return _luhn_valid(digits)


# A digit doubled, its digits summed (Luhn): 0 2 4 6 8 1 3 5 7 9.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn_valid(digits: str) -> bool:
    """The Luhn check (as `stdnum.luhn.is_valid`, which says False for anything but ASCII
    digits), every second digit from the right doubled by one `translate`."""
    if not digits.isascii() or not digits.isdigit():
        return False
    doubled = digits[::-2] + digits[-2::-2].translate(_DOUBLED)
    # the sum of ASCII digits: the sum of their bytes less 48 ("0") for each
    return (sum(doubled.encode()) - 48 * len(doubled)) % 10 == 0


def find_cards(text: str) -> list[Hit]:
    """Card numbers: digit runs (spaces or dashes between groups) that pass `_is_card`.

    When a whole run is not a card, contiguous groups of it are tried, longest first, so a
    card followed by another number (`4111 1111 1111 1111 2027`) is still found.
    """
    hits: list[Hit] = []
    for m in CARD_RUN_RE.finditer(text):
        run = m.group()
        # the run's digits (it holds only digits, spaces and dashes, and starts and ends
        # with a digit): the whole run first, its groups only when it is no card
        whole = run.replace(" ", "").replace("-", "")
        if _is_card(whole):
            hits.append(Hit(m.start(), m.end(), "CARD", whole))
            continue
        groups = [(g.start(), g.end()) for g in _GROUP_RE.finditer(run)]
        hits.extend(
            Hit(m.start() + s, m.start() + e, "CARD", d) for s, e, d in _cards_in(run, groups)
        )
    return hits


def _cards_in(run: str, groups: Sequence[tuple[int, int]]) -> list[tuple[int, int, str]]:
    whole = "".join(run[s:e] for s, e in groups)
    if _is_card(whole):
        return [(groups[0][0], groups[-1][1], whole)]
    # where each group's digits start in `whole`: groups[i:j] are whole[at[i]:at[j]]
    at = [0]
    for s, e in groups:
        at.append(at[-1] + e - s)
    found: list[tuple[int, int, str]] = []
    n = len(groups)
    i = 0
    while i < n:
        best = None
        for j in range(n, i, -1):  # longest first
            if at[j] - at[i] < 13:
                break
            digits = whole[at[i] : at[j]]
            if _is_card(digits):
                best = (groups[i][0], groups[j - 1][1], digits, j)
                break
        if best is None:
            i += 1
        else:
            found.append(best[:3])
            i = best[3]
    return found


# -- configured patterns (names: evalkeeper.traces.names) ---------------------------------


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The configured regular expressions; a broken one is named with its position."""
    compiled = []
    for i, p in enumerate(patterns):
        try:
            rx = re.compile(p)
        except re.error as e:
            raise ConfigError(
                f"redaction_patterns[{i}] {p!r}: not a valid regular expression ({e}); "
                "fix it (Python `re` syntax) in EVALKEEPER_REDACTION_PATTERNS"
            ) from e
        if rx.fullmatch(""):
            raise ConfigError(
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

_MONTH_RE = re.compile(
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?,?",
    re.IGNORECASE,
)
_DAY_OR_YEAR_RE = re.compile(r"\d{1,2}(?:st|nd|rd|th)?,?|\d{4},?")
_DM = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH_NUM = r"(?:0?[1-9]|1[0-2])"
_AMOUNT = r"(?:\d{1,3}(?:[.,\u00a0\u202f]\d{3})+|\d+)(?:[.,]\d{1,2})?"
_CURRENCY = r"(?:[$€£¥₹]|USD|EUR|GBP|JPY|CHF|AUD|CAD|BRL|INR|kr|zł)"
# One whitespace-delimited token (surrounding punctuation stripped) that is never a phone.
_SINGLE_RE = re.compile(
    "|".join(
        [
            # ISO 8601: 2026-11-30, 2026-11-30T14:30:00.123+01:00
            r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?",
            # 2026/11/30, 2026.11.30
            rf"\d{{4}}([./]){_MONTH_NUM}\1{_DM}",
            # 20261130 (a compact date, 1900 to 2099)
            r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])",
            # 30/11/2026, 11-30-26, 30.11.2026 (but not 04.15.39.15.00)
            rf"{_DM}([./-]){_DM}\2(?:\d{{2}}|\d{{4}})",
            # 14:30, 14:30:05, 2:30pm
            r"\d{1,2}:\d{2}(?::\d{2})?(?:[ap]\.?m\.?)?",
            # prices written in one piece: $1,234.56, €49,90, 49,90€, USD120
            rf"{_CURRENCY}{_AMOUNT}|{_AMOUNT}{_CURRENCY}",
            # thousands groupings: 1,234,567 and 1.234.567
            r"\d{1,3}([.,])\d{3}(?:\3\d{3})+(?:[.,]\d{1,2})?",
            # ids: APT-20261130-0042, ORD-558812, INC-2041, v2, #55881234
            r"[A-Za-z]+[-_#/]?\d[\dA-Za-z]*(?:[-_/][\dA-Za-z]+)*",
            r"#\d[\d-]*",
        ]
    )
)
# Unix epoch seconds, milliseconds, microseconds (2017 to 2033), unless after a country code
_EPOCH_RE = re.compile(r"1[5-9]\d{8}(?:\d{3}){0,2}")
_COUNTRY_CODE_RE = re.compile(r"\(?(?:\+|00)\d{1,3}\)?")
_AMOUNT_RE = re.compile(_AMOUNT)
_CURRENCY_RE = re.compile(_CURRENCY)
# A run of `_NO_SPACE_RE` characters (as NUL) is a word of its own.
_TOKEN_RE = re.compile(r"\x00+|[^\s\x00]+")
# A token holding a digit, from its start (the look-behind: no attempt inside a word;
# possessive: a word without a digit is not given back a character at a time).
_DIGIT_TOKEN_RE = re.compile(r"(?<![^\s\x00])[^\s\d\x00]*+\d[^\s\x00]*+")
# Letters of scripts written without spaces between words (Thai, kana, Han, Hangul) and
# CJK punctuation: words of their own here, so that `予約は2026-11-30です` holds the date
# `2026-11-30`, and `EUR. 请拨打16512673912` no price (full-width digits and phone
# punctuation are not among them).
_NO_SPACE_RE = re.compile(
    "[\u0e01-\u0e4f\u3001-\u303f\u3040-\u30fb\u30fd-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uff01\uff0c\uff1b\uff1f]"
)
_LEAD = "\"'([{«¿¡"
_TRAIL = ".,;:!?)]}»\"'"


def _word_at(text: str, start: int, end: int) -> tuple[int, int, str]:
    raw = text[start:end]
    word = raw.lstrip(_LEAD)
    s = start + len(raw) - len(word)
    word = word.rstrip(_TRAIL)
    return s, s + len(word), word


def _prev_word(text: str, start: int) -> tuple[int, str]:
    """The start and text of the whitespace-delimited word before `start`."""
    j = start
    while j > 0 and text[j - 1].isspace():
        j -= 1
    i = j
    if i > 0 and text[i - 1] == "\x00":  # a word in a script without spaces
        while i > 0 and text[i - 1] == "\x00":
            i -= 1
        return i, text[i:j]
    while i > 0 and not text[i - 1].isspace() and text[i - 1] != "\x00":
        i -= 1
    return i, text[i:j].strip(_LEAD + _TRAIL)


def _next_word(text: str, end: int) -> str:
    m = _TOKEN_RE.search(text, end)
    return m.group().strip(_LEAD + _TRAIL) if m else ""


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans of dates, times, prices, ids, epoch timestamps and existing tokens: never
    phone numbers. Judged token by token (delimited by whitespace or by `_NO_SPACE_RE`,
    punctuation around a token stripped), with a look at the neighbours for `49,90 €`, `USD 120`, `Nov 30, 2026`."""
    spans: list[tuple[int, int]] = []
    text = _NO_SPACE_RE.sub("\x00", text)  # one character for one: offsets unchanged
    for m in _DIGIT_TOKEN_RE.finditer(text):
        s, e, word = _word_at(text, m.start(), m.end())
        if not word:
            continue
        if _SINGLE_RE.fullmatch(word):
            spans.append((s, e))
            continue
        # the word before is read only for the tokens it can decide (not for `090-2867-8126`)
        if _EPOCH_RE.fullmatch(word):
            if not _COUNTRY_CODE_RE.fullmatch(_prev_word(text, m.start())[1]):
                spans.append((s, e))
        elif _AMOUNT_RE.fullmatch(word):
            prev_start, prev = _prev_word(text, m.start())
            if (
                _CURRENCY_RE.fullmatch(prev)
                or _CURRENCY_RE.fullmatch(_next_word(text, m.end()))
                or (
                    _DAY_OR_YEAR_RE.fullmatch(word)
                    and (
                        _MONTH_RE.fullmatch(prev)
                        or _MONTH_RE.fullmatch(_next_word(text, m.end()))
                        or (
                            _DAY_OR_YEAR_RE.fullmatch(prev)
                            and _MONTH_RE.fullmatch(_prev_word(text, prev_start)[1])
                        )
                    )
                )
            ):
                spans.append((s, e))
        elif _DAY_OR_YEAR_RE.fullmatch(word) and (
            _MONTH_RE.fullmatch(_prev_word(text, m.start())[1])
            or _MONTH_RE.fullmatch(_next_word(text, m.end()))
        ):
            spans.append((s, e))
    if "<" in text:
        spans.extend((m.start(), m.end()) for m in TOKEN_RE.finditer(text))
    return spans


def mask(text: str, spans: Iterable[tuple[int, int]], fill: str = "_") -> str:
    """`text` with every span replaced by `fill` characters (offsets unchanged; spans in
    any order, overlapping or not). Built from slices of the text: no list of its
    characters."""
    out: list[str] = []
    pos = 0
    for s, e in sorted(spans):
        s = max(s, pos)
        if e > s:
            out += (text[pos:s], fill * (e - s))
            pos = e
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)
