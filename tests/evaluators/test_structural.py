"""Tests for the structural evaluators: tool_call_correct and json_schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.models import EvaluatorRef, Score
from evalkeeper.registry import build


def run_eval(name: str, args: dict[str, Any] | None = None, **kwargs: Any) -> Score:
    """Build an evaluator through the registry and score once, as the runner does."""
    ev = build(EvaluatorRef(name=name, args=args or {}))
    return asyncio.run(ev(**kwargs))


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


def tools(got: Any, expected: Any, *, key: str = "tool_calls", **args: Any) -> Score:
    return run_eval(
        "tool_call_correct",
        {"key": key, **args} if key != "tool_calls" else args,
        outputs={key: got},
        reference_outputs={key: expected},
    )


LOOKUP = call("find_appointment", patient="Ana")
CANCEL = call("cancel_appointment", appointment_id="A-1")
NOTIFY = call("notify", channel="sms")


# -- tool_call_correct: modes ---------------------------------------------------------------


def test_unordered_default_accepts_any_order() -> None:
    score = tools([CANCEL, LOOKUP], [LOOKUP, CANCEL])
    assert score.passed is True and score.value == 1.0
    assert score.name == "tool_call_correct"


def test_strict_order_matters() -> None:
    score = tools([CANCEL, LOOKUP], [LOOKUP, CANCEL], mode="strict")
    assert score.passed is False
    assert score.value == 0.0
    assert "#1: expected find_appointment" in (score.comment or "")


def test_strict_same_order_passes() -> None:
    assert tools([LOOKUP, CANCEL], [LOOKUP, CANCEL], mode="strict").passed is True


def test_strict_extra_trailing_call_fails_with_full_share() -> None:
    score = tools([LOOKUP, CANCEL, NOTIFY], [LOOKUP, CANCEL], mode="strict")
    assert score.passed is False
    assert score.value == 1.0
    assert "#3: unexpected notify" in (score.comment or "")


def test_strict_missing_call_reports_got_nothing() -> None:
    score = tools([LOOKUP], [LOOKUP, CANCEL], mode="strict")
    assert score.passed is False and score.value == 0.5
    assert "got nothing" in (score.comment or "")


def test_unordered_duplicates_are_counted() -> None:
    twice = [NOTIFY, NOTIFY]
    once = [NOTIFY]
    missing_one = tools(once, twice)
    assert missing_one.passed is False and missing_one.value == 0.5
    extra_one = tools(twice, once)
    assert extra_one.passed is False and extra_one.value == 1.0
    assert "unexpected notify" in (extra_one.comment or "")
    assert tools(twice, twice).passed is True


def test_unordered_uses_a_maximum_matching_not_greedy_order() -> None:
    # With args="subset", the loose reference call f(x=1) also fits the output f(x=1, y=2);
    # a greedy first-fit would take it and leave f(x=1, y=2) unmatched.
    expected = [call("f", x=1), call("f", x=1, y=2)]
    got = [call("f", x=1, y=2), call("f", x=1)]
    score = tools(got, expected)
    assert score.passed is True and score.value == 1.0
    assert tools(got, expected, mode="subset").passed is True


def test_subset_allows_extra_output_calls() -> None:
    score = tools([LOOKUP, NOTIFY, CANCEL], [CANCEL], mode="subset")
    assert score.passed is True and score.value == 1.0
    assert "extra" in (score.comment or "")
    assert tools([LOOKUP, NOTIFY, CANCEL], [CANCEL]).passed is False  # unordered: extras fail


def test_subset_needs_distinct_output_calls() -> None:
    score = tools([NOTIFY], [NOTIFY, NOTIFY], mode="subset")
    assert score.passed is False and score.value == 0.5


def test_subset_missing_call_fails_with_evidence() -> None:
    resched = call("reschedule_appointment", appointment_id="A-1", when="tomorrow")
    score = tools([LOOKUP, resched], [LOOKUP, CANCEL], mode="subset")
    assert score.passed is False and score.value == 0.5
    assert 'missing cancel_appointment(appointment_id="A-1")' in (score.comment or "")


def test_wrong_argument_value_shows_expected_and_got() -> None:
    score = tools([call("cancel_appointment", appointment_id="A-2")], [CANCEL])
    assert score.passed is False and score.value == 0.0
    assert (
        'expected cancel_appointment(appointment_id="A-1"), '
        'got cancel_appointment(appointment_id="A-2")'
    ) in (score.comment or "")


# -- tool_call_correct: arguments -----------------------------------------------------------


def test_args_subset_allows_extra_output_args_exact_does_not() -> None:
    got = [call("cancel_appointment", appointment_id="A-1", reason="patient asked")]
    assert tools(got, [CANCEL]).passed is True
    assert tools(got, [CANCEL], args="exact").passed is False


def test_args_subset_needs_every_reference_arg() -> None:
    got = [call("notify")]
    score = tools(got, [NOTIFY])
    assert score.passed is False


def test_numbers_compare_by_value() -> None:
    assert tools([call("refund", amount=1.0)], [call("refund", amount=1)], args="exact").passed
    nested = tools([call("f", items=[{"n": 2.0}])], [call("f", items=[{"n": 2}])], args="exact")
    assert nested.passed is True


def test_strings_and_booleans_are_not_numbers() -> None:
    assert tools([call("refund", amount="1")], [call("refund", amount=1)]).passed is False
    assert tools([call("f", flag=1)], [call("f", flag=True)]).passed is False
    assert tools([call("f", flag=True)], [call("f", flag=True)]).passed is True


def test_strings_compare_exactly() -> None:
    assert tools([call("cancel_appointment", appointment_id="a-1")], [CANCEL]).passed is False
    assert tools([call("Cancel_Appointment", appointment_id="A-1")], [CANCEL]).passed is False


def test_missing_args_means_no_arguments() -> None:
    assert tools([{"name": "ping"}], [{"name": "ping", "args": {}}], args="exact").passed


# -- tool_call_correct: empty lists and bad data --------------------------------------------


@pytest.mark.parametrize("mode", ["strict", "unordered", "subset"])
def test_both_empty_is_a_pass(mode: str) -> None:
    score = tools([], [], mode=mode)
    assert score.passed is True and score.value == 1.0


@pytest.mark.parametrize(
    ("mode", "passed"), [("strict", False), ("unordered", False), ("subset", True)]
)
def test_calls_when_none_expected(mode: str, passed: bool) -> None:
    score = tools([NOTIFY], [], mode=mode)
    assert score.passed is passed and score.value == 1.0


def test_no_calls_when_some_expected() -> None:
    score = tools([], [LOOKUP, CANCEL])
    assert score.passed is False and score.value == 0.0


@pytest.mark.parametrize(
    "got",
    [
        "cancel_appointment",
        {"name": "cancel_appointment"},
        [{"args": {}}],
        [{"name": 3}],
        [CANCEL, "x"],
    ],
)
def test_malformed_output_calls_fail_with_comment(got: Any) -> None:
    score = tools(got, [CANCEL])
    assert score.error is None
    assert score.passed is False and score.value == 0.0
    assert "outputs['tool_calls']" in (score.comment or "")


def test_output_args_not_an_object_fails() -> None:
    score = tools([{"name": "cancel_appointment", "args": "A-1"}], [CANCEL])
    assert score.passed is False and "args" in (score.comment or "")


def test_missing_output_key_is_a_failure() -> None:
    score = run_eval(
        "tool_call_correct", outputs={"reply": "done"}, reference_outputs={"tool_calls": [CANCEL]}
    )
    assert score.error is None and score.passed is False
    assert "no 'tool_calls'" in (score.comment or "")


def test_missing_reference_key_is_an_error() -> None:
    score = run_eval(
        "tool_call_correct", outputs={"tool_calls": [CANCEL]}, reference_outputs={"reply": "x"}
    )
    assert score.error is not None and "tool_calls" in score.error
    assert score.passed is None and score.value is None


def test_malformed_reference_is_an_error() -> None:
    score = tools([CANCEL], [{"args": {}}])
    assert score.error is not None and "reference_outputs" in score.error


def test_outputs_none_is_an_error() -> None:
    score = run_eval("tool_call_correct", outputs=None, reference_outputs={"tool_calls": []})
    assert score.error == "no outputs (target error)"


def test_custom_key() -> None:
    assert tools([CANCEL], [CANCEL], key="actions").passed is True


@pytest.mark.parametrize(
    "args",
    [{"mode": "ordered"}, {"args": "loose"}, {"key": ""}, {"key": None}],
)
def test_bad_config_fails_at_build(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build(EvaluatorRef(name="tool_call_correct", args=args))


# -- json_schema ----------------------------------------------------------------------------

BOOKING = {
    "type": "object",
    "required": ["appointment_id", "date"],
    "properties": {
        "appointment_id": {"type": "string", "pattern": "^A-[0-9]+$"},
        "date": {"type": "string", "format": "date"},
        "slots": {"type": "array", "items": {"type": "integer"}},
    },
}


def test_json_schema_valid_output_passes() -> None:
    score = run_eval(
        "json_schema",
        {"schema": BOOKING},
        outputs={"appointment_id": "A-1", "date": "2024-06-11", "slots": [1, 2]},
    )
    assert score.passed is True and score.value == 1.0


def test_json_schema_errors_are_listed_with_json_paths() -> None:
    score = run_eval(
        "json_schema",
        {"schema": BOOKING},
        outputs={"appointment_id": "B-1", "date": "tomorrow", "slots": [1, "two"]},
    )
    assert score.passed is False and score.value == 0.0
    comment = score.comment or ""
    assert comment.startswith("3 schema errors")
    assert "$.appointment_id" in comment and "$.date" in comment and "$.slots[1]" in comment
    assert score.details is not None and score.details["n_errors"] == 3


def test_json_schema_lists_only_the_first_few_errors() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    score = run_eval(
        "json_schema", {"schema": schema, "key": "ids"}, outputs={"ids": list("abcde")}
    )
    assert score.passed is False
    assert "5 schema errors" in (score.comment or "") and "2 more" in (score.comment or "")


def test_json_schema_missing_required_is_reported() -> None:
    score = run_eval("json_schema", {"schema": BOOKING}, outputs={"appointment_id": "A-1"})
    assert score.passed is False
    assert "'date' is a required property" in (score.comment or "")


def test_json_schema_key_and_missing_key() -> None:
    args = {"schema": BOOKING, "key": "booking"}
    ok = run_eval(
        "json_schema", args, outputs={"booking": {"appointment_id": "A-9", "date": "2024-01-31"}}
    )
    assert ok.passed is True
    missing = run_eval("json_schema", args, outputs={"reply": "booked"})
    assert missing.error is None and missing.passed is False
    assert "no 'booking'" in (missing.comment or "")


def test_json_schema_outputs_none_is_an_error() -> None:
    score = run_eval("json_schema", {"schema": BOOKING}, outputs=None)
    assert score.error == "no outputs (target error)"


def test_json_schema_from_a_file_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "booking.json").write_text(json.dumps(BOOKING), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ev = build(EvaluatorRef(name="json_schema", args={"schema": "schemas/booking.json"}))
    monkeypatch.chdir(tmp_path / "schemas")  # read once at build: a later chdir is harmless
    score = asyncio.run(ev(outputs={"appointment_id": "A-1", "date": "2024-06-11"}))
    assert score.passed is True


def test_json_schema_missing_file_fails_at_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"nope\.json"):
        build(EvaluatorRef(name="json_schema", args={"schema": "nope.json"}))


def test_json_schema_file_with_bad_json_fails_at_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"bad\.json"):
        build(EvaluatorRef(name="json_schema", args={"schema": "bad.json"}))


@pytest.mark.parametrize(
    "schema",
    [None, {"type": "nope"}, {"properties": {"a": {"minLength": -1}}}, 42],
)
def test_json_schema_bad_schema_fails_at_build(schema: Any) -> None:
    with pytest.raises(ValueError):
        build(EvaluatorRef(name="json_schema", args={"schema": schema}))


def test_unordered_wrong_tool_shows_expected_and_got() -> None:
    resched = call("reschedule_appointment", appointment_id="A-1")
    score = tools([resched], [CANCEL])
    assert score.passed is False and score.value == 0.0
    assert (
        'expected cancel_appointment(appointment_id="A-1"), '
        'got reschedule_appointment(appointment_id="A-1")'
    ) in (score.comment or "")


def test_json_schema_shortens_long_offending_values() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    score = run_eval("json_schema", {"schema": schema}, outputs={"a": {"deep": list(range(200))}})
    comment = score.comment or ""
    assert "is not of type 'string'" in comment and len(comment) < 200
