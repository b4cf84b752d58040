"""Phone numbers with libphonenumber, in international and national formats.

A cheap regular expression finds candidate windows (digits with phone separators, at least
7 digits). Around each window, dates, times, prices, ids and timestamps are masked
(`detectors.protected_spans`), and only what is left is read with libphonenumber (a window
that is one clean number parsed directly, `phone_match.WindowParse`; any other through
`phonenumbers.PhoneNumberMatcher`), region by region:

1. a window holding `+` is tried once with no region (the country code says it all);
2. then the regions where the window's digits could be a *valid* number, judged from the
   numbering-plan metadata (national prefix stripped, then the region's number-type
   patterns), in the configured order, until one gives a valid match of the whole window;
3. then, unless the window is covered, the regions where the digits have a *possible*
   length, then the rest, in order, until one match covers every digit of the window.

Matches are merged, longest first, then valid before merely possible, then the one written
in its region's own national layout, then the configured order: `(0191) 4960072` is one GB
number (not the US local `4960072`), `090-3640-5259` is Japanese (JP writes it so; it is
also a valid Italian and British number). The value behind a token is the number in E.164
(extension dropped), so the same number written nationally or internationally gets the
same token.

Policies (what a match must be, by libphonenumber's judgement, to be redacted):
- `possible`: a possible number (its length fits) in some configured region;
- `valid`: a valid number (`is_valid_number`: an assigned range of the region). Whether a
  national number was written with its trunk prefix is not asked (the matcher's numbers do
  not record it), so Austria's `15123456` counts as the valid `+43 1 5123456`;
- `hybrid` (default): valid, or possible when written like a phone number (with `+`,
  spaces, dashes, dots, slashes or parentheses). A bare run of digits must be valid, so
  `20261130` stays; epoch timestamps such as `1732978800000` are protected before
  detection (`detectors.protected_spans`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

import phonenumbers as pn
from phonenumbers import PhoneNumberFormat

from evalkeeper.errors import ConfigError
from evalkeeper.traces.detectors import mask, protected_spans
from evalkeeper.traces.hits import Hit
from evalkeeper.traces.phone_match import Match, WindowParse, matcher_matches, plain
from evalkeeper.traces.phone_plan import is_valid, keep_compiled_patterns, layout, plan, screen

PhonePolicy = Literal["possible", "valid", "hybrid"]
MIN_DIGITS = 7
MAX_WINDOW_DIGITS = 24
CONTEXT = 16  # characters on each side of a window searched for dates, prices, ids
_CACHE_SIZE = 8192
# After a valid match of the whole window, how many more likely regions are tried for one
# written in that region's own layout (a number valid in ten regions costs ten calls).
LAYOUT_TRIES = 3

WINDOW_RE = re.compile(
    r"(?<![\w+])[+(]{0,2}\d(?:[\d \t\u00a0()\-/]|\.(?=\d))*\d\)?"
    r"(?:[ \t]?(?:x|ext\.?|extension|\#)[ \t]?\d{1,6})?(?!\w)",
    re.IGNORECASE,
)
_PIECE_RE = re.compile(r"\S+")
_EXTENSION_RE = re.compile(r"[ \t]?(?:x|ext\.?|extension|\#)[ \t]?\d{1,6}$", re.IGNORECASE)
_CARD_LAYOUT_RE = re.compile(r"\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}")
_FORMATTED = frozenset("+ -.()/\t\u00a0")


class _Found(NamedTuple):
    start: int
    end: int
    valid: bool
    layout: int  # how closely the raw text follows the region's national format (0-3)
    rank: int  # configured order of the region; -1 for a number with its country code
    e164: str
    n_digits: int  # digits in the matched text, extension included


class PhoneDetector:
    """Finds phone numbers for the configured `regions` under a `policy`."""

    def __init__(
        self, regions: Sequence[str], policy: PhonePolicy = "hybrid", *, fast: bool = True
    ) -> None:
        if not regions:
            raise ConfigError(
                "redaction_regions is empty: national phone numbers would go unnoticed; "
                "list at least one region (EVALKEEPER_REDACTION_REGIONS=US,DE,JP)"
            )
        if policy not in ("possible", "valid", "hybrid"):
            raise ValueError(f"phone policy {policy!r}: use possible, valid or hybrid")
        keep_compiled_patterns()
        self.regions = [r.strip().upper() for r in regions]
        self.policy = policy
        self.fast = fast  # False: every region run goes through PhoneNumberMatcher
        self._plans = [plan(r) for r in self.regions]
        self._cache: dict[str, tuple[Hit, ...]] = {}
        self.region_runs = 0  # (window, region) pairs judged
        self.matcher_runs = 0  # of those, the ones that ran PhoneNumberMatcher

    def find(self, text: str) -> list[Hit]:
        """Phone numbers in `text` (earlier findings may be masked with `_`)."""
        windows = [w for w in WINDOW_RE.finditer(text) if _digits(w.group()) >= MIN_DIGITS]
        if not windows:
            return []
        spans: list[tuple[int, int]] = []
        for lo, hi in _neighbourhoods(text, windows):
            spans.extend((lo + s, lo + e) for s, e in protected_spans(text[lo:hi]))
        # nothing masked: the windows found already
        candidates = list(WINDOW_RE.finditer(mask(text, spans))) if spans else windows
        hits: list[Hit] = []
        for w in candidates:
            window = w.group()
            n = _digits(window)
            if n < MIN_DIGITS:
                continue
            if n <= MAX_WINDOW_DIGITS:
                pieces = [(w.start(), window)]
            else:  # a long run of numbers: each space-separated piece on its own
                pieces = [(w.start() + p.start(), p.group()) for p in _PIECE_RE.finditer(window)]
            for offset, piece in pieces:
                hits.extend(
                    Hit(offset + h.start, offset + h.end, h.kind, h.value)
                    for h in self._window(piece)
                )
        return hits

    def _window(self, text: str) -> tuple[Hit, ...]:
        cached = self._cache.get(text)
        if cached is None:
            cached = tuple(_merge(self._detect(text))) if _digits(text) >= MIN_DIGITS else ()
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = cached
        return cached

    def _detect(self, text: str) -> list[_Found]:
        if _CARD_LAYOUT_RE.fullmatch(text):
            return []  # 4111 1111 1111 1112: laid out as a card (a valid one is gone already)
        n_digits = _digits(text)
        formatted = not _FORMATTED.isdisjoint(text)
        parsed = WindowParse(text) if self.fast and plain(text) else None
        found: list[_Found] = []
        if "+" in text:
            found += self._run(text, "ZZ", -1, parsed)
            if self._covered(found, n_digits):
                return found
        likely, possible = screen(self._plans, _digits_only(_EXTENSION_RE.sub("", text)))
        extra = LAYOUT_TRIES
        for i in likely:
            found += self._run(text, self.regions[i], i, parsed)
            best = [f for f in found if f.valid and f.n_digits == n_digits]
            if best:
                if not formatted or any(f.layout == 3 for f in best) or extra == 0:
                    return found  # nothing later in the order can beat it (or: enough)
                extra -= 1
        if self._covered(found, n_digits) or (not formatted and self.policy != "possible"):
            return found  # a bare run of digits is taken only when valid: the screen said not
        tried = set(likely)
        rest = [i for i in possible if i not in tried]
        rest += [i for i in range(len(self.regions)) if i not in tried and i not in possible]
        for i in rest:
            found += self._run(text, self.regions[i], i, parsed)
            if self._covered(found, n_digits):
                break
        return found

    def _run(self, text: str, region: str, rank: int, parsed: WindowParse | None) -> list[_Found]:
        """The numbers found in `text` for `region` (`rank` -1: by their country code);
        `parsed`: the window when it is plain (then a whole parse may answer)."""
        self.region_runs += 1
        whole = parsed.possible(region) if parsed is not None else None
        if whole is not None:
            found = [Match(0, len(text), text, whole)]
        else:
            self.matcher_runs += 1
            found = matcher_matches(text, region)
        out = []
        for m in found:
            number = m.number
            nsn = pn.national_significant_number(number)
            if len(nsn) < MIN_DIGITS:
                continue
            raw = m.raw
            valid = is_valid(number)
            if not (valid or self._accepts_possible(raw)):
                continue
            fit = layout(raw, number) if valid and rank >= 0 else 0
            e164 = (  # format_number's E164, which special-cases a zero national number
                f"+{number.country_code}{nsn}"
                if number.national_number
                else pn.format_number(number, PhoneNumberFormat.E164)
            )
            out.append(_Found(m.start, m.end, valid, fit, rank, e164, _digits(raw)))
        return out

    def _accepts_possible(self, raw: str) -> bool:
        if self.policy == "hybrid":
            return not _FORMATTED.isdisjoint(raw)
        return self.policy == "possible"

    @staticmethod
    def _covered(found: list[_Found], n_digits: int) -> bool:
        return any(f.n_digits == n_digits for f in found)


def _neighbourhoods(text: str, windows: list[re.Match[str]]) -> list[tuple[int, int]]:
    """Spans of `text` around the windows, CONTEXT characters each side widened to the next
    whitespace (a cut word would look like an id), overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for w in windows:
        lo = w.start() - CONTEXT
        lo = 0 if lo <= 0 else text.rfind(" ", 0, lo) + 1
        hi = text.find(" ", w.end() + CONTEXT)
        hi = len(text) if hi < 0 else hi
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _digits_only(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _digits(text: str) -> int:
    return sum(map(str.isdigit, text))


def _merge(found: list[_Found]) -> list[Hit]:
    """Non-overlapping matches: longest first, then valid before possible, then a match in
    the region's own layout, then region order."""
    chosen: list[_Found] = []
    for f in sorted(found, key=lambda f: (f.start - f.end, not f.valid, -f.layout, f.rank)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    chosen.sort(key=lambda f: f.start)
    return [Hit(f.start, f.end, "PHONE", f.e164) for f in chosen]
