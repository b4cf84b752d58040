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
"""

from __future__ import annotations

from typing import NamedTuple

import phonenumbers as pn
from phonenumbers import Leniency

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
    try:
        number = pn.parse(window, region)
    except pn.NumberParseException:
        return None
    return number if pn.is_possible_number(number) else None


def matcher_matches(window: str, region: str) -> list[Match]:
    """Every match of `PhoneNumberMatcher(window, region, leniency=POSSIBLE)`."""
    return [
        Match(m.start, m.end, m.raw_string, m.number)
        for m in pn.PhoneNumberMatcher(window, region, leniency=Leniency.POSSIBLE)
    ]
