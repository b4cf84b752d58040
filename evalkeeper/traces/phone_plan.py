"""Numbering plans of the configured regions, reduced to what phone detection asks of them:
where a run of digits could be a valid national number (the screen), whether a parsed
number is valid (`is_valid`, libphonenumber's answer from precompiled patterns), and how
closely a written number follows its region's national layout."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import phonenumbers as pn
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from evalkeeper.errors import ConfigError

_TYPE_DESCS = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip
_GROUP_RE = re.compile(r"\d+")
_PAREN_SPACE_RE = re.compile(r"\s*([()])\s*")
_FIRST_GROUP_RE = re.compile(r"(\\\d)")  # libphonenumber's `\1` in a format rule


class Plan(NamedTuple):
    """A region's numbering plan, reduced to what the screen needs."""

    region: str
    prefix: re.Pattern[str] | None  # national prefix for parsing
    transform: str | None
    valid: re.Pattern[str] | None  # any number type's national pattern
    valid_lengths: frozenset[int]
    possible_lengths: frozenset[int]


def plan(region: str) -> Plan:
    """The plan of `region` (ISO 3166 alpha-2); a region libphonenumber lacks is named."""
    md = PhoneMetadata.metadata_for_region(region)
    if md is None:
        raise ConfigError(
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
    return Plan(
        region,
        re.compile(npfp) if npfp else None,
        md.national_prefix_transform_rule or None,
        re.compile("(?:" + ")|(?:".join(patterns) + ")") if patterns else None,
        frozenset(valid_lengths),
        frozenset(possible),
    )


def screen(plans: Sequence[Plan], digits: str) -> tuple[list[int], list[int]]:
    """Plans (indexes, configured order) where `digits` could be a valid national number
    (as written, national prefix stripped, or the prefix transformed; then the region's
    number-type patterns), and those where its length is at least possible."""
    likely: list[int] = []
    possible: list[int] = []
    size = len(digits)
    for i, (_, prefix, transform, valid, valid_lengths, possible_lengths) in enumerate(plans):
        if valid is None:
            if size in possible_lengths:
                possible.append(i)
            continue
        if size in valid_lengths and valid.fullmatch(digits):
            likely.append(i)
            continue
        is_possible = size in possible_lengths
        m = prefix.match(digits) if prefix is not None else None
        if m and m.end():
            stripped = digits[m.end() :]
            n = len(stripped)
            if n in valid_lengths and valid.fullmatch(stripped):
                likely.append(i)
                continue
            is_possible = is_possible or n in possible_lengths
            if transform and m.lastindex and prefix is not None:
                transformed = prefix.sub(transform, digits, count=1)
                n = len(transformed)
                if n in valid_lengths and valid.fullmatch(transformed):
                    likely.append(i)
                    continue
                is_possible = is_possible or n in possible_lengths
        if is_possible:
            possible.append(i)
    return likely, possible


class _Validity(NamedTuple):
    """What `phonenumbers.is_valid_number_for_region` checks of a national significant
    number in one region, its patterns compiled once."""

    country_code: int
    general_lengths: frozenset[int]  # empty: any length
    general: re.Pattern[str] | None
    by_length: dict[int, re.Pattern[str]]  # the number types' patterns, by length
    other_lengths: re.Pattern[str] | None  # the types that name no lengths
    leading: re.Pattern[str] | None  # the region's leading digits, among regions sharing a code


@cache
def _validity(country_code: int, region: str) -> _Validity | None:
    md = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if md is None or md.country_code is None:
        return None
    general = md.general_desc
    descs = [getattr(md, name, None) for name in _TYPE_DESCS]
    if md.same_mobile_and_fixed_line_pattern:  # then the mobile type is never tried alone
        descs = [x for name, x in zip(_TYPE_DESCS, descs, strict=True) if name != "mobile"]
    typed = [
        (frozenset(x.possible_length or ()), x.national_number_pattern)
        for x in descs
        if x is not None and x.national_number_pattern
    ]
    lengths = {n for named, _ in typed for n in named}

    def either(patterns: list[str]) -> re.Pattern[str] | None:
        return re.compile("(?:" + ")|(?:".join(patterns) + ")") if patterns else None

    by_length = {}
    for n in lengths:
        rx = either([p for named, p in typed if not named or n in named])
        if rx is not None:
            by_length[n] = rx
    return _Validity(
        md.country_code,
        frozenset(general.possible_length or ()) if general is not None else frozenset(),
        re.compile(general.national_number_pattern)
        if general is not None and general.national_number_pattern
        else None,
        by_length,
        either([p for named, p in typed if not named]),
        re.compile(md.leading_digits) if md.leading_digits else None,
    )


def _valid_nsn(v: _Validity, nsn: str) -> bool:
    """`_number_type_helper(nsn, metadata) != UNKNOWN`: the general pattern (and length),
    then any number type's pattern (and length)."""
    n = len(nsn)
    if v.general is None or (v.general_lengths and n not in v.general_lengths):
        return False
    if v.general.fullmatch(nsn) is None:
        return False
    rx = v.by_length.get(n, v.other_lengths)
    return rx is not None and rx.fullmatch(nsn) is not None


def is_valid(number: pn.PhoneNumber) -> bool:
    """`phonenumbers.is_valid_number(number)`: the region of its country code (among regions
    sharing one, the first whose leading digits match, or else where it is valid), then
    whether it is valid there."""
    country_code = number.country_code
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code) if country_code else None
    if not regions:
        return False
    nsn = pn.national_significant_number(number)
    if len(regions) == 1:
        v = _validity(country_code, regions[0])
        return v is not None and v.country_code == country_code and _valid_nsn(v, nsn)
    for region in regions:  # as `_region_code_for_number_from_list`
        v = _validity(country_code, region)
        if v is None:
            continue
        if v.leading is not None:
            if v.leading.match(nsn):
                return v.country_code == country_code and _valid_nsn(v, nsn)
        elif _valid_nsn(v, nsn):
            return v.country_code == country_code
    return False


@cache
def _possible_lengths(country_code: int) -> frozenset[int] | None:
    """The lengths `phonenumbers.is_possible_number` accepts for a country code (local-only
    ones included); None for a code without them (then libphonenumber is asked)."""
    if country_code not in COUNTRY_CODE_TO_REGION_CODE:
        return frozenset()
    region = pn.region_code_for_country_code(country_code)
    md = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    general = md.general_desc if md is not None else None
    if general is None or not general.possible_length:
        return None
    return frozenset(general.possible_length) | frozenset(general.possible_length_local_only or ())


def is_possible(number: pn.PhoneNumber) -> bool:
    """`phonenumbers.is_possible_number(number)`: the national significant number's length
    is one of the general lengths of its country code's main region (or a local-only one)."""
    lengths = _possible_lengths(number.country_code or 0)
    if lengths is None:  # pragma: no cover - no such code in the metadata
        return bool(pn.is_possible_number(number))
    return len(pn.national_significant_number(number)) in lengths


class _Format(NamedTuple):
    leading: re.Pattern[str] | None  # the last leading-digits pattern, if any
    pattern: re.Pattern[str]
    rule: str  # the format, with the national prefix rule put in its first group


@cache
def _national_formats(country_code: int) -> tuple[tuple[_Format, ...], str] | None:
    """The national formats of a country code's main region, as `format_number` applies
    them (compiled once), and its extension prefix; None for an unknown code (or a format
    lacking its pattern: then libphonenumber formats)."""
    if country_code not in COUNTRY_CODE_TO_REGION_CODE:
        return None
    region = pn.region_code_for_country_code(country_code)
    md = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region.upper())
    if md is None:  # pragma: no cover - a code without metadata
        return None
    formats = []
    for f in md.number_format:
        rule = f.format
        if rule is None or f.pattern is None:  # pragma: no cover - not in the metadata
            return None
        if f.national_prefix_formatting_rule:
            rule = _FIRST_GROUP_RE.sub(f.national_prefix_formatting_rule, rule, count=1)
        leading = re.compile(f.leading_digits_pattern[-1]) if f.leading_digits_pattern else None
        formats.append(_Format(leading, re.compile(f.pattern), rule))
    extension = md.preferred_extn_prefix if md.preferred_extn_prefix is not None else " ext. "
    return tuple(formats), extension


def format_national(number: pn.PhoneNumber) -> str:
    """`phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)`: the first format
    whose leading digits and pattern fit the national significant number, the national
    prefix rule applied, then the extension."""
    table = _national_formats(number.country_code or 0)
    if table is None or not number.national_number:
        return str(pn.format_number(number, PhoneNumberFormat.NATIONAL))
    formats, extension_prefix = table
    nsn = pn.national_significant_number(number)
    formatted = nsn
    for f in formats:
        if (f.leading is None or f.leading.match(nsn)) and f.pattern.fullmatch(nsn):
            formatted = f.pattern.sub(f.rule, nsn)
            break
    if number.extension:
        formatted += extension_prefix + number.extension
    return formatted


def layout(raw: str, number: pn.PhoneNumber) -> int:
    """How closely `raw` follows the region's national format: 3 exactly, spaces around
    parentheses aside (JP's `090-3640-5259`, US's `(327)639-8590`), 2 the same digit
    groups, 1 the same first group (the area code: `(0191) 4960072` against GB's
    `0191 496 0072`), 0 otherwise or for a bare run of digits."""
    groups = _GROUP_RE.findall(raw)
    if len(groups) < 2:
        return 0
    national = format_national(number)
    national_groups = _GROUP_RE.findall(national)
    if national_groups != groups:  # then not 3 either: spaces never join digit groups
        return 1 if national_groups and national_groups[0] == groups[0] else 0
    if _PAREN_SPACE_RE.sub(r"\1", national) == _PAREN_SPACE_RE.sub(r"\1", " ".join(raw.split())):
        return 3
    return 2


def keep_compiled_patterns() -> None:
    """Have libphonenumber keep its compiled metadata patterns. Its default relies on the
    `re` module's cache of 512 patterns, and the metadata of 28 regions holds more: every
    match then recompiles patterns (a third of the redaction time). The patterns come from
    the fixed metadata, so the kept set is bounded."""
    enable = getattr(pn, "enable_pattern_cache", None)
    if enable is not None:  # phonenumbers >= 9.0.4x
        enable()
