"""What the commands print: rows as csv, json and markdown; nothing wrapped or cut when the
output is a pipe (real processes, stdout a pipe); the markdown summary for a file and for
GitHub Actions' job summary."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.report.output import (
    FormatError,
    SummaryWriteError,
    check_format,
    markdown_document,
    render_rows,
    write_markdown_summary,
)
from evalkeeper.settings import Settings
from tests.helpers import write_dataset

ROOT = Path(__file__).resolve().parents[2]
EVALKEEPER = Path(sys.executable).with_name("evalkeeper")  # the script `uv run evalkeeper` runs
LONG_ID = "nightly-" + "-".join(["a-long-experiment-id-that-is-wider-than-any-terminal"] * 3)

ROWS = [
    {
        "id": "a|b",
        "at": datetime(2026, 11, 30, 15, 3, tzinfo=timezone(timedelta(hours=1))),
        "n": 3,
        "ok": True,
        "tags": ["x", "y"],
        "score": math.nan,
        "note": None,
    },
    {
        "id": "line\nbreak",
        "at": datetime(2026, 11, 30, 14, 3),  # naive: the warehouse's UTC
        "n": 4,
        "ok": False,
        "tags": [],
        "score": 0.5,
        "note": "back\\slash",
    },
]


def _cells(markdown_row: str) -> list[str]:
    """Split a markdown table row on its unescaped pipes."""
    inner = markdown_row.strip()[1:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner.replace("\\\\", "\x00"))]


def test_json_is_an_array_of_objects_with_iso_8601_utc_times_and_no_nan() -> None:
    data = json.loads(render_rows(ROWS, "json"))
    assert [r["at"] for r in data] == ["2026-11-30T14:03:00Z", "2026-11-30T14:03:00Z"]
    assert data[0]["score"] is None and data[1]["score"] == 0.5  # NaN is not JSON
    assert data[0]["tags"] == ["x", "y"] and data[0]["ok"] is True and data[0]["note"] is None
    assert list(data[0]) == list(ROWS[0])


def test_csv_round_trips_through_the_csv_module() -> None:
    text = render_rows(ROWS, "csv", ["id", "at", "ok", "tags", "note"])
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["id", "at", "ok", "tags", "note"]
    assert parsed[1] == ["a|b", "2026-11-30T14:03:00Z", "true", '["x", "y"]', ""]
    assert parsed[2][0] == "line\nbreak" and parsed[2][4] == "back\\slash"


def test_markdown_escapes_pipes_and_keeps_one_line_per_row() -> None:
    lines = render_rows(ROWS, "markdown").splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[1] == "| " + " | ".join(["---"] * len(ROWS[0])) + " |"
    first, second = _cells(lines[2]), _cells(lines[3])
    assert len(first) == len(second) == len(ROWS[0])
    assert first[0] == "a\\|b" and second[0] == "line<br>break"


def test_a_frame_and_its_rows_print_the_same() -> None:
    frame = pl.DataFrame({"id": ["x", "y"], "at": [datetime(2026, 1, 1, tzinfo=UTC)] * 2})
    for fmt in ("csv", "json", "markdown"):
        assert render_rows(frame, fmt) == render_rows(frame.to_dicts(), fmt)
    assert render_rows(frame.head(0), "csv") == "id,at\n"  # no rows: still the header
    assert json.loads(render_rows(frame.head(0), "json")) == []


def test_a_format_a_command_does_not_offer_is_refused_by_name() -> None:
    assert check_format("csv", ("table", "csv", "json")) == "csv"
    with pytest.raises(FormatError, match=r"^--format 'x': use table, csv or json$"):
        check_format("x", ("table", "csv", "json"))


# -- the markdown summary ---------------------------------------------------------------------


def test_summary_goes_to_the_file_and_is_appended_to_the_github_job_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "step_summary.md"
    job.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job))  # GitHub's name: no EVALKEEPER_ prefix
    settings = Settings()
    assert settings.github_step_summary == job
    out = tmp_path / "gate.md"
    out.write_text("stale\n")
    assert write_markdown_summary("## PASS\n\n| a |", out, settings) == [out, job]
    assert out.read_text() == "## PASS\n\n| a |\n"  # replaced
    assert job.read_text() == "# earlier step\n## PASS\n\n| a |\n"  # appended
    write_markdown_summary("## again", None, settings)
    assert job.read_text().endswith("| a |\n## again\n")


def test_without_github_step_summary_only_the_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("EVALKEEPER_GITHUB_STEP_SUMMARY", str(tmp_path / "prefixed.md"))
    settings = Settings()
    assert settings.github_step_summary is None  # the prefixed name is not GitHub's
    assert write_markdown_summary("x", None, settings) == []
    with pytest.raises(SummaryWriteError, match=r"--markdown .*nowhere/gate.md: cannot write"):
        write_markdown_summary("x", tmp_path / "nowhere" / "gate.md", settings)


# -- through a pipe: real processes ---------------------------------------------------------


def _piped(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run the `evalkeeper` command with stdout and stderr pipes (not a terminal)."""
    return subprocess.run(
        [str(EVALKEEPER), *args],
        env={k: v for k, v in env.items() if k != "COLUMNS"},
        cwd=ROOT,
        capture_output=True,  # stdout and stderr are pipes, not a terminal
        text=True,
        timeout=300,
        **kw,  # type: ignore[call-overload]
    )


@pytest.fixture
def pipe_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
        "EVALKEEPER_GIT_COMMIT": "c0ffee",
        "EVALKEEPER_GIT_BRANCH": "main",
        "EVALKEEPER_CONCURRENCY": "64",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def test_piped_listing_keeps_a_long_experiment_id_on_one_line(
    pipe_env: dict[str, str], tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 3)
    ran = _piped(["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
                  "--experiment", LONG_ID], pipe_env)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert any(LONG_ID in line for line in ran.stdout.splitlines())  # the summary's title
    listed = _piped(["experiments"], pipe_env)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if LONG_ID in line]
    assert "completed" in row and "…" not in listed.stdout
    for fmt, parse in (("csv", lambda s: s.splitlines()[1]), ("markdown", lambda s: s)):
        out = _piped(["experiments", "--format", fmt], pipe_env)
        assert out.returncode == 0 and LONG_ID in parse(out.stdout)
    as_json = json.loads(_piped(["experiments", "--format", "json"], pipe_env).stdout)
    assert as_json[0]["experiment_id"] == LONG_ID
    assert as_json[0]["started_at"].endswith("Z")
    bad = _piped(["experiments", "--format", "xml"], pipe_env)
    assert bad.returncode == 2
    assert bad.stderr == "error: --format 'xml': use table, csv, json or markdown\n"


def test_piped_console_lines_are_never_wrapped_and_rules_stay_narrow(
    pipe_env: dict[str, str],
) -> None:
    """What `demo` prints last (a suggested command longer than any terminal) through the
    CLI's console, stdout a pipe."""
    command = f"  uv run evalkeeper compare {LONG_ID} --baseline {LONG_ID} --format markdown"
    script = (
        "from evalkeeper.cli.app import console\n"
        f"console.print({command!r})\n"
        "console.rule('verdict')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=pipe_env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    printed, rule = out.stdout.splitlines()
    assert printed == command
    assert len(rule) == 80 and "verdict" in rule


def test_gate_markdown_is_printed_exactly_as_written_and_never_wrapped(
    pipe_env: dict[str, str], tmp_path: Path
) -> None:
    judges = ["--allow-skipped", "factual_match,tone_appropriate,no_hallucination"]
    base = ["gate", "--dataset", "appointments", "--suite", "full", "--baseline", "main", *judges]
    main = _piped(["run", "--dataset", "appointments", "--target", "evalkeeper.demo.agent:v1",
                   "--experiment", "main-1", *judges], pipe_env)  # fmt: skip
    assert main.returncode == 0, main.stderr
    job = tmp_path / "job_summary.md"
    job.write_text("")
    md = tmp_path / "gate.md"
    as_md = _piped([*base, "--target", "evalkeeper.demo.agent:v2", "--experiment", "pr-md",
                    "--format", "markdown", "--markdown", str(md)],
                   {**pipe_env, "GITHUB_STEP_SUMMARY": str(job)})  # fmt: skip
    assert as_md.returncode == 1, as_md.stderr  # the regression
    written = md.read_bytes()
    assert as_md.stdout.encode() == written  # byte for byte, nothing else on stdout
    assert job.read_bytes() == written
    long_rows = [line for line in written.decode().splitlines() if len(line) > 80]
    assert long_rows and any(line.startswith("|") for line in long_rows)
    # the default (table) format prints the same markdown lines through the console
    table = _piped([*base, "--target", "evalkeeper.demo.agent:v2", "--experiment", "pr-table",
                    "--markdown", str(tmp_path / "t.md")], pipe_env)  # fmt: skip
    assert table.returncode == 1, table.stderr
    printed = set(table.stdout.splitlines())
    expected = (tmp_path / "t.md").read_text().splitlines()
    assert [line for line in expected if line not in printed] == []
    assert any(len(line) > 80 and line.startswith("|") for line in expected)
    verdict = _piped([*base, "--target", "evalkeeper.demo.agent:v2", "--experiment", "pr-json",
                      "--format", "json"], pipe_env)  # fmt: skip
    assert verdict.returncode == 1 and json.loads(verdict.stdout)["verdict"] == "regression"


def test_commands_refuse_a_format_they_do_not_offer(settings: Settings) -> None:
    runner = CliRunner()
    wh = ["--warehouse", str(settings.warehouse)]
    cases = {
        ("sql", "SELECT 1", "--format", "yaml"): "use table, csv, json or markdown",
        ("judges", "--format", "yaml"): "use table, csv, json or markdown",
        ("gate", "--target", "x:y", "--format", "csv"): "use table, markdown or json",
    }
    for args, allowed in cases.items():
        out = runner.invoke(app, [*args, *wh])
        assert out.exit_code == 2, out.output
        assert out.output.strip().splitlines() == [f"error: --format '{args[-1]}': {allowed}"]


def test_sql_markdown(settings: Settings) -> None:
    out = CliRunner().invoke(
        app, ["sql", "SELECT 'a|b' AS x, 2 AS n", "--format", "markdown",
              "--warehouse", str(settings.warehouse)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout == "| x | n |\n| --- | --- |\n| a\\|b | 2 |\n"


def test_markdown_document_ends_in_exactly_one_newline() -> None:
    assert markdown_document("a\n\n") == markdown_document("a") == "a\n"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_on_a_terminal_the_console_uses_the_terminal_width(pipe_env: dict[str, str]) -> None:
    """The same console on a (pseudo-)terminal 60 columns wide wraps at 60."""
    import fcntl
    import struct
    import termios

    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    script = "from evalkeeper.cli.app import console\nconsole.print('word ' * 40)\n"
    env = {k: v for k, v in pipe_env.items() if k not in ("COLUMNS", "NO_COLOR", "TERM")}
    proc = subprocess.Popen([sys.executable, "-c", script], env={**env, "TERM": "xterm"},
                            cwd=ROOT, stdin=secondary, stdout=secondary, stderr=secondary)  # fmt: skip
    os.close(secondary)
    proc.wait(timeout=60)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: everything is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    lines = [ln for ln in b"".join(chunks).decode().splitlines() if ln.strip()]
    assert proc.returncode == 0
    assert len(lines) > 1 and all(len(ln.rstrip()) <= 60 for ln in lines)
