"""The phone detector's prefilters against libphonenumber itself.

The detector runs `PhoneNumberMatcher` on windows of a text, not on the whole text, and
orders regions by a screen over the public metadata. The oracles:
- for every text of a multilingual corpus (the Faker corpus of benchmarks/redaction.py in
  13 locales, Japanese, Chinese, Korean and Thai without spaces, full-width digits), the
  same texts written differently, CJK cases and random strings, and for every region tried
  (the default regions, no region, and a few more), the windows give exactly what
  `PhoneNumberMatcher` over the whole text gives (its matches of `MIN_DIGITS` digits or
  more: span, raw text and number);
- every character outside the window alphabet ends the matcher's candidates;
- the screen never leaves out a region where libphonenumber reads the digits as a valid
  number (nationally, or after the region's international prefix);
- every number the detector reports is one the matcher found, valid or possible as the
  policy asks;
- a window in a region's exact national layout holds no character that region's formats
  cannot write (`layout_chars`), and skipping the layout tries that screen rules out
  changes no finding.
"""

from __future__ import annotations

import random

import phonenumbers as pn
import pytest
from phonenumbers import Leniency

from benchmarks.redaction import Corpus, make_corpus
from evalkeeper.settings import DEFAULT_REDACTION_REGIONS
from evalkeeper.traces.detectors import mask, protected_spans
from evalkeeper.traces.phones import (
    MIN_DIGITS,
    SEGMENT_RE,
    PhoneDetector,
    _layout,
    _nfkc,
    _screen_of,
    _written_chars,
    layout_chars,
    screen,
    text_matches,
    windows,
)

SEED = 20261130
REGIONS = ["ZZ", *DEFAULT_REDACTION_REGIONS, "TH", "TW", "RU", "HU", "AR"]
CJK = [
    "電話番号は090-2867-8126です。",
    "電話番号は０９０-２８６７-８１２６です。",
    "電話番号は０９０－２８６７－８１２６です。",
    "「090-2867-8126」、「03-1234-5678」までお電話ください。",
    "連絡先：090ー2867ー8126、または＋８１ ９０ ２８６７ ８１２６。",
    "我的电话是13812345678。请拨打＋86 138 1234 5678，谢谢。",
    "联系方式：13812345678、13912345678、15012345678。",
    "전화번호는 010-1234-5678입니다. 해외에서는 +82 10-1234-5678로 전화하세요.",
    "โทร081-234-5678ได้เลยค่ะ หรือ02 123 4567นะคะ",
    "予約は2026-11-30です。14:30に。価格¥12,800。注文番号ORD-558812。",
    "内線：03-1234-5678 内線 12、03-1234-5678 ext. 12、03-1234-5678x12",
    "Tel 030 901820, 030 901821,030 901822 / 030 901823; 030 901824\n030 901825",
    "numbers 1234567, 2345678, (030) 901820, +49 30 901820 ext 5, 1-800-555-0199#",
    "2024-01-15 12:30 and 2024/01/15 12:30:45 and 12/31/2020 5550143",
]
# Characters of text around numbers; the random strings are made of them.
PIECES = [
    *"0123456789",
    *"０１２３４５６７８９٠١٢٣",
    *" -.()/+,;:#~\t\n",
    *"ー－（）．／　＋、。「」：",
    *"abcxeEXTinoKő_@$%€¥",
    *"電話番号はですカ한국어ภาษาไทย",
    "ext",
    "ext. ",
    " x",
    "anexo",
    "доб",
    ";ext=",
    "ｅｘｔ",
    "#",
    "090",
    "2867",
    "8126",
    "+44",
    "0191",
    "4960072",
    "030",
    "901820",
]


def _variants(text: str, rng: random.Random) -> str:
    edits = [
        lambda s: s.replace(" ", "  ", 3),
        lambda s: s.replace(" ", "\t", 2),
        lambda s: s.replace(" ", "", 4),
        lambda s: s.replace("-", " "),
        lambda s: s.replace("(", ""),
        lambda s: s.replace(" ", ".", 4),
        lambda s: s.replace("+", "00"),
        lambda s: s.replace(" ", "/", 3),
        lambda s: s.replace(", ", ","),
        lambda s: s.upper(),
    ]
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(edits)(text)
    return text


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus(25, SEED)  # 325 messages, 13 locales


@pytest.fixture(scope="module")
def texts(corpus: Corpus) -> list[str]:
    rng = random.Random(SEED)
    out = [m.text for m in corpus.messages]
    out += [_variants(t, rng) for t in out] + CJK
    out += ["".join(rng.choice(PIECES) for _ in range(rng.randint(5, 60))) for _ in range(400)]
    # what the detector gives the matcher: dates, prices, ids masked
    out += [mask(t, protected_spans(t)) for t in out[:200]]
    return out


def _whole(text: str, region: str) -> list[tuple[int, int, str, pn.PhoneNumber]]:
    return [
        (m.start, m.end, m.raw_string, m.number)
        for m in pn.PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE)
        if sum(map(str.isdecimal, m.raw_string)) >= MIN_DIGITS
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_windows_find_what_the_matcher_finds_over_the_whole_text(
    texts: list[str], region: str
) -> None:
    differ = []
    found = 0
    for text in texts:
        expected = _whole(text, region)
        got = [(m.start, m.end, m.raw, m.number) for m in text_matches(text, region)]
        found += len(expected)
        if got != expected:
            differ.append((text, got, expected))
    assert not differ, differ[:2]
    assert found > len(texts) // 4  # numbers were there to find


def test_a_character_outside_the_window_alphabet_ends_every_candidate() -> None:
    """Probed one by one: `0301234567<c>12` and `<c>0301234567`; where the matcher
    takes `c` into a match, `c` must be in the alphabet the windows are cut by."""
    chars = [
        chr(o)
        for o in range(0x20, 0x10000)
        if not (0x3400 <= o < 0xA000 or 0xAC00 <= o < 0xE000 or 0xF900 <= o < 0xFB00)
        and not chr(o).isdecimal()
        and chr(o) not in "\n\r"
    ]
    assert len(chars) > 20000
    probes = "\n\n".join(f"0301234567{c}12\n\n{c}0301234567" for c in chars)
    taken: set[str] = set()
    for region in ("DE", "US"):
        for m in pn.PhoneNumberMatcher(probes, region, leniency=Leniency.POSSIBLE):
            taken.update(c for c in m.raw_string if not c.isdecimal())
    outside = sorted(c for c in taken if not SEGMENT_RE.fullmatch(c))
    assert outside == [], outside
    assert {"-", "x", "\u30fc", "\uff0f", "(", "#"} <= taken  # the probe sees what it should


def test_windows_cut_at_words_of_any_script_and_cjk_punctuation() -> None:
    text = "電話番号は090-2867-8126です。「03-1234-5678」、call me on 0301234567 ok"
    assert [text[a:b] for a, b in windows(text)] == [
        "090-2867-8126",
        "03-1234-5678",
        "e on 0301234567 o",  # letters of extension labels are in it
    ]
    # a comma between numbers cuts; one before an extension label does not
    listed = "0301234567, 0301234568"
    assert [listed[a:b] for a, b in windows(listed)] == [
        "0301234567",
        "0301234568",
    ]
    assert windows("0301234567, ext. 12") == [(0, 19)]


def test_the_screen_never_leaves_out_a_region_where_the_number_is_valid(
    corpus: Corpus,
) -> None:
    regions = [r for r in REGIONS if r != "ZZ"]
    screens = [_screen_of(r) for r in regions]
    numbers = {v for m in corpus.messages for k, v in m.pii if k == "PHONE" and "+" not in v}
    rng = random.Random(SEED)
    numbers |= {
        rng.choice(["0", "", "1", "00", "8"])
        + "".join(rng.choice("0123456789") for _ in range(rng.randint(7, 12)))
        for _ in range(3000)
    }
    missed = []
    valid = 0
    for text in sorted(numbers):
        digits = pn.normalize_digits_only(text)
        international, likely, _ = screen(screens, digits)
        for i, region in enumerate(regions):
            try:
                number = pn.parse(digits, region, keep_raw_input=True)
            except pn.NumberParseException:
                continue
            if number.country_code_source == pn.CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN:
                continue  # the country code glued on without `+` or `00`: not screened for
            if pn.is_valid_number(number):
                valid += 1
                if i not in likely and i not in international:
                    missed.append((text, region))
    assert not missed, missed[:5]
    assert valid > 1000


@pytest.mark.parametrize("policy", ["hybrid", "possible", "valid"])
def test_every_number_reported_is_one_the_matcher_found(texts: list[str], policy: str) -> None:
    detector = PhoneDetector(DEFAULT_REDACTION_REGIONS, policy)  # type: ignore[arg-type]
    reported = 0
    for text in texts[:500]:
        hits = detector.find(text)
        if not hits:
            continue
        for h in hits:
            reported += 1
            numbers = [
                m.number
                for region in ["ZZ", *DEFAULT_REDACTION_REGIONS]
                for m in pn.PhoneNumberMatcher(
                    text[h.start : h.end], region, leniency=Leniency.POSSIBLE
                )
                if (m.start, m.end) == (0, h.end - h.start)
                and pn.format_number(m.number, pn.PhoneNumberFormat.E164) == h.value
            ]
            assert numbers, (text, h)
            if policy == "valid":
                assert any(pn.is_valid_number(n) for n in numbers), (text, h)
    assert reported > 300


def test_a_number_in_its_regions_layout_holds_only_characters_its_formats_write(
    texts: list[str],
) -> None:
    exact = 0
    for region in [r for r in REGIONS if r != "ZZ"]:
        code = pn.country_code_for_region(region)
        for text in texts:
            for a, b in windows(text):
                for m in pn.PhoneNumberMatcher(text[a:b], region, leniency=Leniency.POSSIBLE):
                    raw = _nfkc(m.raw_string)
                    if m.number.country_code != code or _layout(raw, m.number) != 3:
                        continue
                    exact += 1
                    assert _written_chars(raw) <= layout_chars(code), (text, region, raw)
    assert exact > 100


def test_the_layout_screen_changes_no_finding(corpus: Corpus, texts: list[str]) -> None:
    screened = PhoneDetector(DEFAULT_REDACTION_REGIONS)
    every = PhoneDetector(DEFAULT_REDACTION_REGIONS, layout_screen=False)
    dense = make_corpus(40, SEED + 7)  # another sample: US, FR, BR layouts with extensions
    rng = random.Random(SEED)
    more = [m.text for m in dense.messages]
    more += [_variants(t, rng) for t in more]
    for text in texts + more:
        assert screened.find(text) == every.find(text), text
    assert screened.region_runs < every.region_runs  # it skipped some
