"""`evalkeeper traces ingest|list|show` through the real CLI: summaries, exit codes, JSON."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.traces.model import FIELDS
from tests.traces.trace_lines import EMAIL, append, line, redact_emails

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


class _EmailRedactor:
    """The redactor interface (`build_redactor(settings)`), e-mail addresses only."""

    key_generated = False

    def redact_json(self, value: object) -> object:
        return redact_emails(value)


@pytest.fixture(autouse=True)
def redaction(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real `evalkeeper.traces.redaction` when this checkout has it; otherwise a module
    with its entry point that redacts e-mail addresses, so that the CLI path runs whole."""
    if importlib.util.find_spec("evalkeeper.traces.redaction") is None:
        module = types.ModuleType("evalkeeper.traces.redaction")
        module.build_redactor = lambda settings: _EmailRedactor()  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "evalkeeper.traces.redaction", module)
    yield


def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    out = runner.invoke(app, [*args, "--warehouse", str(settings.warehouse)])
    return out.exit_code, out.stdout, out.stderr


def test_ingest_prints_a_summary_and_exits_0(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(4)))
    code, out, err = cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 0, out + err
    assert "read 4  stored 4  duplicates 0  sampled out 0  bad lines 0" in out
    assert "read 4, stored 4" in err  # progress
    assert EMAIL not in out + err
    code, out, _ = cli(settings, "traces", "ingest", "--source", f"jsonl:{path}", "--json")
    assert code == 0 and json.loads(out)["read"] == 0


def test_bad_lines_are_printed_and_counted_and_exit_1(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    append(path, line(1) + '{"trace_id": "t-bad", "inputs": {}}\n' + line(2))
    code, out, err = cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 1
    problem = f'{path}:2: missing field "time"; every trace needs trace_id, time, inputs'
    assert problem in err  # each bad line as it is met
    assert "bad lines 1" in out and "stored 2" in out and problem in out.replace("\n", "")
    code, out, _ = cli(settings, "traces", "list", "--format", "json")
    assert [t["trace_id"] for t in json.loads(out)] == ["t-00002", "t-00001"]


def test_unusable_sources_exit_2_with_one_line(settings: Settings, tmp_path: Path) -> None:
    code, _, err = cli(settings, "traces", "ingest", "--source", "kafka:topic")
    assert code == 2
    assert err.strip().splitlines() == [
        "error: unknown trace source 'kafka:topic': use jsonl:PATH (a .jsonl file or a "
        "directory of *.jsonl files) or langsmith:PROJECT (root runs of a LangSmith project)"
    ]
    code, _, err = cli(settings, "traces", "ingest", "--source", f"jsonl:{tmp_path / 'none.jsonl'}")
    assert code == 2 and "no such file or directory; give an existing .jsonl file" in err


@pytest.fixture
def stored(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "app.jsonl"
    append(path, "".join(line(i) for i in range(6)) + line(6, service="billing"))
    code, out, err = cli(settings, "traces", "ingest", "--source", f"jsonl:{path}")
    assert code == 0, out + err
    return settings


def test_list_json_is_an_array_of_trace_objects(stored: Settings) -> None:
    code, out, _ = cli(stored, "traces", "list", "--format", "json", "--limit", "3")
    assert code == 0
    traces = json.loads(out)
    assert [t["trace_id"] for t in traces] == ["t-00006", "t-00005", "t-00004"]
    assert all(set(t) == set(FIELDS) for t in traces)
    assert traces[0]["time"] == "2026-11-30T00:00:06Z"
    assert traces[1]["tool_calls"][0]["name"] == "book_slot"
    assert traces[1]["tool_calls"][0]["args"]["slot"] == 5
    assert traces[1]["inputs"]["n"] == 5 and traces[1]["feedback"]["score"] == 1
    assert EMAIL not in out  # redacted before it was stored


def test_list_filters_and_formats(stored: Settings) -> None:
    code, out, _ = cli(stored, "traces", "list", "--service", "billing", "--format", "csv")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("trace_id,time,service,environment,version,model,latency_ms")
    assert len(rows) == 2 and rows[1].startswith("t-00006,2026-11-30T00:00:06Z,billing,")
    code, out, _ = cli(
        stored, "traces", "list", "--since", "2026-11-30T01:00:04+01:00", "--version", "v2",
        "--format", "json",
    )  # fmt: skip
    assert [t["trace_id"] for t in json.loads(out)] == ["t-00006", "t-00004"]
    code, _, err = cli(stored, "traces", "list", "--since", "2026-11-30T00:00:04")
    assert code == 2 and "no UTC offset" in err
    code, out, _ = cli(stored, "traces", "list")
    assert code == 0 and "t-00006" in out


def test_show_prints_every_field(stored: Settings) -> None:
    code, out, _ = cli(stored, "traces", "show", "t-00003")
    assert code == 0
    shown = json.loads(out)
    assert set(shown) == set(FIELDS)
    assert shown["trace_id"] == "t-00003" and shown["latency_ms"] == 103.0
    assert shown["context"][0]["id"] == "kb-1" and shown["version"] == "v1"
    assert EMAIL not in out
    code, out, _ = cli(stored, "traces", "show", "t-00003", "--format", "table")
    assert code == 0 and "book_slot" in out and "conversation_id" in out
    code, out, err = cli(stored, "traces", "show", "t-99999")
    assert code == 2
    assert err.strip() == (
        f"error: unknown trace 't-99999' in {stored.warehouse}: `evalkeeper traces list` "
        "shows the stored ones (or ingest it with `evalkeeper traces ingest`)"
    )


def test_the_installed_command_reads_the_store(stored: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", "traces", "show", "t-00001",
         "--warehouse", str(stored.warehouse)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tool_calls"][0]["name"] == "book_slot"


def test_traces_without_content_are_counted_warned_and_marked(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    append(
        path,
        line(1)
        + line(2, inputs={}, outputs={})
        + line(3, inputs={}, outputs={})
        + line(4, outputs=None, error="the booking API timed out")  # failed: no outputs is right
        + line(5, outputs={})
        + line(6, service="billing", inputs={}),
    )
    code, out, err = cli(settings, "traces", "ingest", "--source", f"jsonl:{path}", "--json")
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["empty_traces"] == 4
    assert len(summary["warnings"]) == 2  # one per service
    assert (
        "service scheduler: trace t-00002 was stored without inputs or outputs"
        in (summary["warnings"][0])
    )
    assert "TRACELOOP_TRACE_CONTENT=true" in summary["warnings"][0]
    code, out, _ = cli(settings, "traces", "list", "--format", "csv")
    content = {r["trace_id"]: r["content"] for r in csv.DictReader(io.StringIO(out))}
    assert content == {
        "t-00001": "ok",
        "t-00002": "no inputs, outputs",
        "t-00003": "no inputs, outputs",
        "t-00004": "ok",
        "t-00005": "no outputs",
        "t-00006": "no inputs",
    }
    code, out, _ = cli(settings, "traces", "list")
    assert code == 0 and "content" in out and "no inputs" in out
