"""Terminal escapes from data (issue 17, item 7): a trace whose service is an escape
sequence printed it raw in `traces list`. Table output now shows control and
bidirectional-override characters escaped; JSON and CSV stay exact."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.report.output import terminal_safe
from evalkeeper.settings import Settings
from tests.traces.trace_lines import append, line

runner = CliRunner()
HOSTILE = "\u001b]0;PWNED\u0007\u001b[31mRED"
BIDI = "evil\u202etxt.exe\u2066x\u2069\u200f"
RAW = ["\x1b", "\x07", "\u202e", "\u2066", "\u2069", "\u200f"]


@pytest.fixture
def warehouse(settings: Settings, tmp_path: Path) -> Path:
    """A real warehouse holding a trace whose service and version are hostile."""
    path = tmp_path / "app.jsonl"
    append(path, line(1, service=HOSTILE, version=BIDI))
    out = runner.invoke(
        app, ["traces", "ingest", "--source", f"jsonl:{path}", "--warehouse",
              str(settings.warehouse)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return settings.warehouse


def _cli(warehouse: Path, *args: str) -> str:
    """The installed command in a real process, its output a pipe."""
    env = {**os.environ, "EVALKEEPER_WAREHOUSE": str(warehouse)}
    done = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_traces_list_table_shows_the_escapes_not_the_sequences(warehouse: Path) -> None:
    out = _cli(warehouse, "traces", "list")
    assert not any(ch in out for ch in RAW), repr(out)
    assert r"\x1b]0;PWNED\x07\x1b[31mRED" in out
    assert r"evil\u202etxt.exe\u2066x\u2069\u200f" in out


def _stdout(warehouse: Path, *args: str) -> str:
    out = runner.invoke(app, [*args, "--warehouse", str(warehouse)])
    assert out.exit_code == 0, out.output
    return out.stdout


def test_json_and_csv_stay_exact(warehouse: Path) -> None:
    (listed,) = json.loads(_stdout(warehouse, "traces", "list", "--format", "json"))
    assert listed["service"] == HOSTILE and listed["version"] == BIDI
    text = _stdout(warehouse, "traces", "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["service"] == HOSTILE and rows[0]["version"] == BIDI
    query = "SELECT service, version FROM traces"
    (row,) = json.loads(_stdout(warehouse, "sql", query, "--format", "json"))
    assert row == {"service": HOSTILE, "version": BIDI}


def test_every_table_format_escapes(warehouse: Path) -> None:
    """`sql` (the shared row table), `traces show` (a table of its own) and a one-line
    error quoting the value."""
    out = _cli(warehouse, "sql", "SELECT service, version FROM traces")
    assert not any(ch in out for ch in RAW) and r"\x1b[31mRED" in out
    shown = _cli(warehouse, "traces", "show", "t-00001", "--format", "table")
    assert not any(ch in shown for ch in RAW) and r"\x1b[31mRED" in shown
    out = runner.invoke(app, ["traces", "list", "--format", HOSTILE, "--warehouse", str(warehouse)])
    assert out.exit_code == 2
    assert not any(ch in out.stderr for ch in RAW) and r"\x1b[31mRED" in out.stderr


def test_terminal_safe_keeps_line_breaks_and_tabs() -> None:
    assert terminal_safe("a\nb\tc") == "a\nb\tc"
    assert terminal_safe("\r\x00\x7f\x85\u200e") == r"\x0d\x00\x7f\x85\u200e"
    assert terminal_safe("café ü 日本") == "café ü 日本"
