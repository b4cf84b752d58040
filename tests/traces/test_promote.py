"""`evalkeeper promote`: a trace becomes a regression example, redacted, atomically, once.

Real files throughout: the trace ingested from a JSONL file into a DuckDB warehouse in
tmp_path, the dataset a copy of the bundled one, the CLI through Typer's runner, and a
child process killed just before the rename.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.datasets import load_dataset
from evalkeeper.settings import Settings
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.model import Trace
from evalkeeper.traces.promote import (
    AlreadyPromoted,
    PromoteError,
    append_example,
    example_from_trace,
    promote,
)
from evalkeeper.traces.sources import open_source
from tests.conftest import ROOT

runner = CliRunner()
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0132"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REFERENCE = {
    "reply": "Your appointment A-1042 is cancelled.",
    "must_include": ["cancelled"],
    "tool_calls": [{"name": "cancel_appointment", "args": {"appointment_id": "A-1042"}}],
}


def raw_trace(trace_id: str = TRACE_ID) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "time": "2026-12-02T21:14:05Z",
        "service": "appointments-agent",
        "version": "appointments-agent 1.5.0",
        "model": "rules-2026-11-01",
        "inputs": {
            "messages": [
                {
                    "role": "user",
                    "content": f"I'm {EMAIL}, call {PHONE}. Cancel A-1042 on 3 December please",
                }
            ],
            "customer_id": "C-1042",
        },
        "outputs": {"reply": "I have moved A-1042 to 3 December."},
        "latency_ms": 1450.0,
        "tool_calls": [{"name": "reschedule_appointment", "args": {"appointment_id": "A-1042"}}],
    }


@pytest.fixture
def psettings(tmp_path: Path) -> Settings:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    for suffix in (".jsonl", ".toml"):
        shutil.copy(ROOT / "data" / "datasets" / f"appointments{suffix}", datasets)
    return Settings(
        warehouse=tmp_path / "w.duckdb",
        datasets_dir=datasets,
        redaction_key=SecretStr("promote-test-key-0123"),
        lock_wait_s=2.0,
    )


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_text(json.dumps(raw_trace()) + "\n" + json.dumps(raw_trace("t-other")) + "\n")
    return path


@pytest.fixture
def stored(psettings: Settings, source_file: Path) -> Settings:
    import asyncio

    summary = asyncio.run(ingest(psettings, open_source(f"jsonl:{source_file}", psettings)))
    assert summary.stored == 2
    return psettings


def cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    out = runner.invoke(
        app,
        [*args, "--warehouse", str(settings.warehouse)],
        env={
            "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
            "EVALKEEPER_REDACTION_KEY": "promote-test-key-0123",
        },
    )
    return out.exit_code, out.stdout, out.stderr


def _promote_args(*extra: str, reference: str | None = None) -> list[str]:
    return [
        "promote",
        TRACE_ID,
        "--dataset",
        "appointments",
        "--reference",
        reference or json.dumps(REFERENCE),
        "--incident",
        "INC-2041",
        "--category",
        "cancellation",
        *extra,
    ]


def test_promote_appends_the_redacted_example_and_prints_the_version(stored: Settings) -> None:
    path = stored.datasets_dir / "appointments.jsonl"
    before = load_dataset(path, stored.datasets_dir)
    code, out, err = cli(stored, *_promote_args())
    assert code == 0, out + err
    after = load_dataset(path, stored.datasets_dir)
    assert len(after.examples) == len(before.examples) + 1
    assert after.version != before.version
    assert after.version in out and before.version in out
    new = after.examples[-1]
    assert new.id in out
    assert new.metadata.incident_id == "INC-2041"
    assert new.metadata.promoted_from_run == TRACE_ID
    assert new.metadata.category == "cancellation"
    assert new.metadata.critical is True
    extra = new.metadata.model_extra or {}
    assert extra["agent_version"] == "appointments-agent 1.5.0"
    assert extra["model"] == "rules-2026-11-01"
    assert new.reference_outputs == REFERENCE
    text = path.read_text()
    assert EMAIL not in text and "415 555 0132" not in text
    content = new.inputs["messages"][0]["content"]
    assert "<EMAIL:" in content and "<PHONE:" in content
    assert "Cancel A-1042 on 3 December" in content  # ids and dates survive redaction
    assert new.inputs["customer_id"] == "C-1042"


def test_personal_data_in_the_reference_is_written_as_the_inputs_tokens(
    stored: Settings,
) -> None:
    reference = {
        "reply": f"Cancelled A-1042 on 3 December; a confirmation went to {EMAIL}.",
        "must_include": ["cancelled", EMAIL],
        "tool_calls": [{"name": "cancel_appointment", "args": {"appointment_id": "A-1042"}}],
    }
    code, out, err = cli(stored, *_promote_args(reference=json.dumps(reference)))
    assert code == 0, out + err
    assert "--reference held personal data (2 EMAIL)" in err
    path = stored.datasets_dir / "appointments.jsonl"
    assert EMAIL not in path.read_text()
    new = load_dataset(path, stored.datasets_dir).examples[-1]
    token = re.search(r"<EMAIL:[0-9a-f]{8}>", new.inputs["messages"][0]["content"])
    assert token is not None
    assert new.reference_outputs["must_include"] == ["cancelled", token.group()]
    assert new.reference_outputs["reply"] == (
        f"Cancelled A-1042 on 3 December; a confirmation went to {token.group()}."
    )
    assert new.reference_outputs["tool_calls"] == reference["tool_calls"]


def test_promote_twice_is_refused_naming_the_example(stored: Settings) -> None:
    code, out, err = cli(stored, *_promote_args())
    assert code == 0, out + err
    path = stored.datasets_dir / "appointments.jsonl"
    held = load_dataset(path, stored.datasets_dir).examples[-1].id
    content = path.read_bytes()
    code, out, err = cli(stored, *_promote_args("--no-critical"))
    assert code == 2
    assert f"already in dataset 'appointments' as example '{held}'" in err
    assert path.read_bytes() == content


def test_a_reference_without_what_the_evaluators_need_is_refused(stored: Settings) -> None:
    path = stored.datasets_dir / "appointments.jsonl"
    content = path.read_bytes()
    code, _, err = cli(stored, *_promote_args(reference='{"reply": "cancelled"}'))
    assert code == 2
    assert 'tool_call_correct needs reference key "tool_calls"' in err
    assert 'contains needs reference key "must_include"' in err
    assert path.read_bytes() == content
    bad_calls = json.dumps({"must_include": ["x"], "tool_calls": "cancel"})
    code, _, err = cli(stored, *_promote_args(reference=bad_calls))
    assert code == 2 and 'tool_call_correct needs "tool_calls" as a list' in err


def test_reference_from_a_file_and_no_critical(stored: Settings, tmp_path: Path) -> None:
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(REFERENCE))
    code, out, err = cli(stored, *_promote_args("--no-critical", reference=f"@{ref}"))
    assert code == 0, out + err
    ds = load_dataset(stored.datasets_dir / "appointments.jsonl", stored.datasets_dir)
    assert ds.examples[-1].metadata.critical is False
    code, _, err = cli(stored, *_promote_args(reference=f"@{tmp_path / 'missing.json'}"))
    assert code == 2 and "cannot read the file" in err
    code, _, err = cli(stored, *_promote_args(reference="[1, 2]"))
    assert code == 2 and "write a JSON object" in err


def test_an_unknown_trace_says_where_it_looked(stored: Settings) -> None:
    args = _promote_args()
    args[1] = "no-such-trace"
    code, _, err = cli(stored, *args)
    assert code == 2 and "unknown trace 'no-such-trace'" in err and "--source" in err


def test_promote_from_a_source_redacts_before_writing(
    psettings: Settings, source_file: Path
) -> None:
    code, out, err = cli(psettings, *_promote_args("--source", f"jsonl:{source_file}"))
    assert code == 0, out + err
    text = (psettings.datasets_dir / "appointments.jsonl").read_text()
    assert TRACE_ID in text and EMAIL not in text and "415 555 0132" not in text
    assert EMAIL not in out + err


def test_a_new_dataset_is_created_with_evaluators_from_the_reference(stored: Settings) -> None:
    args = _promote_args()
    args[3] = "incidents"
    code, out, err = cli(stored, *args)
    assert code == 0, out + err
    assert "created dataset incidents" in err
    ds = load_dataset("incidents", stored.datasets_dir)
    assert [e.metadata.promoted_from_run for e in ds.examples] == [TRACE_ID]
    names = [r.name for r in ds.config.evaluators]
    assert names == ["tool_call_correct", "contains", "latency_ok"]
    assert ds.version in out


def test_a_failure_before_the_rename_leaves_the_file_as_it_was(stored: Settings) -> None:
    import asyncio

    from evalkeeper.traces.lookup import load_trace

    trace = asyncio.run(load_trace(stored, TRACE_ID))
    path = stored.datasets_dir / "appointments.jsonl"
    content = path.read_bytes()

    def boom(tmp: Path) -> None:
        assert tmp.exists() and tmp.parent == path.parent
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        promote(
            stored,
            trace,
            dataset="appointments",
            reference=REFERENCE,
            incident_id="INC-1",
            category="cancellation",
            before_replace=boom,
        )
    assert path.read_bytes() == content
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file is gone too


def test_a_process_killed_mid_promotion_leaves_a_valid_dataset(stored: Settings) -> None:
    path = stored.datasets_dir / "appointments.jsonl"
    content = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from pydantic import SecretStr
        from evalkeeper.settings import Settings
        from evalkeeper.traces.store import get_trace
        from evalkeeper.traces.promote import promote

        s = Settings(warehouse=Path({str(stored.warehouse)!r}),
                     datasets_dir=Path({str(stored.datasets_dir)!r}),
                     redaction_key=SecretStr("promote-test-key-0123"))
        trace = get_trace(s, {TRACE_ID!r})
        def die(tmp):
            print("written", tmp.stat().st_size, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        promote(s, trace, dataset="appointments", reference={REFERENCE!r},
                incident_id="INC-9", category="cancellation", before_replace=die)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.startswith("written")  # it died with the new file fully written
    assert path.read_bytes() == content
    ds = load_dataset(path, stored.datasets_dir)  # still a valid dataset
    assert all(e.metadata.promoted_from_run != TRACE_ID for e in ds.examples)
    # the next promotion works (the lock was released with the dead process)
    code, out, err = cli(stored, *_promote_args())
    assert code == 0, out + err


def test_the_core_takes_a_trace_from_any_source(tmp_path: Path) -> None:
    settings = Settings(warehouse=tmp_path / "w.duckdb", datasets_dir=tmp_path / "ds")
    trace = Trace.model_validate(raw_trace("run-1") | {"inputs": {"question": "hours?"}})
    first = promote(
        settings,
        trace,
        dataset="langsmith-incidents",
        reference={"must_include": ["08:00"]},
        incident_id="INC-7",
        category="policy",
        critical=False,
    )
    assert first.created and first.examples == 1 and first.previous_version is None
    with pytest.raises(AlreadyPromoted) as exc:
        promote(
            settings,
            trace,
            dataset="langsmith-incidents",
            reference={"must_include": ["08:00"]},
            incident_id="INC-7",
            category="policy",
        )
    assert exc.value.example_id == first.example_id
    with pytest.raises(PromoteError, match="a dataset name is"):
        promote(
            settings,
            trace,
            dataset="../x",
            reference={},
            incident_id="INC-7",
            category="policy",
        )


def test_append_keeps_a_file_without_a_final_newline_valid(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    trace = Trace.model_validate(raw_trace())
    ex = example_from_trace(
        trace, reference={}, incident_id="I", category="c", example_id="a"
    ).model_dump(mode="json")
    path.write_text(json.dumps(ex))  # no newline at the end
    second = example_from_trace(trace, reference={}, incident_id="I", category="c", example_id="b")
    append_example(path, second)
    assert [e.id for e in load_dataset(path, tmp_path).examples] == ["a", "b"]
