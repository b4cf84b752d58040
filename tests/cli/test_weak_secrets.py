"""Issue 17, item 2: a secret that cannot be a key is refused wherever it is used, not only
by `listen`. A command that may sign a rollback (`monitor tick`) or redacts with the
configured key (`traces ingest`, `promote`, and a tick that ingests) stops at once, exit 2,
with one line naming the variable and how to make a key, never the value; nothing is
stored, signed or written. (`listen`: tests/http/test_http_security.py; the monitor flows:
tests/monitor/test_monitor_prefect_flows.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from tests.conftest import ROOT

runner = CliRunner()
TRAFFIC = ROOT / "data" / "traces" / "traffic-2026-11-27.jsonl"
SHORT = "short-key-12"  # 12 bytes: under the 16 a key needs
BAD = [("", "empty"), (SHORT, "12 byte(s)")]
MAKE_KEY = "secrets.token_urlsafe(32)"


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    """Three lines of the bundled traffic."""
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(TRAFFIC.open().readlines()[:3]))
    return path


def invoke(tmp_path: Path, args: list[str], **env: str) -> tuple[int, str]:
    out = runner.invoke(
        app,
        [*args, "--warehouse", str(tmp_path / "w.duckdb")],
        env={
            "EVALKEEPER_MONITORS_DIR": str(tmp_path / "monitors"),
            "EVALKEEPER_DATASETS_DIR": str(tmp_path / "datasets"),
            "PREFECT_API_URL": "",
            **env,
        },
    )
    return out.exit_code, out.stdout + out.stderr


def assert_refused(code: int, output: str, variable: str, says: str, value: str) -> None:
    assert code == 2, output
    (line,) = output.strip().splitlines()  # one line
    assert line.startswith("error:") and variable in line and says in line, line
    assert MAKE_KEY in line  # how to make a key
    if value:
        assert value not in line  # never the secret


def traces_stored(tmp_path: Path) -> int:
    if not (tmp_path / "w.duckdb").exists():
        return 0
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        return con.execute("SELECT count(*) FROM traces").fetchone()[0] if "traces" in tables else 0  # type: ignore[index]
    finally:
        con.close()


@pytest.mark.parametrize(("value", "says"), BAD)
def test_monitor_tick_refuses_a_rollback_secret_that_cannot_be_a_key(
    tmp_path: Path, value: str, says: str
) -> None:
    code, output = invoke(
        tmp_path,
        ["monitor", "tick"],
        EVALKEEPER_ROLLBACK_SECRET=value,
        EVALKEEPER_ROLLBACK_URL="http://127.0.0.1:9/rollback",
    )
    assert_refused(code, output, "EVALKEEPER_ROLLBACK_SECRET", says, value)


@pytest.mark.parametrize(("value", "says"), BAD)
def test_a_tick_that_ingests_refuses_a_redaction_key_that_cannot_be_a_key(
    tmp_path: Path, traces: Path, value: str, says: str
) -> None:
    code, output = invoke(
        tmp_path,
        ["monitor", "tick"],
        EVALKEEPER_TRACES=f"jsonl:{traces}",
        EVALKEEPER_REDACTION_KEY=value,
    )
    assert_refused(code, output, "EVALKEEPER_REDACTION_KEY", says, value)
    assert traces_stored(tmp_path) == 0


@pytest.mark.parametrize(("value", "says"), BAD)
def test_traces_ingest_refuses_a_redaction_key_that_cannot_be_a_key(
    tmp_path: Path, traces: Path, value: str, says: str
) -> None:
    args = ["traces", "ingest", "--source", f"jsonl:{traces}"]
    code, output = invoke(tmp_path, args, EVALKEEPER_REDACTION_KEY=value)
    assert_refused(code, output, "EVALKEEPER_REDACTION_KEY", says, value)
    assert traces_stored(tmp_path) == 0
    # the same ingest with a key stores the traces: the refusal was the key's
    code, output = invoke(
        tmp_path, args, EVALKEEPER_REDACTION_KEY="a-redaction-key-of-32-bytes-0001"
    )
    assert code == 0, output
    assert traces_stored(tmp_path) == 3


@pytest.mark.parametrize(("value", "says"), BAD)
def test_promote_refuses_a_redaction_key_that_cannot_be_a_key(
    tmp_path: Path, traces: Path, value: str, says: str
) -> None:
    shutil.copytree(ROOT / "data" / "datasets", tmp_path / "datasets")
    dataset = tmp_path / "datasets" / "appointments.jsonl"
    before = dataset.read_bytes()
    trace_id = json.loads(traces.read_text().splitlines()[0])["trace_id"]
    args = [
        "promote",
        trace_id,
        "--source",
        f"jsonl:{traces}",
        "--dataset",
        "appointments",
        "--reference",
        json.dumps({"must_include": ["deposit"]}),
        "--incident",
        "INC-2041",
        "--category",
        "booking",
    ]
    code, output = invoke(tmp_path, args, EVALKEEPER_REDACTION_KEY=value)
    assert_refused(code, output, "EVALKEEPER_REDACTION_KEY", says, value)
    assert dataset.read_bytes() == before  # nothing written
