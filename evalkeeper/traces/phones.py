"""Phone numbers with libphonenumber, in international and national formats.

A cheap regular expression finds candidate windows (digits with phone separators, at least
7 digits). Around each window, dates, times, prices, ids and timestamps are masked
(`detectors.protected_spans`), and only what is left goes to
`phonenumbers.PhoneNumberMatcher`, region by region:

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
- `valid`: a valid number (an assigned range, national prefix present where required);
- `hybrid` (default): valid, or possible when written like a phone number (with `+`,
  spaces, dashes, dots, slashes or parentheses). A bare run of digits must be valid, so
  `1732978800000` or `20261130` stay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

import phonenumbers as pn
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberFormat

from evalkeeper.traces.detectors import Hit, mask, protected_spans

try:  # the check behind Leniency.VALID, without a second matcher run
    from phonenumbers.phonenumbermatcher import _is_national_prefix_present_if_required
except ImportError:  # pragma: no cover - a phonenumbers release that moved it
    _is_national_prefix_present_if_required = None  # type: ignore[assignment]
_prefix_ok = _is_national_prefix_present_if_required

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
_GROUP_RE = re.compile(r"\d+")
_PAREN_SPACE_RE = re.compile(r"\s*([()])\s*")
_FORMATTED = frozenset("+ -.()/\t\u00a0")
_TYPE_DESCS = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


class _Plan(NamedTuple):
    """A region's numbering plan, reduced to what the screen needs."""

    region: str
    prefix: re.Pattern[str] | None  # national prefix for parsing
    transform: str | None
    valid: re.Pattern[str] | None  # any number type's national pattern
    valid_lengths: frozenset[int]
    possible_lengths: frozenset[int]


class _Found(NamedTuple):
    start: int
    end: int
    valid: bool
    layout: int  # how closely the raw text follows the region's national format (0-3)
    rank: int  # configured order of the region; -1 for a number with its country code
    e164: str
    n_digits: int  # digits in the matched text, extension included


def _plan(region: str) -> _Plan:
    md = PhoneMetadata.metadata_for_region(region)
    if md is None:
        raise ValueError(
            f"redaction_regions: {region!r} is not a region libphonenumber knows; use ISO "
            "3166 alpha-2 codes such as US, GB, DE, JP (EVALKEEPER_REDACTION_REGIONS=US,DE,JP)"
        )
    general = md.general_desc
    general_lengths = tuple(general.possible_length or ()) if general is not None else ()
    patterns: list[str] = []
    valid_lengths: set[int] = set()
    for name in _TYPE_DESCS:
        desc = getattr(md, name, None)
        if desc is not None and desc.national_number_pattern:
            patterns.append(desc.national_number_pattern)
            valid_lengths.update(desc.possible_length or general_lengths)
    local = tuple(general.possible_length_local_only or ()) if general is not None else ()
    possible = set(general_lengths) | set(local)
    npfp = md.national_prefix_for_parsing or md.national_prefix
    return _Plan(
        region,
        re.compile(npfp) if npfp else None,
        md.national_prefix_transform_rule or None,
        re.compile("(?:" + ")|(?:".join(patterns) + ")") if patterns else None,
        frozenset(valid_lengths),
        frozenset(possible),
    )


class PhoneDetector:
    """Finds phone numbers for the configured `regions` under a `policy`."""

    def __init__(self, regions: Sequence[str], policy: PhonePolicy = "hybrid") -> None:
        if not regions:
            raise ValueError(
                "redaction_regions is empty: national phone numbers would go unnoticed; "
                "list at least one region (EVALKEEPER_REDACTION_REGIONS=US,DE,JP)"
            )
        if policy not in ("possible", "valid", "hybrid"):
            raise ValueError(f"phone policy {policy!r}: use possible, valid or hybrid")
        _keep_compiled_patterns()
        self.regions = [r.strip().upper() for r in regions]
        self.policy = policy
        self._plans = [_plan(r) for r in self.regions]
        self._cache: dict[str, tuple[Hit, ...]] = {}
        self.matcher_calls = 0

    def find(self, text: str) -> list[Hit]:
        """Phone numbers in `text` (earlier findings may be masked with `_`)."""
        windows = [w for w in WINDOW_RE.finditer(text) if _digits(w.group()) >= MIN_DIGITS]
        if not windows:
            return []
        spans: list[tuple[int, int]] = []
        for lo, hi in _neighbourhoods(text, windows):
            spans.extend((lo + s, lo + e) for s, e in protected_spans(text[lo:hi]))
        masked = mask(text, spans) if spans else text
        hits: list[Hit] = []
        for w in WINDOW_RE.finditer(masked):
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
        digits = _digits_only(text)
        formatted = any(c in _FORMATTED for c in text)
        found: list[_Found] = []
        if "+" in text:
            found += self._run(text, "ZZ", -1)
            if self._covered(found, len(digits)):
                return found
        likely, possible = self._screen(_digits_only(_EXTENSION_RE.sub("", text)))
        extra = LAYOUT_TRIES
        for i in likely:
            found += self._run(text, self.regions[i], i)
            best = [f for f in found if f.valid and f.n_digits == len(digits)]
            if best:
                if not formatted or any(f.layout == 3 for f in best) or extra == 0:
                    return found  # nothing later in the order can beat it (or: enough)
                extra -= 1
        if self._covered(found, len(digits)) or (not formatted and self.policy != "possible"):
            return found  # a bare run of digits is taken only when valid: the screen said not
        tried = set(likely)
        rest = [i for i in possible if i not in tried]
        rest += [i for i in range(len(self.regions)) if i not in tried and i not in possible]
        for i in rest:
            found += self._run(text, self.regions[i], i)
            if self._covered(found, len(digits)):
                break
        return found

    def _run(self, text: str, region: str, rank: int) -> list[_Found]:
        self.matcher_calls += 1
        out = []
        for m in pn.PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE):
            number = m.number
            if len(pn.national_significant_number(number)) < MIN_DIGITS:
                continue
            raw = m.raw_string
            valid = pn.is_valid_number(number) and (
                rank < 0 or self._prefix_ok(raw, region, number)
            )
            if not (valid or self._accepts_possible(raw)):
                continue
            layout = _layout(raw, number) if valid and rank >= 0 else 0
            e164 = pn.format_number(number, PhoneNumberFormat.E164)
            out.append(_Found(m.start, m.end, valid, layout, rank, e164, _digits(raw)))
        return out

    def _accepts_possible(self, raw: str) -> bool:
        if self.policy == "hybrid":
            return any(c in _FORMATTED for c in raw)
        return self.policy == "possible"

    def _prefix_ok(self, raw: str, region: str, number: pn.PhoneNumber) -> bool:
        """The rest of Leniency.VALID: the national prefix is there where the region requires
        it (`1732978800000` is not a Vienna number without its leading 0)."""
        if _prefix_ok is not None:
            return bool(_prefix_ok(number))
        self.matcher_calls += 1
        return any(True for _ in pn.PhoneNumberMatcher(raw, region, leniency=Leniency.VALID))

    @staticmethod
    def _covered(found: list[_Found], n_digits: int) -> bool:
        return any(f.n_digits == n_digits for f in found)

    def _screen(self, digits: str) -> tuple[list[int], list[int]]:
        """Regions (indexes, configured order) where `digits` could be a valid national
        number, and those where its length is at least possible."""
        likely: list[int] = []
        possible: list[int] = []
        for i, p in enumerate(self._plans):
            candidates = [digits]
            if p.prefix is not None:
                m = p.prefix.match(digits)
                if m and m.end():
                    candidates.append(digits[m.end() :])
                    if p.transform and m.lastindex:
                        candidates.append(p.prefix.sub(p.transform, digits, count=1))
            is_likely = is_possible = False
            for c in candidates:
                n = len(c)
                if n in p.valid_lengths and p.valid is not None and p.valid.fullmatch(c):
                    is_likely = True
                    break
                is_possible = is_possible or n in p.possible_lengths
            if is_likely:
                likely.append(i)
            elif is_possible:
                possible.append(i)
        return likely, possible


def _keep_compiled_patterns() -> None:
    """Have libphonenumber keep its compiled metadata patterns. Its default relies on the
    `re` module's cache of 512 patterns, and the metadata of 28 regions holds more: every
    match then recompiles patterns (a third of the redaction time). The patterns come from
    the fixed metadata, so the kept set is bounded."""
    enable = getattr(pn, "enable_pattern_cache", None)
    if enable is not None:  # phonenumbers >= 9.0.4x
        enable()


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


def _layout(raw: str, number: pn.PhoneNumber) -> int:
    """How closely `raw` follows the region's national format: 3 exactly, spaces around
    parentheses aside (JP's `090-3640-5259`, US's `(327)639-8590`), 2 the same digit groups, 1 the same first group (the area code:
    `(0191) 4960072` against GB's `0191 496 0072`), 0 otherwise or for a bare run of digits."""
    groups = _GROUP_RE.findall(raw)
    if len(groups) < 2:
        return 0
    national = pn.format_number(number, PhoneNumberFormat.NATIONAL)
    if _PAREN_SPACE_RE.sub(r"\1", national) == _PAREN_SPACE_RE.sub(r"\1", " ".join(raw.split())):
        return 3
    national_groups = _GROUP_RE.findall(national)
    if national_groups == groups:
        return 2
    return 1 if national_groups and national_groups[0] == groups[0] else 0


def _merge(found: list[_Found]) -> list[Hit]:
    """Non-overlapping matches: longest first, then valid before possible, then a match in
    the region's own layout, then region order."""
    chosen: list[_Found] = []
    for f in sorted(found, key=lambda f: (f.start - f.end, not f.valid, -f.layout, f.rank)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    chosen.sort(key=lambda f: f.start)
    return [Hit(f.start, f.end, "PHONE", f.e164) for f in chosen]
