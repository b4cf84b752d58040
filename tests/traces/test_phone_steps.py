"""The phone detector's shortcuts into libphonenumber against libphonenumber itself:
`WindowParse` (one window parsed for many regions, its region-independent steps done once)
must give what `phonenumbers.parse` gives, field for field, and `is_valid` (precompiled
patterns) what `phonenumbers.is_valid_number` says, and `is_possible` what
`is_possible_number` says, and `format_national` what `format_number(..., NATIONAL)`
gives, on the Faker corpus's windows and on generated ones:
international and trunk prefixes, country codes glued on, extensions. The screen is
checked against its plain statement, candidate by candidate."""

from __future__ import annotations

import random

import phonenumbers as pn
import pytest

from benchmarks.redaction import make_corpus
from evalkeeper.settings import DEFAULT_REDACTION_REGIONS
from evalkeeper.traces.phone_match import WindowParse
from evalkeeper.traces.phone_plan import (
    Plan,
    format_national,
    is_possible,
    is_valid,
    plan,
    screen,
)
from evalkeeper.traces.phones import WINDOW_RE

SEED = 20261130
# The default regions, regions sharing a country code with one of them (NANPA, +7, +39,
# +44, +61), and regions with unusual prefixes (HU 06, BY 8 10, AR 0 and 15, UZ, ZZ: none).
REGIONS = ["ZZ", *DEFAULT_REDACTION_REGIONS, "RU", "KZ", "IM", "GG", "JE", "VA", "CX", "AG"]
REGIONS += ["HU", "BY", "UZ", "FI", "AX"]
PREFIXES = ["", "+", "00", "011", "0", "(0", "+1 ", "1", "8", "+0", "++", "010", "06", "810"]


@pytest.fixture(scope="module")
def windows() -> list[str]:
    corpus = make_corpus(30, SEED)
    found = {w.group() for m in corpus.messages for w in WINDOW_RE.finditer(m.text)}
    found |= {v for m in corpus.messages for k, v in m.pii if k == "PHONE"}
    rng = random.Random(SEED)
    for _ in range(1500):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 16)))
        tail = rng.choice(["", " x12", " ext. 5", ")", "-4", " 1"])
        found.add(rng.choice(PREFIXES) + digits + tail)
    # digits other than ASCII (normalised by libphonenumber), and letters for digits
    found |= {"\uff10\uff19\uff10-3640-5259", "+\u0664\u0669 30 901820", "1-800-FLOWERS"}
    found |= {"0800 MY CALL", "+44 (0) 20 7946 0958 ext 2", "\u0660\u0661\u0669\u0661 4960072"}
    return sorted(found)


def _parse(window: str, region: str) -> pn.PhoneNumber | None:
    try:
        return pn.parse(window, region)
    except pn.NumberParseException:
        return None


def _fields(number: pn.PhoneNumber | None) -> tuple[object, ...] | None:
    if number is None:
        return None
    return (
        number.country_code,
        number.national_number,
        number.extension,
        number.italian_leading_zero,
        number.number_of_leading_zeros,
        number.country_code_source,
        number.preferred_domestic_carrier_code,
    )


def test_window_parse_gives_what_parse_gives(windows: list[str]) -> None:
    differ = []
    parsed = 0
    for window in windows:
        once = WindowParse(window)
        for region in REGIONS:
            expected = _parse(window, region)
            got = once.parse(region)
            parsed += expected is not None
            if _fields(got) != _fields(expected):
                differ.append((window, region, got, expected))
    assert not differ, differ[:3]
    assert parsed > len(windows) * len(REGIONS) // 3  # most pairs parse: a real comparison


def test_window_parse_possible_is_parse_then_is_possible(windows: list[str]) -> None:
    for window in windows[:500]:
        once = WindowParse(window)
        for region in ("ZZ", "US", "GB", "DE", "JP"):
            number = _parse(window, region)
            expected = number if number is not None and pn.is_possible_number(number) else None
            assert _fields(once.possible(region)) == _fields(expected), (window, region)


def _numbers(windows: list[str]) -> list[pn.PhoneNumber]:
    """Numbers parsed from the windows, example numbers of every region and type, and
    random national numbers for every country code (mostly invalid ones)."""
    out = [n for w in windows for r in REGIONS if (n := _parse(w, r)) is not None]
    for region in sorted(pn.SUPPORTED_REGIONS):
        for kind in range(11):
            example = pn.example_number_for_type(region, kind)
            if example is not None:
                out.append(example)
    rng = random.Random(SEED)
    for code in [*sorted(pn.COUNTRY_CODE_TO_REGION_CODE), 999]:
        for _ in range(60):
            nsn = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 15)))
            number = pn.PhoneNumber(country_code=code, national_number=int(nsn))
            zeros = len(nsn) - len(nsn.lstrip("0"))
            if zeros:
                number.italian_leading_zero = True
                number.number_of_leading_zeros = zeros if zeros > 1 else None
            out.append(number)
    return out


def test_is_valid_says_what_is_valid_number_says(windows: list[str]) -> None:
    numbers = _numbers(windows)
    differ = [n for n in numbers if is_valid(n) != pn.is_valid_number(n)]
    assert not differ, differ[:3]
    valid = sum(map(is_valid, numbers))
    assert 1000 < valid < len(numbers) - 1000  # both answers well represented


@pytest.mark.parametrize(
    ("text", "region", "valid"),
    [
        ("+1 268 464 1234", "ZZ", True),  # Antigua: NANPA, chosen by its leading digits
        ("+1 613 555 0143", "ZZ", True),  # Canada: not valid for the US, the first region
        ("+1 099 555 0143", "ZZ", False),  # valid in no NANPA region
        ("+44 1624 756789", "ZZ", True),  # Isle of Man, behind GB's country code
        ("+44 7781 123456", "ZZ", True),  # Guernsey, by its leading digits
        ("+44 7700 900123", "ZZ", False),
        ("+7 700 123 4567", "ZZ", True),  # Kazakhstan, behind Russia's country code
        ("+39 06 698 12345", "ZZ", True),  # Vatican City, behind Italy's
        ("+44 191 496 0072", "ZZ", True),
        ("(0191) 4960072", "GB", True),
        ("090-3640-5259", "JP", True),
        ("08808125559", "DE", True),
    ],
)
def test_is_valid_on_shared_country_codes(text: str, region: str, valid: bool) -> None:
    number = pn.parse(text, region)
    assert is_valid(number) is pn.is_valid_number(number) is valid


def test_is_possible_says_what_is_possible_number_says(windows: list[str]) -> None:
    numbers = _numbers(windows)
    differ = [n for n in numbers if is_possible(n) != pn.is_possible_number(n)]
    assert not differ, differ[:3]
    possible = sum(map(is_possible, numbers))
    assert 1000 < possible < len(numbers) - 1000


def _screen_reference(plans: list[Plan], digits: str) -> tuple[list[int], list[int]]:
    """The screen as stated: the digits, with the national prefix stripped, and with it
    transformed; likely where one is of a valid length and matches a number-type pattern,
    possible where one (before a likely one) is of a possible length."""
    likely: list[int] = []
    possible: list[int] = []
    for i, p in enumerate(plans):
        candidates = [digits]
        if p.prefix is not None:
            m = p.prefix.match(digits)
            if m and m.end():
                candidates.append(digits[m.end() :])
                if p.transform and m.lastindex:
                    candidates.append(p.prefix.sub(p.transform, digits, count=1))
        is_likely = is_possible = False
        for c in candidates:
            if len(c) in p.valid_lengths and p.valid is not None and p.valid.fullmatch(c):
                is_likely = True
                break
            is_possible = is_possible or len(c) in p.possible_lengths
        if is_likely:
            likely.append(i)
        elif is_possible:
            possible.append(i)
    return likely, possible


def test_the_screen_is_its_plain_statement(windows: list[str]) -> None:
    plans = [plan(r) for r in REGIONS if r != "ZZ"]
    digit_runs = {"".join(c for c in w if c.isdigit()) for w in windows}
    differ = [d for d in sorted(digit_runs) if screen(plans, d) != _screen_reference(plans, d)]
    assert not differ, differ[:3]
    assert sum(bool(screen(plans, d)[0]) for d in digit_runs) > len(digit_runs) // 3


def test_format_national_gives_what_format_number_gives(windows: list[str]) -> None:
    numbers = _numbers(windows)
    national = pn.PhoneNumberFormat.NATIONAL
    differ = [n for n in numbers if format_national(n) != pn.format_number(n, national)]
    assert not differ, differ[:3]
    assert sum(n.extension is not None for n in numbers) > 100  # extensions were formatted
    laid_out = sum(format_national(n) != pn.national_significant_number(n) for n in numbers)
    assert laid_out > len(numbers) // 4  # most numbers had a format to follow


def test_normalising_the_digits_is_libphonenumbers_normalise() -> None:
    from phonenumbers.phonenumberutil import _normalize

    from evalkeeper.traces.phone_match import _normalized

    rng = random.Random(SEED)
    chars = "0123456789 -+()./xXabcEXT\u0660\u0661\uff10\uff11\u00b2\u0663"
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 20))) for _ in range(20000)]
    texts += ["1-800-FLOWERS", "+1 650 253 0000", "030 901820", "\uff10\uff19\uff10"]
    assert [_normalized(t) for t in texts] == [_normalize(t) for t in texts]
