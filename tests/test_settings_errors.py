"""A bad setting is one line naming the variable (or option), the value and what is allowed;
the command line exits 2 with it instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.cli.app import cli_option
from evalkeeper.settings_errors import SettingsInvalid, settings_or_error, validated_settings

ROOT = Path(__file__).resolve().parents[1]


def test_an_environment_value_out_of_range_names_the_variable_and_the_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALKEEPER_CONCURRENCY", "0")
    with pytest.raises(ValueError) as caught:
        settings_or_error()
    assert str(caught.value) == (
        "EVALKEEPER_CONCURRENCY=0: must be at least 1 (input should be greater than or equal to 1)"
    )


def test_every_problem_is_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKEEPER_ALPHA", "abc")
    monkeypatch.setenv("EVALKEEPER_INCONCLUSIVE_FAILS", "maybe")
    with pytest.raises(SettingsInvalid) as caught:
        settings_or_error(smoke_share=2, judge_api_key=3)
    lines = str(caught.value).splitlines()
    assert lines == caught.value.problems and len(lines) == 4
    by_name = {line.split("=", 1)[0]: line for line in lines}
    assert by_name["EVALKEEPER_ALPHA"].startswith(
        "EVALKEEPER_ALPHA=abc: must be a number, greater than 0 and less than 1 ("
    )
    assert by_name["EVALKEEPER_INCONCLUSIVE_FAILS"].startswith(
        "EVALKEEPER_INCONCLUSIVE_FAILS=maybe: must be true or false ("
    )
    # an override is named by its keyword, with the field's whole range
    assert by_name["smoke_share"].startswith("smoke_share=2: must be greater than 0 and at most 1")
    assert by_name["judge_api_key"].startswith("judge_api_key=***:")  # a secret is never shown


def test_an_override_is_named_by_the_option_it_came_from() -> None:
    with pytest.raises(SettingsInvalid) as caught:
        validated_settings({"lock_wait_s": "soon", "warehouse": None}, cli_option)
    assert caught.value.problems == [
        "--lock-wait-s=soon: must be a number (input should be a valid number, unable to parse "
        "string as a number)"
    ]


def test_a_list_that_is_not_json_says_what_to_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # patterns may hold commas: only JSON lists are read (regions also take `US,GB`)
    monkeypatch.setenv("EVALKEEPER_REDACTION_PATTERNS", "ACCT-[0-9]+,X")
    with pytest.raises(
        SettingsInvalid,
        match=r"^EVALKEEPER_REDACTION_PATTERNS: not valid JSON .*write a JSON value",
    ):
        settings_or_error()
    monkeypatch.delenv("EVALKEEPER_REDACTION_PATTERNS")
    monkeypatch.setenv("EVALKEEPER_REDACTION_REGIONS", "us,GB")
    assert settings_or_error().redaction.regions == ["US", "GB"]


def test_the_cli_prints_one_line_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKEEPER_CONCURRENCY", "0")
    monkeypatch.setenv("EVALKEEPER_TIMEOUT_S", "-1")
    out = CliRunner().invoke(app, ["run", "--dataset", "appointments", "--target", "x:y"])
    assert out.exit_code == 2, out.output
    assert out.output.splitlines() == [
        "error: EVALKEEPER_CONCURRENCY=0: must be at least 1 (input should be greater than or "
        "equal to 1)",
        "error: EVALKEEPER_TIMEOUT_S=-1: must be greater than 0 (input should be greater than 0)",
    ]


def test_a_real_process_shows_no_traceback() -> None:
    env = {**os.environ, "EVALKEEPER_CONCURRENCY": "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "experiments"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("error: EVALKEEPER_CONCURRENCY=0: must be at least 1")
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1


def test_an_error_message_with_brackets_prints_as_written(tmp_path: Path) -> None:
    """`fail()` prints text, not rich markup: `[[evaluators]]` survives."""
    ds = tmp_path / "bare.jsonl"
    ds.write_text('{"id": "a", "inputs": {"n": 1}, "reference_outputs": {}}\n')
    out = CliRunner().invoke(
        app, ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
              "--warehouse", str(tmp_path / "w.duckdb")],
    )  # fmt: skip
    assert out.exit_code == 2
    assert f"add an [[evaluators]] table to {tmp_path / 'bare.toml'}, e.g.\n" in out.output
    assert out.output.endswith('[[evaluators]]\nname = "exact_match"\n')
