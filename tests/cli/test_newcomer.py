"""Smaller things a new user tripped on (issue 17, item 19), each through the real CLI."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from tests.traces.test_promote import TRACE_ID, psettings, source_file, stored
from tests.traces.test_promote import cli as replay_cli
from tests.traces.trace_lines import append, line

__all__ = ["psettings", "source_file", "stored"]  # fixtures shared with test_promote

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_the_key_lock_files_and_langsmith_state_are_git_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    secret = [
        "data/.evalkeeper-redaction.key",
        "elsewhere/.evalkeeper-redaction.key",
        "data/datasets/.appointments.jsonl.lock",
        "data/datasets/appointments.langsmith.json",
    ]
    kept = ["data/datasets/appointments.jsonl", "data/monitors/appointments-agent.toml"]
    for path in secret:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert done.returncode == 0, f"{path} is not git-ignored"
    for path in kept:
        done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert done.returncode == 1, f"{path} is git-ignored"


def test_an_incident_id_must_have_the_inc_form(settings: Settings, tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    out = runner.invoke(
        app, ["promote", "t-1", "--dataset", "appointments", "--reference", "{}",
              "--incident", "2041", "--category", "cancellation",
              "--warehouse", str(settings.warehouse)],
        env={"EVALKEEPER_DATASETS_DIR": str(datasets)},
    )  # fmt: skip
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        "error: --incident '2041': use the incident's id in the form INC-<number>, e.g. INC-2041"
    )
    assert not datasets.exists() and not settings.warehouse.exists()


def _cli(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    out = runner.invoke(
        app,
        [*args, "--warehouse", str(settings.warehouse)],
        env={"EVALKEEPER_MONITORS_DIR": str(settings.monitor.monitors_dir), **env},
    )
    return out.exit_code, out.stdout, out.stderr


def test_monitor_start_refuses_a_service_nothing_is_known_of(settings: Settings) -> None:
    code, out, err = _cli(
        settings, "monitor", "start", "--service", "apointments", "--version", "v2"
    )
    assert code == 2, out + err
    assert err.count("\n") == 1 and "unknown service 'apointments'" in err
    assert str(settings.monitor.monitors_dir) in err and "apointments.toml" in err
    code, out, _ = _cli(settings, "monitor", "status", "--format", "json")
    assert code == 0 and out.strip() == "[]"  # no window was opened


def test_monitor_start_warns_for_a_service_with_traces_but_no_config(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(3)))  # service "scheduler"
    code, out, err = _cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 0, out + err
    code, out, err = _cli(
        settings, "monitor", "start", "--service", "scheduler", "--version", "v2", "--no-tick"
    )
    assert code == 0, out + err
    assert "warning: no monitor config for 'scheduler' (3 stored trace(s))" in err
    assert "opened window" in out


def test_monitor_status_offers_csv(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1))
    assert _cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")[0] == 0
    code, out, err = _cli(
        settings, "monitor", "start", "--service", "scheduler", "--version", "v2", "--no-tick"
    )
    assert code == 0, out + err
    code, out, err = _cli(settings, "monitor", "status", "--format", "csv")
    assert code == 0, err
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["service"] == "scheduler" and row["version"] == "v2" and row["state"] == "open"
    code, out, _ = _cli(settings, "monitor", "status", "--format", "markdown")
    assert code == 0 and out.startswith("| window_id | service |")


def test_an_ingest_with_nothing_new_says_the_cursor_is_at_the_end(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(2)))
    code, out, _ = _cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 0 and "read 2  stored 2" in out and "nothing new" not in out
    code, out, _ = _cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 0 and "read 0  stored 0" in out
    assert f"nothing new: jsonl:{path} holds nothing past its cursor" in out


def test_concurrency_0_is_one_line_as_option_and_as_variable(
    settings: Settings, tmp_path: Path
) -> None:
    args = ["run", "--dataset", "appointments", "--target", "tests.fake_targets:instant",
            "--warehouse", str(settings.warehouse)]  # fmt: skip
    option = runner.invoke(app, [*args, "--concurrency", "0"])
    variable = runner.invoke(app, args, env={"EVALKEEPER_CONCURRENCY": "0"})
    assert option.exit_code == variable.exit_code == 2
    assert option.stderr == (
        "error: --concurrency=0: must be at least 1 (input should be greater than or equal to 1)\n"
    )
    assert variable.stderr.startswith("error: EVALKEEPER_CONCURRENCY=0: must be at least 1")
    assert "╭" not in option.output and "Usage:" not in option.output
    assert not settings.warehouse.exists()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_help_never_cuts_an_option_name() -> None:
    """`--help | cat` on a narrow width showed `--inconclusive-f…`: every option of every
    command is now printed whole."""
    done = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "gate", "--help"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "60"}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--inconclusive-fails / --inconclusive-passes" in done.stdout
    for path, command in _commands(typer.main.get_command(app)):
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "60"})
        assert out.exit_code == 0, (path, out.output)
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-"):
                    assert opt in out.stdout, (path, opt, out.stdout)


LONG_REPLY = "Your appointment is moved to Tuesday at 10:00. " * 5 + "THE END"


async def long_reply(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"reply": LONG_REPLY, "tool_calls": []}


def test_replay_to_a_file_keeps_whole_replies(stored: Settings) -> None:
    code, out, err = replay_cli(
        stored, "replay", TRACE_ID, "--target", f"{__name__}:long_reply", "--repeat", "1"
    )
    assert code in (0, 1, 2), out + err
    assert LONG_REPLY in out
    assert "THE END" in out
