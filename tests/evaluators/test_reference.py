"""Tests for the reference evaluators: exact_match, contains and regex."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evalkeeper.models import EvaluatorRef, Score
from evalkeeper.registry import build


def run_eval(name: str, args: dict[str, Any] | None = None, **kwargs: Any) -> Score:
    """Build an evaluator through the registry and score once, as the runner does."""
    ev = build(EvaluatorRef(name=name, args=args or {}))
    return asyncio.run(ev(**kwargs))


# -- exact_match ----------------------------------------------------------------------------


def test_exact_match_whole_outputs() -> None:
    same = run_eval(
        "exact_match",
        outputs={"status": "cancelled", "id": "A-1"},
        reference_outputs={"id": "A-1", "status": "cancelled"},
    )
    assert same.passed is True and same.value == 1.0
    assert same.name == "exact_match" and same.version == "1"
    extra = run_eval(
        "exact_match",
        outputs={"status": "cancelled", "id": "A-1", "note": "x"},
        reference_outputs={"id": "A-1", "status": "cancelled"},
    )
    assert extra.passed is False and extra.value == 0.0


def test_exact_match_key_shows_expected_and_got() -> None:
    score = run_eval(
        "exact_match",
        {"key": "status"},
        outputs={"status": "rescheduled"},
        reference_outputs={"status": "cancelled"},
    )
    assert score.passed is False
    assert score.comment == 'expected "cancelled", got "rescheduled"'


def test_exact_match_is_case_and_space_sensitive_by_default() -> None:
    score = run_eval(
        "exact_match",
        {"key": "status"},
        outputs={"status": " Cancelled"},
        reference_outputs={"status": "cancelled"},
    )
    assert score.passed is False


def test_exact_match_normalize_strips_casefolds_and_collapses() -> None:
    score = run_eval(
        "exact_match",
        {"key": "reply", "normalize": True},
        outputs={"reply": "  Your   STRASSE\tappointment \n"},
        reference_outputs={"reply": "your straße appointment"},
    )
    assert score.passed is True and "normalized" in (score.comment or "")


def test_exact_match_normalize_applies_inside_objects() -> None:
    score = run_eval(
        "exact_match",
        {"normalize": True},
        outputs={"status": "Cancelled", "tags": [" A ", "b"]},
        reference_outputs={"status": "cancelled", "tags": ["a", "B"]},
    )
    assert score.passed is True


def test_exact_match_numbers_by_value_not_booleans_or_strings() -> None:
    def match(got: Any, expected: Any) -> bool | None:
        return run_eval(
            "exact_match", {"key": "n"}, outputs={"n": got}, reference_outputs={"n": expected}
        ).passed

    assert match(1, 1.0) is True
    assert match([1, {"x": 2}], [1.0, {"x": 2.0}]) is True
    assert match(True, 1) is False
    assert match("1", 1) is False
    assert match(None, 0) is False


def test_exact_match_missing_output_key_is_a_failure() -> None:
    score = run_eval(
        "exact_match", {"key": "status"}, outputs={"reply": "hi"}, reference_outputs={"status": "x"}
    )
    assert score.error is None and score.passed is False
    assert "no 'status'" in (score.comment or "")


def test_exact_match_missing_reference_key_is_an_error() -> None:
    score = run_eval(
        "exact_match", {"key": "status"}, outputs={"status": "x"}, reference_outputs={"reply": "x"}
    )
    assert score.error is not None and "'status'" in score.error
    assert score.passed is None and score.value is None


def test_exact_match_reference_error_wins_over_missing_output() -> None:
    score = run_eval("exact_match", {"key": "status"}, outputs={}, reference_outputs={})
    assert score.error is not None


def test_exact_match_empty_reference_is_an_error() -> None:
    score = run_eval("exact_match", outputs={}, reference_outputs={})
    assert score.error is not None and score.passed is None


def test_exact_match_outputs_none_is_an_error() -> None:
    score = run_eval("exact_match", outputs=None, reference_outputs={"status": "x"})
    assert score.error == "no outputs (target error)"


@pytest.mark.parametrize("args", [{"key": ""}, {"key": 3}, {"normalize": "yes"}])
def test_exact_match_bad_config_fails_at_build(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(EvaluatorRef(name="exact_match", args=args))


# -- contains -------------------------------------------------------------------------------


def test_contains_all_required_strings_case_insensitive() -> None:
    score = run_eval(
        "contains",
        outputs={"reply": "Appointment A-1 is CANCELLED; a refund follows."},
        reference_outputs={"must_include": ["cancelled", "a-1", "Refund"]},
    )
    assert score.passed is True and score.value == 1.0


def test_contains_names_what_is_missing_and_scores_the_share() -> None:
    score = run_eval(
        "contains",
        outputs={"reply": "Your appointment is cancelled."},
        reference_outputs={"must_include": ["cancelled", "A-1", "refund", "sorry"]},
    )
    assert score.passed is False
    assert score.value == pytest.approx(0.25)
    assert score.comment == 'missing 3 of 4: "A-1", "refund", "sorry"'
    assert score.details is not None and score.details["missing"] == ["A-1", "refund", "sorry"]


def test_contains_single_string_reference() -> None:
    score = run_eval(
        "contains", outputs={"reply": "done: A-1"}, reference_outputs={"must_include": "A-1"}
    )
    assert score.passed is True


def test_contains_case_sensitive() -> None:
    args = {"case_sensitive": True}
    ref = {"must_include": ["A-1"]}
    assert (
        run_eval("contains", args, outputs={"reply": "a-1"}, reference_outputs=ref).passed is False
    )
    assert (
        run_eval("contains", args, outputs={"reply": "A-1"}, reference_outputs=ref).passed is True
    )


def test_contains_fixed_value_needs_no_reference() -> None:
    args = {"value": "Sorry", "key": "text"}
    assert run_eval("contains", args, outputs={"text": "so sorry!"}).passed is True
    miss = run_eval("contains", args, outputs={"text": "no apology"})
    assert miss.passed is False and miss.value == 0.0 and "Sorry" in (miss.comment or "")


def test_contains_custom_reference_key() -> None:
    score = run_eval(
        "contains",
        {"reference_key": "keywords"},
        outputs={"reply": "alpha beta"},
        reference_outputs={"keywords": ["beta"]},
    )
    assert score.passed is True


def test_contains_empty_required_list_passes() -> None:
    score = run_eval("contains", outputs={"reply": "x"}, reference_outputs={"must_include": []})
    assert score.passed is True and score.value == 1.0


def test_contains_missing_reference_key_is_an_error() -> None:
    score = run_eval("contains", outputs={"reply": "x"}, reference_outputs={"other": "x"})
    assert score.error is not None and "must_include" in score.error
    assert score.passed is None


@pytest.mark.parametrize("bad", [3, ["ok", 4], [""], {"a": "b"}])
def test_contains_malformed_reference_is_an_error(bad: Any) -> None:
    score = run_eval("contains", outputs={"reply": "x"}, reference_outputs={"must_include": bad})
    assert score.error is not None and score.passed is None


def test_contains_missing_output_key_is_a_failure() -> None:
    score = run_eval("contains", outputs={"text": "x"}, reference_outputs={"must_include": "x"})
    assert score.error is None and score.passed is False
    assert "no 'reply'" in (score.comment or "")


def test_contains_non_text_output_is_a_failure() -> None:
    score = run_eval("contains", outputs={"reply": 42}, reference_outputs={"must_include": "42"})
    assert score.passed is False and "not text" in (score.comment or "")


def test_contains_outputs_none_is_an_error() -> None:
    score = run_eval("contains", outputs=None, reference_outputs={"must_include": "x"})
    assert score.error == "no outputs (target error)"


@pytest.mark.parametrize(
    "args", [{"value": ""}, {"value": 3}, {"key": ""}, {"case_sensitive": "no"}]
)
def test_contains_bad_config_fails_at_build(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(EvaluatorRef(name="contains", args=args))


# -- regex ----------------------------------------------------------------------------------


def test_regex_fixed_pattern() -> None:
    args = {"pattern": r"\bA-\d+\b"}
    hit = run_eval("regex", args, outputs={"reply": "cancelled A-17 for you"})
    assert hit.passed is True and hit.value == 1.0 and '"A-17"' in (hit.comment or "")
    miss = run_eval("regex", args, outputs={"reply": "cancelled a-17"})
    assert miss.passed is False and miss.value == 0.0


def test_regex_uses_search_not_fullmatch() -> None:
    assert run_eval("regex", {"pattern": "cancel"}, outputs={"reply": "I will cancel it"}).passed


def test_regex_flags() -> None:
    text = {"reply": "Line one\nCANCELLED"}
    assert run_eval("regex", {"pattern": "cancelled"}, outputs=text).passed is False
    assert run_eval("regex", {"pattern": "cancelled", "flags": "i"}, outputs=text).passed is True
    assert run_eval("regex", {"pattern": "^CANCELLED$"}, outputs=text).passed is False
    assert run_eval("regex", {"pattern": "^CANCELLED$", "flags": "m"}, outputs=text).passed is True
    assert run_eval("regex", {"pattern": "one.CAN"}, outputs=text).passed is False
    assert run_eval("regex", {"pattern": "one.can", "flags": "si"}, outputs=text).passed is True


def test_regex_pattern_from_reference() -> None:
    args = {"reference_key": "pattern"}
    ok = run_eval(
        "regex", args, outputs={"reply": "id B-2"}, reference_outputs={"pattern": r"B-\d"}
    )
    assert ok.passed is True
    missing = run_eval("regex", args, outputs={"reply": "id B-2"}, reference_outputs={})
    assert missing.error is not None and "'pattern'" in missing.error


def test_regex_invalid_reference_pattern_is_an_error() -> None:
    score = run_eval(
        "regex",
        {"reference_key": "pattern"},
        outputs={"reply": "x"},
        reference_outputs={"pattern": "(unclosed"},
    )
    assert score.error is not None and "(unclosed" in score.error
    assert score.passed is None


def test_regex_missing_output_key_and_non_text() -> None:
    missing = run_eval("regex", {"pattern": "x"}, outputs={"text": "x"})
    assert missing.error is None and missing.passed is False
    not_text = run_eval("regex", {"pattern": "1"}, outputs={"reply": 1})
    assert not_text.passed is False and "not text" in (not_text.comment or "")


def test_regex_outputs_none_is_an_error() -> None:
    score = run_eval("regex", {"pattern": "x"}, outputs=None)
    assert score.error == "no outputs (target error)"


def test_regex_invalid_pattern_fails_at_build_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\[a-"):
        build(EvaluatorRef(name="regex", args={"pattern": "[a-"}))


@pytest.mark.parametrize(
    "args",
    [
        {},  # neither pattern nor reference_key
        {"pattern": "x", "reference_key": "pattern"},  # both
        {"pattern": "x", "flags": "ix"},
        {"pattern": "x", "flags": 2},
        {"pattern": 5},
        {"pattern": "x", "key": ""},
    ],
)
def test_regex_bad_config_fails_at_build(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(EvaluatorRef(name="regex", args=args))
