"""Phone numbers with libphonenumber's own `PhoneNumberMatcher`, as the library gives it.

What a match is, is the library's answer: `PhoneNumberMatcher(window, region,
leniency=Leniency.POSSIBLE)` finds the numbers, `is_valid_number` says which are valid,
`format_number` gives their E.164 form and national layout. The detector only decides where
the matcher runs and with which regions, and which of its matches to keep:

- *Windows*: the matcher's candidates are made of digits, its phone punctuation (spaces,
  dashes, dots, slashes, brackets, `ー`, their full-width forms), `+`, and its extension
  labels (`ext`, `x`, `#`, `anexo`, `доб`...). Any other character (a letter of a word, `。`,
  `、`, `「`, a newline) ends every candidate, so the text is cut there, and again at a comma
  between two numbers (`SEGMENT_RE`, `_LIST_COMMA_RE`); a window with fewer than
  `MIN_DIGITS` digits is skipped. The matcher over a window finds exactly what it finds over
  the whole text at that place, as `tests/traces/test_phone_oracle.py` checks text by text
  and region by region against `PhoneNumberMatcher` over the whole text. (The matcher
  gives up on a text after 65,535 failed candidates; the windows, each a text of its own,
  then find more, never less.) Digits glued to words in scripts without spaces
  (`電話番号は090-2867-8126です。`) are windows like any.
- Around each window, dates, times, prices, ids and timestamps are masked first
  (`detectors.protected_spans`), and the windows are cut again (only in the runs a mask
  touched: `rewindow`). A match touching a Latin
  letter (`2026-11-30T14`, `abc8005001234`) is dropped, as the library's own
  `Leniency.VALID` drops it; letters of other scripts do not count.
- *Regions*, per window:
  1. a window holding `+` is tried once with no region (the country code says it all),
     one starting with a configured region's international prefix (`0049`) once with the
     first such region (a valid number of the whole window ends the search);
  2. then the configured regions where its digits could be a *valid* number (a screen over
     the public numbering-plan metadata, `PhoneMetadata`: national prefix stripped, then the
     number types' patterns of every region sharing the country code), in the configured
     order, until one gives a valid match of the whole window (and up to `LAYOUT_TRIES`
     more for one written in its region's own national layout: a try that cannot win,
     as libphonenumber's public `parse`, `format_number` and `is_valid_number` of the
     matched text say, is counted as tried without running the matcher, `_may_win`);
  3. then, unless the window is covered, the regions where the digits have a *possible*
     length, then the rest, in order, until the matches cover every digit of the window.
  Of regions sharing a country code (US, CA), only the first is tried: they read a
  national number alike. The screen only orders and skips regions; it never decides what a
  number is.

Matches are merged, longest first, then valid before merely possible, then the one written
in its region's own national layout, then the configured order: `(0191) 4960072` is one GB
number (not the US local `4960072`), `090-3640-5259` is Japanese (JP writes it so; it is
also a valid Italian and British number). The value behind a token is the number in E.164
(extension dropped), so the same number written nationally or internationally, in ASCII or
full-width digits, gets the same token.

Each detector memoises libphonenumber's answers about a number (`is_valid_number`, its
E.164 and national forms) by the fields those functions read, and each distinct window's
result (`_CACHE_SIZE` each): nothing is shared between detectors, so a fresh detector
starts with empty caches.

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
import unicodedata
from collections.abc import Sequence
from functools import cache
from typing import Literal, NamedTuple

import phonenumbers as pn
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberFormat

from evalkeeper.errors import ConfigError
from evalkeeper.traces.detectors import mask, protected_spans
from evalkeeper.traces.hits import Hit

PhonePolicy = Literal["possible", "valid", "hybrid"]
MIN_DIGITS = 7
CONTEXT = 16  # characters on each side of a window searched for dates, prices, ids
_CACHE_SIZE = 8192
# After a valid match of the whole window, how many more likely regions are tried for one
# written in that region's own layout (a number valid in ten regions costs ten runs).
LAYOUT_TRIES = 3

# The characters of a `PhoneNumberMatcher` candidate (phonenumbers 9): digits; its phone
# punctuation; `+` and opening brackets; what its extension patterns hold (separators,
# `;ext=`, `#`, `~`, the labels' letters, matched ignoring case as the library matches them).
_PUNCTUATION = (
    "-x\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d\uff0e\uff0f \u00a0\u00ad"
    "\u200b\u2060\u3000()\uff08\uff09\uff3b\uff3d.[]/~\u2053\u223c\uff5e"
)
_LEAD = "+\uff0b"
_EXTENSION = "\t,:;=#\uff03\u0301aeinostx\u00f3\uff45\uff49\uff4e\uff54\uff58\u0434\u043e\u0431"
CANDIDATE_CHARS = _PUNCTUATION + _LEAD + _EXTENSION
SEGMENT_RE = re.compile(r"[\d" + re.escape(CANDIDATE_CHARS) + "]+", re.IGNORECASE)
# The segments that hold `MIN_DIGITS` digits or more: the same runs, each from its start
# (the look-behind: one step at any other place, so the scan stays linear), its
# non-digits taken possessively between the digits it counts (runs of fewer digits,
# words and spaces, never reach Python).
# The class is written out without IGNORECASE (a case-insensitive class is tested per
# character, a third of this scan's time): the letters IGNORECASE also matches for
# `_EXTENSION`'s (upper case, and Python's other case equivalents: `İ ı ſ ᲁ ᲂ`); a test
# holds it, code point by code point, to `SEGMENT_RE`'s class.
_CASED = (
    "AEINOSTX\u00d3\u0130\u0131\u017f\u0411\u0414\u041e\u1c81\u1c82\uff25\uff29\uff2e\uff34\uff38"
)
_C = re.escape(CANDIDATE_CHARS + _CASED)  # no digit among them
_LONG_SEGMENT_RE = re.compile(rf"(?<![\d{_C}])[{_C}]*+(?:\d[{_C}]*+){{{MIN_DIGITS}}}[\d{_C}]*+")
# A comma between two numbers (`030 901820, 030 901821`): no candidate spans it (an
# extension after a comma needs a label first).
_LIST_COMMA_RE = re.compile(r"(?<=\d)[ \t\u00a0]*,[ \t\u00a0,]*(?=[\d+\uff0b(\[\uff08\uff3b])")
_EXTENSION_RE = re.compile(r"[ \t]?(?:x|ext\.?|extension|\#)[ \t]?\d{1,6}$", re.IGNORECASE)
_CARD_LAYOUT_RE = re.compile(r"\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}")
_FORMATTED = frozenset("+ -.()/\t\u00a0\u3000\u30fc\u2010\u2011\u2012\u2013\u2014\u2015")
_GROUP_RE = re.compile(r"\d+")
# Whitespace next to a parenthesis (a run followed by one, or after one), removed with a
# literal "" (no template to expand per match, as `\s*([()])\s*` -> `\1` needs).
_PAREN_SPACE_RE = re.compile(r"\s+(?=[()])|(?<=[()])\s+")
_TYPES = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


class Match(NamedTuple):
    """A number `PhoneNumberMatcher` found: `raw` is the text at `[start, end)`."""

    start: int
    end: int
    raw: str
    number: pn.PhoneNumber


def windows(text: str) -> list[tuple[int, int]]:
    """The spans of `text` the matcher runs on: runs of candidate characters, cut at commas
    between numbers, with at least `MIN_DIGITS` digits."""
    return [w for _, _, found in _segments(text) for w in found]


def _segments(text: str) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """The runs of candidate characters that hold windows, with their windows."""
    out: list[tuple[int, int, list[tuple[int, int]]]] = []
    for seg in _LONG_SEGMENT_RE.finditer(text):
        piece = seg.group()
        start = seg.start()
        if "," not in piece:  # no cut: the run holds `MIN_DIGITS` digits (the pattern's)
            out.append((start, seg.end(), [(start, seg.end())]))
            continue
        found: list[tuple[int, int]] = []
        pos = start
        for cut in _LIST_COMMA_RE.finditer(piece):
            if _digits(piece[pos - start : cut.start()]) >= MIN_DIGITS:
                found.append((pos, start + cut.start()))
            pos = start + cut.end()
        if _digits(piece[pos - start :]) >= MIN_DIGITS:
            found.append((pos, seg.end()))
        if found:
            out.append((start, seg.end(), found))
    return out


def rewindow(
    masked: str,
    segments: list[tuple[int, int, list[tuple[int, int]]]],
    spans: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """`windows(masked)`, where `masked` is the text of `segments` (`_segments`) with
    `spans` masked. Masking only ends runs (`_` is no candidate character), and a piece
    of a run after masking holds only digits of one piece before (a comma cut lost with
    the digit before it leaves the comma, no digit), so a run without windows stays
    without: only the runs a span touches are searched again, each a text of its own (the
    characters around a run end it)."""
    found: list[tuple[int, int]] = []
    for a, b, ws in segments:
        if any(s < b and e > a for s, e in spans):
            found.extend((a + s, a + e) for s, e in windows(masked[a:b]))
        else:
            found.extend(ws)
    return found


def matches(window: str, region: str) -> list[Match]:
    """`PhoneNumberMatcher(window, region, leniency=POSSIBLE)`'s matches holding at least
    `MIN_DIGITS` digits (shorter candidates skipped unparsed: `min_candidate_length`)."""
    return [
        Match(m.start, m.end, m.raw_string, m.number)
        for m in pn.PhoneNumberMatcher(
            window, region, leniency=Leniency.POSSIBLE, min_candidate_length=MIN_DIGITS
        )
        if _digits(m.raw_string) >= MIN_DIGITS
    ]


def text_matches(text: str, region: str) -> list[Match]:
    """What the detector's windows give for `region` over all of `text`: what
    `PhoneNumberMatcher(text, region, leniency=POSSIBLE)` finds with `MIN_DIGITS` digits or
    more (the oracle tests hold it to that)."""
    return [
        Match(a + m.start, a + m.end, m.raw, m.number)
        for a, b in windows(text)
        for m in matches(text[a:b], region)
    ]


class _Found(NamedTuple):
    start: int
    end: int
    valid: bool
    layout: int  # how closely the raw text follows the region's national format (0-3)
    rank: int  # configured order of the region; -1 for a number with its country code
    e164: str
    n_digits: int  # digits in the matched text, extension included


class _Screen(NamedTuple):
    """A region's numbering plan as public metadata gives it, for ordering regions."""

    idd: re.Pattern[str] | None  # international prefix
    prefix: re.Pattern[str] | None  # national prefix for parsing
    transform: str | None
    valid: re.Pattern[str] | None  # any number type's pattern, any region of the code
    valid_lengths: frozenset[int]
    possible_lengths: frozenset[int]


@cache
def _screen_of(region: str) -> _Screen:
    md = PhoneMetadata.metadata_for_region(region)
    if md is None:
        raise ConfigError(
            f"redaction_regions: {region!r} is not a region libphonenumber knows; use ISO "
            "3166 alpha-2 codes such as US, GB, DE, JP (EVALKEEPER_REDACTION_REGIONS=US,DE,JP)"
        )
    patterns: list[str] = []
    valid_lengths: set[int] = set()
    possible: set[int] = set()
    for other in pn.region_codes_for_country_code(md.country_code or 0) or (region,):
        omd = PhoneMetadata.metadata_for_region(other)
        general = omd.general_desc if omd is not None else None
        if omd is None or general is None:
            continue
        general_lengths = tuple(general.possible_length or ())
        possible.update(general_lengths, general.possible_length_local_only or ())
        for name in _TYPES:
            desc = getattr(omd, name, None)
            if desc is not None and desc.national_number_pattern:
                patterns.append(desc.national_number_pattern)
                valid_lengths.update(desc.possible_length or general_lengths)
    npfp = md.national_prefix_for_parsing or md.national_prefix
    return _Screen(
        re.compile(md.international_prefix) if md.international_prefix else None,
        re.compile(npfp) if npfp else None,
        md.national_prefix_transform_rule or None,
        re.compile("(?:" + ")|(?:".join(patterns) + ")") if patterns else None,
        frozenset(valid_lengths),
        frozenset(possible),
    )


INTERNATIONAL, LIKELY, POSSIBLE, UNLIKELY = range(4)


def screen(screens: Sequence[_Screen], digits: str) -> tuple[list[int], list[int], list[int]]:
    """Regions (indexes, configured order) whose international prefix starts `digits`;
    those where `digits` could be a valid national number (as written, national prefix
    stripped, or the prefix transformed; then the number types' patterns); and those where
    its length is at least possible (`reading` of each region)."""
    out: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
    for i, s in enumerate(screens):
        out[reading(s, digits)].append(i)
    return out[INTERNATIONAL], out[LIKELY], out[POSSIBLE]


def reading(s: _Screen, digits: str) -> int:
    """How a region may read `digits`: `INTERNATIONAL` (its international prefix starts
    them), else `national_reading`."""
    return INTERNATIONAL if international(s, digits) else national_reading(s, digits)


def international(s: _Screen, digits: str) -> bool:
    """Whether the region's international prefix starts `digits` (then it reads them with
    their country code, as every such region does)."""
    m = s.idd.match(digits) if s.idd is not None else None
    return bool(m and m.end() and digits[m.end() :][:1] != "0")


def national_reading(s: _Screen, digits: str) -> int:
    """`LIKELY` when `digits` could be a valid national number of the region, `POSSIBLE`
    when their length is at least possible, else `UNLIKELY`: the digits as written first
    (nearly always the answer), then the national prefix stripped or transformed."""
    prefix, transform, valid, valid_lengths, possible_lengths = s[1:]
    n = len(digits)
    if valid is not None and n in valid_lengths and valid.fullmatch(digits):
        return LIKELY
    can_be = n in possible_lengths
    m = prefix.match(digits) if prefix is not None else None
    if m and m.end():
        candidates = [digits[m.end() :]]
        if transform and m.lastindex:
            candidates.append(prefix.sub(transform, digits, count=1))  # type: ignore[union-attr]
        for c in candidates:
            if valid is not None and len(c) in valid_lengths and valid.fullmatch(c):
                return LIKELY
            can_be = can_be or len(c) in possible_lengths
    return POSSIBLE if can_be else UNLIKELY


@cache
def layout_chars(code: int) -> frozenset[str]:
    """Every character other than a digit or whitespace that `format_number(number,
    NATIONAL)` can write for a number of country code `code`: those of the national and
    international formats and national-prefix formatting rules of every region sharing the
    code (public `PhoneMetadata`), and of the extension prefixes (the library's `" ext. "`,
    a region's preferred one). A window holding another character is in no layout of
    that code (`_layout` 3 compares every character but whitespace)."""
    chars = set(" ext. ")
    for region in pn.region_codes_for_country_code(code) or ():
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            continue
        chars.update(md.preferred_extn_prefix or "")
        for f in (*(md.number_format or ()), *(md.intl_number_format or ())):
            chars.update(f.format or "")
            chars.update(f.national_prefix_formatting_rule or "")
    return frozenset(c for c in chars if not (c.isdecimal() or c.isspace()))


def warm_up(regions: Sequence[str]) -> None:
    """Load libphonenumber's metadata of every region and compile the patterns a number
    with a country code uses: the example number of each region (public `example_number`)
    written internationally, through a detector of its own (its caches are dropped with
    it). A process that will redact many traces calls it once (a redaction worker, about
    0.2 s): otherwise the first number of each country seen loads its metadata then."""
    numbers = (pn.example_number(r) for r in sorted(pn.SUPPORTED_REGIONS))
    text = "\n".join(
        pn.format_number(n, PhoneNumberFormat.INTERNATIONAL) for n in numbers if n is not None
    )
    PhoneDetector(regions).find(text)


class PhoneDetector:
    """Finds phone numbers for the configured `regions` under a `policy`."""

    def __init__(
        self, regions: Sequence[str], policy: PhonePolicy = "hybrid", *, layout_screen: bool = True
    ) -> None:
        if not regions:
            raise ConfigError(
                "redaction_regions is empty: national phone numbers would go unnoticed; "
                "list at least one region (EVALKEEPER_REDACTION_REGIONS=US,DE,JP)"
            )
        if policy not in ("possible", "valid", "hybrid"):
            raise ValueError(f"phone policy {policy!r}: use possible, valid or hybrid")
        # libphonenumber keeps its compiled metadata patterns (the metadata of 28 regions
        # holds more than `re`'s cache of 512: without it, matches recompile some)
        pn.enable_pattern_cache()
        self.regions = [r.strip().upper() for r in regions]
        self.policy = policy
        self._screens = [_screen_of(r) for r in self.regions]
        # any configured region's international prefix, in one pattern: digits it does not
        # start are read with an international prefix by no region (asked of each else)
        idds = [s.idd.pattern for s in self._screens if s.idd is not None]
        self._any_idd = re.compile("|".join(f"(?:{p})" for p in idds)) if idds else None
        # the regions by international prefix (most share `00`): `international` reads only
        # the prefix, so it is asked once per prefix, of the first region holding it
        by_idd: dict[str, list[int]] = {}
        for i, s in enumerate(self._screens):
            if s.idd is not None:
                by_idd.setdefault(s.idd.pattern, []).append(i)
        self._idd_regions = [(self._screens[ix[0]], ix) for ix in by_idd.values()]
        self._codes = [pn.country_code_for_region(r) for r in self.regions]
        self._cache: dict[str, tuple[Hit, ...]] = {}
        self._judgements: dict[_NumberKey, _Judged] = {}
        self.region_runs = 0  # (window, region) pairs given to the matcher
        # skip the layout tries that cannot change the answer (`_detect`); False: try them
        # all (the oracle test compares both)
        self.layout_screen = layout_screen

    def find(self, text: str) -> list[Hit]:
        """Phone numbers in `text` (earlier findings may be masked with `_`)."""
        segments = _segments(text)
        if not segments:
            return []
        found = [w for _, _, ws in segments for w in ws]
        spans: list[tuple[int, int]] = []
        for lo, hi in _neighbourhoods(text, found):
            spans.extend((lo + s, lo + e) for s, e in protected_spans(text[lo:hi]))
        if spans:  # nothing masked: the windows found already
            text = mask(text, spans)
            found = rewindow(text, segments, spans)
        hits: list[Hit] = []
        for a, b in found:
            hits.extend(
                Hit(a + h.start, a + h.end, h.kind, h.value)
                for h in self._window(text[a:b])
                if not _glued(text, a + h.start, a + h.end)
            )
        return hits

    def _window(self, text: str) -> tuple[Hit, ...]:
        cached = self._cache.get(text)
        if cached is None:
            cached = tuple(_merge(self._detect(text)))
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = cached
        return cached

    def _detect(self, text: str) -> list[_Found]:
        core = _core(text)
        if _CARD_LAYOUT_RE.fullmatch(core):
            return []  # 4111 1111 1111 1112: laid out as a card (a valid one is gone already)
        n_digits = _digits(text)
        formatted = not _FORMATTED.isdisjoint(_nfkc(core))
        found: list[_Found] = []
        if "+" in text or "\uff0b" in text:
            found += self._run(text, "ZZ", -1)
            if self._covered(found, n_digits):
                return found
        digits = _ascii_digits(_EXTENSION_RE.sub("", core))
        screens = self._screens
        abroad = (
            sorted(i for s, ix in self._idd_regions if international(s, digits) for i in ix)
            if self._any_idd is not None and self._any_idd.match(digits)
            else []
        )
        if abroad:  # `0049 30 901820`: one region reads it as every such region does
            found += self._run(text, self.regions[abroad[0]], -1)
            if any(f.valid and f.n_digits == n_digits for f in found):
                return found  # else national readings may do better (`0191`: SG's `019`)
        # regions sharing a country code (US, CA) read a national number alike: one of them
        codes: set[int] = set()
        # the likely regions, as `screen` orders them, screened one by one as the loop
        # needs them (it nearly always ends at the first or second); a region whose code
        # the loop has had is not screened (the loop would pass it over)
        likely = (
            i
            for i, s in enumerate(screens)
            if i not in abroad
            and self._codes[i] not in codes
            and national_reading(s, digits) == LIKELY
        )
        extra = LAYOUT_TRIES
        best: list[_Found] = []
        for i in likely:
            codes.add(self._codes[i])
            if best and self.layout_screen and not self._may_win(text, best, i, core):
                # a layout try that cannot win is skipped as tried (`_may_win`)
                if extra == 0:
                    return found
                extra -= 1
                continue
            found += self._run(text, self.regions[i], i)
            best = [f for f in found if f.valid and f.n_digits == n_digits]
            if best:
                if not formatted or any(f.layout == 3 for f in best) or extra == 0:
                    return found  # nothing later in the order can beat it (or: enough)
                extra -= 1
        if self._covered(found, n_digits) or (not formatted and self.policy != "possible"):
            return found  # a bare run of digits is taken only when valid: the screen said not
        _, likely_all, possible = screen(screens, digits)
        tried = set(likely_all)
        rest = [i for i in possible if i not in tried]
        rest += [i for i in range(len(self.regions)) if i not in tried and i not in possible]
        for i in rest:
            if self._codes[i] in codes:
                continue
            codes.add(self._codes[i])
            found += self._run(text, self.regions[i], i)
            if self._covered(found, n_digits):
                break
        return found

    def _may_win(self, text: str, best: list[_Found], i: int, core: str) -> bool:
        """Whether a layout try in region `i` could change the answer, after valid matches
        of every digit of the window (`best`, earlier regions). Its matches lose to them in
        the merge unless one spans what they span, is valid, and follows the region's
        national layout more closely than they do (a later region loses a tie). None spans
        more when they span one text that ends the window but for spaces, with no bracket
        or `+` before it (a candidate starts with a digit, a bracket or `+`, and ends at a
        digit, a letter or `#`); else the matcher runs. The matcher's number for a match
        of that text is `parse(text, region)` (it parses the candidate it matched), so the
        public functions answer without running it: `parse`, then the layout `_run` would
        give (`format_number`), then `is_valid_number`. Before them, for the exact layout
        only: a window holding a character that the region's formats cannot write
        (`layout_chars`) is in none of its layouts."""
        spans = {(f.start, f.end) for f in best}
        (start, end) = min(spans)
        if len(spans) > 1 or text[end:].strip() or not _LEAD_FREE.isdisjoint(text[:start]):
            # not the case reasoned about above (a match could also take a bracket or `+`
            # before, or a `#` or a letter after): run the matcher
            return True
        top = max(f.layout for f in best)
        if top == 2 and not _written_chars(core) <= layout_chars(self._codes[i]):
            return False
        raw = text[start:end]
        try:
            number = pn.parse(raw, self.regions[i])
        except pn.NumberParseException:
            return False
        if len(pn.national_significant_number(number)) < MIN_DIGITS:
            return False
        judged = _judged(number, self._judgements)
        return _layout(_nfkc(raw), judged) > top and judged.valid

    def _run(self, text: str, region: str, rank: int) -> list[_Found]:
        """The numbers the matcher finds in `text` for `region` (`rank` -1: by their
        country code) that the policy takes."""
        self.region_runs += 1
        out = []
        for m in matches(text, region):
            number = m.number
            if len(pn.national_significant_number(number)) < MIN_DIGITS:
                continue
            raw = _nfkc(m.raw)
            judged = _judged(number, self._judgements)
            if not (judged.valid or self._accepts_possible(raw)):
                continue
            fit = _layout(raw, judged) if judged.valid and rank >= 0 else 0
            out.append(_Found(m.start, m.end, judged.valid, fit, rank, judged.e164, _digits(raw)))
        return out

    def _accepts_possible(self, raw: str) -> bool:
        if self.policy == "hybrid":
            return not _FORMATTED.isdisjoint(raw)
        return self.policy == "possible"

    @staticmethod
    def _covered(found: list[_Found], n_digits: int) -> bool:
        """Whether the matches, merged, hold every digit of the window."""
        if any(f.n_digits == n_digits for f in found):
            return True
        return sum(f.n_digits for f in _chosen(found)) == n_digits


class _Judged:
    """libphonenumber's answers about one number: `is_valid_number`, and its E.164 and
    national forms (`format_number`), each asked when first needed."""

    __slots__ = ("_e164", "_national", "number", "valid")

    def __init__(self, number: pn.PhoneNumber) -> None:
        self.number = number
        self.valid: bool = pn.is_valid_number(number)
        self._e164: str | None = None
        self._national: str | None = None

    @property
    def e164(self) -> str:
        if self._e164 is None:
            self._e164 = pn.format_number(self.number, PhoneNumberFormat.E164)
        return self._e164

    @property
    def national(self) -> str:
        if self._national is None:
            self._national = pn.format_number(self.number, PhoneNumberFormat.NATIONAL)
        return self._national


_NumberKey = tuple[int | None, int | None, str | None, bool | None, int | None]


def _judged(number: pn.PhoneNumber, memo: dict[_NumberKey, _Judged]) -> _Judged:
    """libphonenumber's answers about `number`, memoised in `memo` (a detector's) by what
    they read of a number: its country code, national number, extension, Italian leading
    zero and number of leading zeros (a number written nationally and internationally, or
    read in two runs, is judged once). The matcher's numbers carry nothing else that these
    functions read (it clears the raw input, the country code's source and the carrier
    code)."""
    key = (
        number.country_code,
        number.national_number,
        number.extension,
        number.italian_leading_zero,
        number.number_of_leading_zeros,
    )
    judged = memo.get(key)
    if judged is None:
        if len(memo) >= _CACHE_SIZE:
            memo.clear()
        judged = memo[key] = _Judged(number)
    return judged


def _layout(raw: str, number: pn.PhoneNumber | _Judged) -> int:
    """How closely `raw` (NFKC) follows the national format `format_number` gives: 3
    exactly, spaces around parentheses aside (JP's `090-3640-5259`, US's `(327)639-8590`),
    2 the same digit groups, 1 the same first group (the area code: `(0191) 4960072`
    against GB's `0191 496 0072`), 0 otherwise or for a bare run of digits."""
    groups = _GROUP_RE.findall(raw)
    if len(groups) < 2:
        return 0
    national = (
        number.national
        if isinstance(number, _Judged)
        else pn.format_number(number, PhoneNumberFormat.NATIONAL)
    )
    national_groups = _GROUP_RE.findall(national)
    if national_groups != groups:  # then not 3 either: spaces never join digit groups
        return 1 if national_groups and national_groups[0] == groups[0] else 0
    if _PAREN_SPACE_RE.sub("", national) == _PAREN_SPACE_RE.sub("", " ".join(raw.split())):
        return 3
    return 2


def _latin_letter(c: str) -> bool:
    """A letter of the Latin script (the blocks libphonenumber's `Leniency.VALID` checks)."""
    o = ord(c)
    return c.isalpha() and (o < 0x250 or 0x1E00 <= o < 0x1F00)


def _glued(text: str, start: int, end: int) -> bool:
    """Whether the match at `[start, end)` touches a Latin letter (`2026-11-30T14`,
    `abc8005001234`), as libphonenumber's `Leniency.VALID` rejects it; letters of other
    scripts do not count (`電話番号は090-2867-8126です` is a phone number)."""
    before = start > 0 and text[start] not in "+(\uff0b\uff08" and _latin_letter(text[start - 1])
    return before or (end < len(text) and _latin_letter(text[end]))


def _core(window: str) -> str:
    """The window from its first digit (or the `+` or bracket before it) to its last."""
    m = _DIGIT_SPAN_RE.search(window)
    if m is None:
        return window
    first = m.start()
    while first > 0 and window[first - 1] in "+(\uff0b\uff08":
        first -= 1
    return window[first : m.end()]


# From the first decimal digit (any script, as `str.isdecimal`) to the last.
_DIGIT_SPAN_RE = re.compile(r"\d(?:.*\d)?", re.DOTALL)


# What may start a matcher's candidate before its first digit (opening brackets, `+`).
_LEAD_FREE = frozenset("([\uff08\uff3b+\uff0b")

_DASHES = str.maketrans(dict.fromkeys("\u30fc\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))


def _nfkc(text: str) -> str:
    """Full-width digits and punctuation as ASCII, dashes as `-` (`０９０－２８６７` and
    `090ー2867` are `090-2867`)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text).translate(_DASHES)


def _written_chars(core: str) -> frozenset[str]:
    """The characters, digits and whitespace aside, from the first digit of `core` to its
    last (NFKC, dashes as `-`): every match of all its digits holds them."""
    m = _DIGIT_SPAN_RE.search(core)
    span = _nfkc(m.group()) if m else ""
    return frozenset(c for c in span if not (c.isdecimal() or c.isspace()))


def _ascii_digits(text: str) -> str:
    """The decimal digits of `text` (any script), as ASCII."""
    if text.isascii():
        return _NOT_DIGIT_RE.sub("", text)
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


_NOT_DIGIT_RE = re.compile(r"[^0-9]")


def _neighbourhoods(text: str, found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of `text` around the windows, CONTEXT characters each side widened to the next
    whitespace (a cut word would look like an id), overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in found:
        lo = start - CONTEXT
        lo = 0 if lo <= 0 else text.rfind(" ", 0, lo) + 1
        hi = text.find(" ", end + CONTEXT)
        hi = len(text) if hi < 0 else hi
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _digits(text: str) -> int:
    return sum(map(str.isdecimal, text))


def _chosen(found: list[_Found]) -> list[_Found]:
    """Non-overlapping matches: longest first, then valid before possible, then a match in
    the region's own layout, then region order."""
    if len(found) < 2:
        return list(found)
    chosen: list[_Found] = []
    for f in sorted(found, key=lambda f: (f.start - f.end, not f.valid, -f.layout, f.rank)):
        if all(f.end <= c.start or f.start >= c.end for c in chosen):
            chosen.append(f)
    chosen.sort(key=lambda f: f.start)
    return chosen


def _merge(found: list[_Found]) -> list[Hit]:
    return [Hit(f.start, f.end, "PHONE", f.e164) for f in _chosen(found)]
