"""`evalkeeper sql` is read-only (issue 17, item 5): what an analyst's SQL was seen doing
(deleting scores, dropping runs, writing and reading files, attaching another database,
installing an extension) is refused with one line, and changes and reads nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from tests.helpers import write_dataset

runner = CliRunner()


@pytest.fixture
def warehouse(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real warehouse file with one experiment's runs and scores."""
    monkeypatch.setenv("EVALKEEPER_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("EVALKEEPER_LOCK_WAIT_S", "1")
    ds = write_dataset(tmp_path / "d.jsonl", 5)
    out = runner.invoke(
        app, ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
              "--experiment", "ro-1"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    return settings.warehouse


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("scores", "runs", "experiments")
        }


def test_every_statement_seen_is_refused_and_changes_nothing(
    warehouse: Path, tmp_path: Path
) -> None:
    before = _counts(warehouse)
    assert before["scores"] >= 5 and before["runs"] == 5
    copied, other = tmp_path / "out.csv", tmp_path / "other.duckdb"
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    statements = [
        "DELETE FROM scores",
        "DROP TABLE runs",
        "UPDATE experiments SET status = 'failed'",
        "CREATE TABLE stolen AS SELECT * FROM scores",
        f"COPY scores TO '{copied}'",
        "SELECT * FROM read_csv('/etc/hostname')",
        "SELECT * FROM read_text('/etc/hostname')",
        f"ATTACH '{other}' AS o",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "SELECT 1; DELETE FROM scores",
    ]
    for statement in statements:
        out = runner.invoke(app, ["sql", statement])
        assert out.exit_code == 2, (statement, out.output)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: `sql` is read-only"), (
            statement,
            out.stderr,
        )
        assert out.stdout == "", statement
        if hostname:
            assert hostname not in out.output.replace("/etc/hostname", ""), statement
    assert _counts(warehouse) == before
    assert not copied.exists() and not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == []


def test_select_and_the_views_still_work(warehouse: Path) -> None:
    out = runner.invoke(
        app, ["sql", "SELECT count(*) AS n FROM runs WHERE experiment_id = 'ro-1'",
              "--format", "csv"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["n", "5"]
    out = runner.invoke(
        app, ["sql", "SELECT DISTINCT experiment_id FROM score_history", "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    assert '"experiment_id": "ro-1"' in out.stdout
    # temporary tables live in memory: an analyst may still use them within one call
    out = runner.invoke(
        app, ["sql", "CREATE TEMP TABLE t AS SELECT 2 AS x; SELECT x FROM t", "--format", "csv"]
    )
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["x", "2"]
    out = runner.invoke(app, ["sql", "SELEC nonsense"])
    assert out.exit_code == 2 and "query failed" in out.output


def test_a_fresh_warehouse_is_created_then_read(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    out = runner.invoke(
        app, ["sql", "SELECT count(*) AS n FROM experiments", "--format", "csv",
              "--warehouse", str(path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["n", "0"]


def _hold(path: Path, *, read_only: bool) -> subprocess.Popen[str]:
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r}, read_only={read_only})\n"
        "print('held', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_is_waited_for_then_named(warehouse: Path) -> None:
    """Another process's write lock: `sql` waits EVALKEEPER_LOCK_WAIT_S and then says so,
    as before it was read-only."""
    proc = _hold(warehouse, read_only=False)
    try:
        started = time.monotonic()
        out = runner.invoke(app, ["sql", "SELECT 1 AS x"])
        assert out.exit_code == 2, out.output
        assert "locked by another process for more than 1s" in out.stderr
        assert "EVALKEEPER_LOCK_WAIT_S" in out.stderr
        assert time.monotonic() - started >= 1
    finally:
        proc.kill()
        proc.wait()


def test_another_reader_does_not_block_it(warehouse: Path) -> None:
    proc = _hold(warehouse, read_only=True)
    try:
        out = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM runs", "--format", "csv"])
        assert out.exit_code == 0, out.output
        assert out.stdout.splitlines() == ["n", "5"]
    finally:
        proc.kill()
        proc.wait()
