"""The warehouse under concurrent use by real processes: two writers, an analyst holding
the file open, and the spool that keeps rows safe meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from evalkeeper import experiment as core
from evalkeeper.settings import Settings
from evalkeeper.warehouse import MIGRATIONS, Warehouse, WarehouseLocked, schema_version
from tests.helpers import write_dataset

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM runs").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """An analyst's process with the warehouse open read-only (which keeps writers out)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_migrations_are_recorded_and_not_rerun(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.connect() as con:
        assert schema_version(con) == MIGRATIONS[-1][0]
    with Warehouse(tmp_path / "w.duckdb").connect() as con:  # a second open: no error
        assert con.execute("SELECT count(*) FROM schema_version").fetchone() == (len(MIGRATIONS),)
        views = {
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        assert "score_history" in views


def test_frames_are_idempotent_on_the_primary_key(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    frame = pl.DataFrame(
        {
            "experiment_id": ["e"] * 3,
            "example_id": ["a", "b", "c"],
            "repetition": [0, 0, 0],
            "attempts": [1, 1, 1],
            "started_at": [core.utcnow()] * 3,
        }
    )
    wh.write({"runs": frame})
    wh.write({"runs": frame})
    assert wh.rows("SELECT count(*) FROM runs") == [(3,)]


def test_writes_spool_while_an_analyst_holds_the_file_then_ingest(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path, lock_wait_s=0.3)
    wh.rows("SELECT 1")  # create + migrate
    analyst = _hold(path, 3)
    try:
        frame = pl.DataFrame(
            {"experiment_id": ["e"], "example_id": ["a"], "repetition": [0], "attempts": [1],
             "started_at": [core.utcnow()]}
        )  # fmt: skip
        assert wh.write({"runs": frame}) == "spooled"
        assert len(wh.spooled_batches()) == 1
        with pytest.raises(WarehouseLocked, match="locked by another process"):
            wh.write({"runs": frame}, spool_ok=False)
    finally:
        analyst.wait()
    assert wh.ingest_spool() == 1
    assert wh.spooled_batches() == []
    assert wh.rows("SELECT count(*) FROM runs") == [(1,)]


def test_suite_completes_while_an_analyst_holds_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    """Nothing lost, nothing crashed: rows go to the spool and land afterwards."""
    ds = write_dataset(tmp_path / "d.jsonl", 200)
    s = settings.model_copy(update={"lock_wait_s": 0.2, "flush_rows": 20})
    core.warehouse_for(s).rows("SELECT 1")
    analyst = _hold(s.warehouse, 4)
    try:
        summary = core.run_suite(
            s, dataset=str(ds), suite="full", target="tests.fake_targets:instant",
            experiment_id="during-analysis",
        )  # fmt: skip
    finally:
        analyst.wait()
    assert summary.source == "this process"
    assert {e.evaluator: e.n for e in summary.evaluators}["exact_match"] == 200
    wh = core.warehouse_for(s)
    assert len(wh.spooled_batches()) >= 2
    wh.ingest_spool()
    assert wh.rows("SELECT count(*), count(DISTINCT example_id) FROM runs") == [(200, 200)]
    assert wh.rows("SELECT count(*) FROM scores") == [(400,)]
    assert wh.rows("SELECT status FROM experiments") == [("completed",)]


def test_two_writer_processes_at_once_lose_nothing(settings: Settings, tmp_path: Path) -> None:
    """A nightly run and a manual run write the same file at the same time."""
    ds = write_dataset(tmp_path / "d.jsonl", 400)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_FLUSH_ROWS": "25",
        "FAKE_TARGET_SLEEP_S": "0.005",
    }

    def start(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "evalkeeper.cli", "run", "--dataset", str(ds),
             "--target", "tests.fake_targets:slow", "--experiment", name, "--json"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [start("nightly"), start("manual")]
    t0 = time.monotonic()
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert time.monotonic() - t0 < 180
    wh = core.warehouse_for(settings)
    wh.ingest_spool()
    counts = dict(wh.rows("SELECT experiment_id, count(*) FROM runs GROUP BY 1"))
    assert counts == {"nightly": 400, "manual": 400}
    assert dict(wh.rows("SELECT experiment_id, count(*) FROM scores GROUP BY 1")) == {
        "nightly": 800,
        "manual": 800,
    }
    assert dict(wh.rows("SELECT experiment_id, status FROM experiments")) == {
        "nightly": "completed",
        "manual": "completed",
    }
    # the analyst's view agrees
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    assert con.execute("SELECT sum(n) FROM score_history").fetchone() == (1600,)


def test_views_are_recreated_only_when_their_definition_changes(tmp_path: Path) -> None:
    from evalkeeper.warehouse import store

    path = tmp_path / "w.duckdb"
    Warehouse(path).rows("SELECT 1")
    con = duckdb.connect(str(path))
    con.execute("DROP VIEW score_history")
    con.close()
    store._MIGRATED.clear()  # a new process, as far as migration is concerned
    # unchanged definitions: nothing recreated (the dropped view stays dropped)
    with Warehouse(path).connect() as c:
        names = {r[0] for r in c.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert "score_history" not in names
        c.execute("UPDATE schema_views SET hash = 'stale' WHERE name = 'score_history'")
    store._MIGRATED.clear()
    with Warehouse(path).connect() as c:
        names = {r[0] for r in c.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert "score_history" in names
