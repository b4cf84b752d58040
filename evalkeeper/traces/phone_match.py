"""What `phonenumbers.PhoneNumberMatcher` finds in one candidate window, without running
the matcher when the answer is plain.

`PhoneNumberMatcher(window, region, leniency=POSSIBLE)` takes the leftmost match of its
candidate pattern, trims it at a second number's start, skips it when it looks like a date,
rejects it when its brackets do not pair or it looks like a page reference, and otherwise
parses it with `phonenumbers.parse` and keeps it when the number is possible; only a
candidate that fails looks inside for inner matches (groups split at slashes, parentheses,
dashes, dots, spaces), and the search goes on after a match.

A window is *plain* when the candidate pattern spans all of it and none of those checks
fires (the time-stamp check needs text after the candidate: there is none). Then, when the
whole window parses to a possible number, the matcher's only match is that number over the
whole window: `parse_whole` gives it from one `parse`; in every other case the detector
asks the matcher (`matcher_matches`). The checks use the matcher's own patterns; without them no window is plain.

A window is tried for several regions: `WindowParse` does what `phonenumbers.parse` does
the same for every region (the possible number, the extension, the digits normalised)
once, and per region only the rest (an international prefix or the region's own country
code, the national prefix), with libphonenumber's own steps.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers as pn
from phonenumbers import Leniency

from evalkeeper.traces.phone_plan import is_possible

try:  # the matcher's own patterns, so that a plain window is judged exactly as it judges
    from phonenumbers.phonenumbermatcher import (
        _MATCHING_BRACKETS,
        _PATTERN,
        _PUB_PAGES,
        _SLASH_SEPARATED_DATES,
    )
    from phonenumbers.phonenumberutil import _SECOND_NUMBER_START_PATTERN

    _HAVE_PATTERNS = True
except ImportError:  # pragma: no cover - a phonenumbers release that moved them
    _HAVE_PATTERNS = False

try:  # the steps of `phonenumbers.parse`, so that a window is parsed once for all regions
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import (
        _MAX_INPUT_STRING_LENGTH,
        _MAX_LENGTH_FOR_NSN,
        _MIN_LENGTH_FOR_NSN,
        _PLUS_CHARS_PATTERN,
        _VALID_ALPHA_PHONE_PATTERN,
        ValidationResult,
        _build_national_number_for_parsing,
        _check_region_for_parsing,
        _extract_country_code,
        _is_viable_phone_number,
        _match_national_number,
        _maybe_strip_extension,
        _maybe_strip_national_prefix_carrier_code,
        _normalize,
        _parse_prefix_as_idd,
        _set_italian_leading_zeros_for_phone_number,
        _test_number_length,
        region_code_for_country_code,
    )
    from phonenumbers.re_util import re_compile

    _HAVE_STEPS = True
    _SHORT = (  # lengths at which parse keeps the national prefix
        ValidationResult.TOO_SHORT,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    )
except ImportError:  # pragma: no cover - a phonenumbers release that moved them
    _HAVE_STEPS = False


class Match(NamedTuple):
    """A number the matcher finds: `raw` is `window[start:end]`."""

    start: int
    end: int
    raw: str
    number: pn.PhoneNumber


def plain(window: str) -> bool:
    """Whether the matcher's first candidate in `window` is all of it, untrimmed, and passes
    its date, bracket and page-reference checks (the same for every region)."""
    if not _HAVE_PATTERNS:  # pragma: no cover
        return False
    m = _PATTERN.match(window)
    return (
        m is not None
        and m.end() == len(window)
        and _SECOND_NUMBER_START_PATTERN.search(window) is None
        and _SLASH_SEPARATED_DATES.search(window) is None
        and _MATCHING_BRACKETS.fullmatch(window) is not None
        and _PUB_PAGES.search(window) is None
    )


def parse_whole(window: str, region: str) -> pn.PhoneNumber | None:
    """The number that the whole of `window` parses to for `region`, when it is possible
    (for a plain window: the matcher's only match); else None."""
    return WindowParse(window).possible(region)


_ASCII_NON_DIGITS_RE = re.compile(r"[^0-9]+")


def _normalized(number: str) -> str:
    """libphonenumber's `_normalize`: letters mapped to digits when there are three or more
    of them, else only the digits kept, as ASCII (its character-by-character loop, for
    ASCII text without letters enough: just the ASCII digits)."""
    if number.isascii() and _VALID_ALPHA_PHONE_PATTERN.fullmatch(number) is None:
        return _ASCII_NON_DIGITS_RE.sub("", number)
    return str(_normalize(number))


class WindowParse:
    """`phonenumbers.parse(window, region)` for one window and many regions."""

    def __init__(self, window: str) -> None:
        self.window = window
        self._ready = False
        self._national = ""  # the possible number, its extension stripped
        self._extension = ""
        self._plus_tail: str | None = None  # the digits after a leading plus, normalised
        self._normalized = ""  # all the digits, normalised (no leading plus)
        self._viable = False

    def possible(self, region: str) -> pn.PhoneNumber | None:
        """The number for `region` when the window parses to a possible one; else None."""
        number = self.parse(region)
        return number if number is not None and is_possible(number) else None

    def parse(self, region: str) -> pn.PhoneNumber | None:
        """`phonenumbers.parse(window, region)`, or None where it raises."""
        if not _HAVE_STEPS:  # pragma: no cover
            return self._parse(region)
        if not self._ready:
            self._prepare()
        if not self._viable:
            return None
        national = self._national
        if not _check_region_for_parsing(national, region):
            return None
        number = pn.PhoneNumber()
        if self._extension:
            number.extension = self._extension
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        # _maybe_extract_country_code(national, metadata, False, number)
        if self._plus_tail is not None:
            from_default, full = False, self._plus_tail
        else:
            idd = "NonMatch"
            if metadata is not None and metadata.international_prefix is not None:
                idd = metadata.international_prefix
            stripped, full = _parse_prefix_as_idd(re_compile(idd), self._normalized)
            from_default = not stripped
        country_code, national_number = 0, ""
        if not from_default:
            if len(full) <= _MIN_LENGTH_FOR_NSN:
                return None  # TOO_SHORT_AFTER_IDD
            country_code, national_number = _extract_country_code(full)
            if country_code == 0:  # parse retries after the plus: rare, leave it to parse
                return self._parse(region)
        elif metadata is not None:
            code = str(metadata.country_code)
            if full.startswith(code):
                potential = full[len(code) :]
                general = metadata.general_desc
                _, potential, _ = _maybe_strip_national_prefix_carrier_code(potential, metadata)
                if (
                    not _match_national_number(full, general, False)
                    and _match_national_number(potential, general, False)
                ) or _test_number_length(full, metadata) == ValidationResult.TOO_LONG:
                    country_code, national_number = metadata.country_code or 0, potential
        # the rest of parse
        if country_code != 0:
            number.country_code = country_code
            number_region = region_code_for_country_code(country_code)
            if number_region != region:
                metadata = PhoneMetadata.metadata_for_region_or_calling_code(
                    country_code, number_region
                )
        else:
            national_number = self._normalized
            number.country_code = metadata.country_code if metadata is not None else 0
        if len(national_number) < _MIN_LENGTH_FOR_NSN:
            return None
        if metadata is not None:
            _, potential, _ = _maybe_strip_national_prefix_carrier_code(national_number, metadata)
            result = _test_number_length(potential, metadata)
            if result not in _SHORT:
                national_number = potential
        if not _MIN_LENGTH_FOR_NSN <= len(national_number) <= _MAX_LENGTH_FOR_NSN:
            return None
        _set_italian_leading_zeros_for_phone_number(national_number, number)
        number.national_number = int(national_number)
        return number

    def _prepare(self) -> None:
        self._ready = True
        if len(self.window) > _MAX_INPUT_STRING_LENGTH:
            return
        try:
            national = _build_national_number_for_parsing(self.window)
        except pn.NumberParseException:
            return
        if not _is_viable_phone_number(national):
            return
        self._extension, national = _maybe_strip_extension(national)
        self._national = national
        plus = _PLUS_CHARS_PATTERN.match(national)
        if plus:
            self._plus_tail = _normalized(national[plus.end() :])
        else:
            self._normalized = _normalized(national)
        self._viable = True

    def _parse(self, region: str) -> pn.PhoneNumber | None:
        try:
            return pn.parse(self.window, region)
        except pn.NumberParseException:
            return None


def matcher_matches(window: str, region: str) -> list[Match]:
    """Every match of `PhoneNumberMatcher(window, region, leniency=POSSIBLE)`."""
    return [
        Match(m.start, m.end, m.raw_string, m.number)
        for m in pn.PhoneNumberMatcher(window, region, leniency=Leniency.POSSIBLE)
    ]
