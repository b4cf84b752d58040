"""PII redaction: detection, stable keyed tokens, the key file, the JSON walk, the protocol."""

from __future__ import annotations

import logging
import re
import stat
from dataclasses import fields
from pathlib import Path

import pytest
from pydantic import SecretStr

from evalkeeper.settings import Settings
from evalkeeper.traces.keys import KEY_FILE_NAME, resolve_key
from evalkeeper.traces.redaction import (
    BuiltinRedactor,
    Finding,
    RedactionConfig,
    Redactor,
    build_redactor,
    redact_json,
)

KEY = b"test-key-0123456789abcdef"
TOKEN = re.compile(r"<(EMAIL|PHONE|CARD|IBAN|NAME|PATTERN):[0-9a-f]{8}>")


@pytest.fixture(scope="module")
def redactor() -> BuiltinRedactor:
    return BuiltinRedactor(
        RedactionConfig(names=("Ada Lovelace", "Ann"), patterns=(r"CUST-\d{5}",)), KEY
    )


def red(r: BuiltinRedactor, text: str) -> str:
    return r.redact(text)[0]


def only_token(r: BuiltinRedactor, text: str, kind: str) -> str:
    """The one token that `text` becomes; fails if anything of the value is left."""
    out = red(r, text)
    m = TOKEN.fullmatch(out)
    assert m and m.group(1) == kind, f"{text!r} -> {out!r}"
    return out


# -- phones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["090-3640-5259", "08808125559", "(0191) 4960072"],
    ids=["japan", "germany", "uk-with-area-code"],
)
def test_national_numbers_that_fail_with_region_us_alone_are_replaced_whole(
    redactor: BuiltinRedactor, number: str
) -> None:
    out = red(redactor, f"please call {number} today")
    assert re.fullmatch(r"please call <PHONE:[0-9a-f]{8}> today", out), out


def test_us_only_misses_the_uk_area_code() -> None:
    """The reason for the region list: with US alone the UK area code is left behind."""
    us_only = BuiltinRedactor(RedactionConfig(regions=("US",)), KEY)
    assert "0191" in red(us_only, "ring (0191) 4960072 today")


@pytest.mark.parametrize(
    ("national", "international"),
    [
        ("(0191) 4960072", "+44 191 496 0072"),
        ("090-3640-5259", "+81 90-3640-5259"),
        ("08808125559", "+49 8808 125559"),
        ("(202) 555-0143", "+1 202-555-0143"),
        ("04 15 39 15 00", "+33 4 15 39 15 00"),
    ],
)
def test_phone_token_is_the_same_in_national_and_international_format(
    redactor: BuiltinRedactor, national: str, international: str
) -> None:
    assert only_token(redactor, national, "PHONE") == only_token(redactor, international, "PHONE")


def test_extension_is_redacted_with_the_number(redactor: BuiltinRedactor) -> None:
    assert only_token(redactor, "206.269.0743x9150", "PHONE") == only_token(
        redactor, "+1 206 269 0743", "PHONE"
    )


# Scripts without spaces between words, full-width digits, CJK punctuation: the number is
# replaced, the words around it kept, and the token is the one of its international form.
CJK_PHONES = [
    ("電話番号は{}です。", "090-2867-8126", "+81 90-2867-8126"),
    (
        "電話番号は{}です。",
        "\uff10\uff19\uff10-\uff12\uff18\uff16\uff17-\uff18\uff11\uff12\uff16",
        "+81 90-2867-8126",
    ),
    (
        "電話番号は{}です。",
        "\uff10\uff19\uff10\uff0d\uff12\uff18\uff16\uff17\uff0d\uff18\uff11\uff12\uff16",
        "+81 90-2867-8126",
    ),
    ("「{}」までお電話ください。", "090-2867-8126", "+81 90-2867-8126"),
    ("連絡先、{}、または", "070-6360-8377", "+81 70-6360-8377"),
    ("お問い合わせ：{}（平日）", "090ー2867ー8126", "+81 90-2867-8126"),
    ("我的电话是{}。", "138 1234 5678", "+86 138 1234 5678"),
    (
        "请拨打{}，谢谢。",
        "\uff11\uff13\uff18 \uff11\uff12\uff13\uff14 \uff15\uff16\uff17\uff18",
        "+86 138 1234 5678",
    ),
    ("전화번호는 {}입니다.", "010-1234-5678", "+82 10-1234-5678"),
    ("{}로 연락 주세요.", "010-9876-5432", "+82 10-9876-5432"),
    ("โทร{}ได้เลยค่ะ", "+66 81 234 5678", "+66 81 234 5678"),
    ("เบอร์ติดต่อ{}นะคะ", "+66 2 123 4567", "+66 2 123 4567"),
]


@pytest.mark.parametrize(("template", "number", "international"), CJK_PHONES)
def test_phone_numbers_glued_to_words_without_spaces_are_replaced(
    redactor: BuiltinRedactor, template: str, number: str, international: str
) -> None:
    out = red(redactor, template.format(number))
    token = only_token(redactor, international, "PHONE")
    assert out == template.format(token), out


@pytest.mark.parametrize(
    "text",
    [
        "連絡先、03-1234-5678、または",
        "서울 02-312-3456로 연락 주세요.",
        "我的电话是13812345678。",
        "请拨打\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18，谢谢。",
    ],
)
def test_a_national_number_valid_in_many_regions_glued_to_cjk_text_is_replaced(
    redactor: BuiltinRedactor, text: str
) -> None:
    """`03-1234-5678` (Tokyo) is valid in nine of the default regions, and JP is not among
    the first four (Seoul's `02-312-3456` alike); a bare `13812345678` is valid in the US, the first region: they are
    replaced, read in an earlier region (their token is not that of their international
    form; put JP or CN earlier in the regions for that)."""
    out = red(redactor, text)
    assert re.fullmatch(r"\D+<PHONE:[0-9a-f]{8}>\D+", out), out
    japan_first = BuiltinRedactor(RedactionConfig(regions=("JP", "US", "FR")), KEY)
    assert red(japan_first, "連絡先、03-1234-5678、または") == "連絡先、{}、または".format(
        only_token(japan_first, "+81 3-1234-5678", "PHONE")
    )


def test_thai_national_numbers_with_thailand_configured() -> None:
    thai = BuiltinRedactor(RedactionConfig(regions=("TH", "US")), KEY)
    out = red(thai, "โทร081-234-5678ได้เลยค่ะ")
    assert out == "โทร" + only_token(thai, "+66 81 234 5678", "PHONE") + "ได้เลยค่ะ"


CJK_PRESERVED = [
    "予約は2026-11-30です。14:30にお越しください。",
    "予約は２０２６-１１-３０です。",
    "2026年11月30日、価格¥12,800、注文番号ORD-558812。",
    "8.107,04 EUR. 请拨打客服，订单20261130已发货。",
    "예약은 2026-11-30 14:30입니다.",
]


@pytest.mark.parametrize("text", CJK_PRESERVED)
def test_dates_prices_and_ids_glued_to_cjk_text_survive(
    redactor: BuiltinRedactor, text: str
) -> None:
    assert red(redactor, text) == text


# -- what must survive ----------------------------------------------------------------

PRESERVED = [
    "The appointment APT-20261130-0042 is on 2026-11-30 at 14:30.",
    "Booked for 30/11/2026, or 11-30-26, or 30.11.2026.",
    "See you Nov 30, or November 30th, 2026, or 30 Nov 2026 at 9:05am.",
    "Order ORD-558812 cost $1,234.56 (49,90 € with the discount, USD 6207 in total).",
    "A big one: 1.234.567,89 EUR or 1,234,567 units.",
    "Ticket INC-2041 and #55881234 since 2019: 3 items, 42 visits.",
    "Logged at 2026-11-30T14:03:00Z and 2026-11-30T14:03:00.125+01:00.",
    "Epoch 1764511380 and 1764511380000 in milliseconds.",
    "Version v2.3.1, 12.5% off, a 20261130 batch, and 99 problems.",
    "Card-like but Luhn-invalid: 4111 1111 1111 1112 and 4111111111111112.",
    "<PHONE:1a2b3c4d> was redacted before and stays a token.",
]


@pytest.mark.parametrize("text", PRESERVED)
def test_dates_times_prices_ids_and_small_numbers_survive(
    redactor: BuiltinRedactor, text: str
) -> None:
    assert red(redactor, text) == text


def test_redaction_is_idempotent(redactor: BuiltinRedactor) -> None:
    once = red(redactor, "Ada Lovelace, ada@example.com, +44 191 496 0072, 12345678 x")
    assert red(redactor, once) == once


# -- emails, cards, IBANs, names, patterns -------------------------------------------


def test_email_token_ignores_case(redactor: BuiltinRedactor) -> None:
    a = only_token(redactor, "Ada.Lovelace@Example.com", "EMAIL")
    assert a == only_token(redactor, "ada.lovelace@example.com", "EMAIL")


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"])
def test_card_numbers_with_spaces_or_dashes_share_a_token(
    redactor: BuiltinRedactor, card: str
) -> None:
    assert only_token(redactor, card, "CARD") == only_token(redactor, "4111111111111111", "CARD")


def test_card_followed_by_another_number_is_still_found(redactor: BuiltinRedactor) -> None:
    out = red(redactor, "card 4111 1111 1111 1111 2027")
    assert TOKEN.search(out) and "4111" not in out


def test_iban_with_and_without_spaces(redactor: BuiltinRedactor) -> None:
    spaced = only_token(redactor, "DE89 3704 0044 0532 0130 00", "IBAN")
    assert spaced == only_token(redactor, "DE89370400440532013000", "IBAN")
    assert red(redactor, "IBAN DE89 3704 0044 0532 0130 00 OK") == f"IBAN {spaced} OK"
    assert "IBAN" not in red(redactor, "DE89 3704 0044 0532 0130 01")  # check digits wrong


def test_names_are_whole_words_and_case_insensitive(redactor: BuiltinRedactor) -> None:
    out = red(redactor, "ADA  LOVELACE met Ann; the Annual report and Anna stay.")
    assert TOKEN.fullmatch(out.split(" met ")[0])
    assert "the Annual report and Anna stay." in out and "Ann;" not in out
    assert red(redactor, "ada lovelace") == red(redactor, "Ada Lovelace")


def test_names_match_as_written_beyond_casefolding() -> None:
    r = BuiltinRedactor(RedactionConfig(names=("Ruth Weiß",)), KEY)
    assert TOKEN.fullmatch(red(r, "RUTH WEIß"))


def test_configured_patterns(redactor: BuiltinRedactor) -> None:
    out = red(redactor, "customer CUST-12345 asked")
    assert re.fullmatch(r"customer <PATTERN:[0-9a-f]{8}> asked", out)


def test_a_broken_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"redaction_patterns\[1\] '\(unclosed'"):
        BuiltinRedactor(RedactionConfig(patterns=("ok", "(unclosed")), KEY)


def test_an_unknown_region_is_named() -> None:
    with pytest.raises(ValueError, match="'XX' is not a region"):
        BuiltinRedactor(RedactionConfig(regions=("US", "XX")), KEY)


# -- tokens and keys ------------------------------------------------------------------


def test_tokens_are_stable_across_instances_and_differ_across_keys() -> None:
    text = "ada@example.com +44 191 496 0072"
    a = BuiltinRedactor(RedactionConfig(), KEY)
    b = BuiltinRedactor(RedactionConfig(), KEY)
    other = BuiltinRedactor(RedactionConfig(), b"another key")
    assert red(a, text) == red(b, text) == red(a, text)
    assert TOKEN.findall(red(a, text)) == ["EMAIL", "PHONE"]
    assert set(re.findall(r"<[^>]+>", red(a, text))).isdisjoint(
        re.findall(r"<[^>]+>", red(other, text))
    )


def test_findings_hold_no_raw_value(redactor: BuiltinRedactor) -> None:
    text = "mail ada@example.com"
    out, findings = redactor.redact(text)
    assert [f.name for f in fields(Finding)] == ["kind", "start", "end", "token"]
    assert findings == [Finding("EMAIL", 5, 20, out[5:])]
    assert "ada@example.com" not in repr(findings)


def test_key_is_generated_once_owner_only_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(warehouse=tmp_path / "data" / "w.duckdb")
    with caplog.at_level(logging.DEBUG):
        first = build_redactor(settings)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert first.key_generated and first.key_path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) == 64 and secret not in caplog.text
    assert first.notice and str(path) in first.notice and secret not in first.notice
    assert secret not in repr(resolve_key(settings))

    again = build_redactor(settings)
    assert not again.key_generated and again.notice is None
    text = "call +44 191 496 0072"
    assert again.redact_text(text) == first.redact_text(text)
    # the file's text is the key: the same tokens when it is given in settings
    given = build_redactor(
        Settings(warehouse=tmp_path / "x.duckdb", redaction_key=SecretStr(secret))
    )
    assert given.redact_text(text) == first.redact_text(text)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_an_empty_key_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("\n")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / KEY_FILE_NAME))):
        build_redactor(Settings(warehouse=tmp_path / "w.duckdb"))


# -- the JSON walk and the protocol ---------------------------------------------------


def test_json_walk_redacts_strings_and_keys(tmp_path: Path) -> None:
    trace = {
        "inputs": {"messages": [{"role": "user", "content": "I am ada@example.com"}]},
        "outputs": {"tool_calls": [{"name": "book", "arguments": {"phone": "+44 191 496 0072"}}]},
        "metadata": {"ada@example.com": 1, "n": 3, "ok": True, "none": None, "p": 0.5},
        "tuple": ("DE89 3704 0044 0532 0130 00", 7),
    }
    r = build_redactor(
        Settings(
            warehouse=tmp_path / "w.duckdb", redaction_key=SecretStr("redaction-test-key-0001")
        )
    )
    out = r.redact_json(trace)
    assert out["inputs"]["messages"][0]["role"] == "user"
    assert TOKEN.fullmatch(out["inputs"]["messages"][0]["content"][5:])
    assert TOKEN.fullmatch(out["outputs"]["tool_calls"][0]["arguments"]["phone"])
    # keys redacted too (issue 17: `{"kept1@example.com": 1}` was stored raw), in order;
    # non-strings untouched
    keys = list(out["metadata"])
    assert TOKEN.fullmatch(keys[0]) and keys[1:] == ["n", "ok", "none", "p"]
    assert list(out["metadata"].values()) == list(trace["metadata"].values())
    assert TOKEN.fullmatch(out["tuple"][0]) and out["tuple"][1] == 7
    assert trace["inputs"]["messages"][0]["content"] == "I am ada@example.com"  # not mutated
    assert dict(r.stats) == {"EMAIL": 2, "PHONE": 1, "IBAN": 1}
    r.redact_json(trace)
    assert r.stats["EMAIL"] == 4
    # two keys that redact alike are both kept, the later one numbered
    both = r.redact_json({"Ann@x.org": 1, "ann@x.org": 2, "k": 3})
    token = next(iter(both))
    assert TOKEN.fullmatch(token) and both == {token: 1, f"{token} #2": 2, "k": 3}


class Shouting:
    """A custom redactor: replaces the word 'secret', whatever its case."""

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        findings = [
            Finding("PATTERN", m.start(), m.end(), "<PATTERN:00000000>")
            for m in re.finditer("secret", text, re.IGNORECASE)
        ]
        return re.sub("secret", "<PATTERN:00000000>", text, flags=re.IGNORECASE), findings


def test_a_custom_redactor_plugs_in(tmp_path: Path) -> None:
    assert isinstance(Shouting(), Redactor)
    value, counts = redact_json({"a": ["a Secret", 1]}, Shouting())
    assert value == {"a": ["a <PATTERN:00000000>", 1]} and counts == {"PATTERN": 1}
    settings = Settings(
        warehouse=tmp_path / "w.duckdb", redaction_key=SecretStr("redaction-test-key-0001")
    )
    r = build_redactor(settings, redactor=Shouting())
    assert r.redact_text("SECRET and ada@example.com") == "<PATTERN:00000000> and ada@example.com"
    assert r.stats == {"PATTERN": 1}


def test_regions_from_the_environment_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALKEEPER_REDACTION_REGIONS", "us, DE,JP")
    assert Settings(_env_file=None).redaction.regions == ["US", "DE", "JP"]
    monkeypatch.setenv("EVALKEEPER_REDACTION_REGIONS", '["GB", "fr"]')
    assert Settings(_env_file=None).redaction.regions == ["GB", "FR"]
    monkeypatch.delenv("EVALKEEPER_REDACTION_REGIONS")
    assert len(Settings(_env_file=None).redaction.regions) == 28
