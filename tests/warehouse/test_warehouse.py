"""The warehouse under concurrent use by real processes: two writers, an analyst holding
the file open, and the spool that keeps rows safe meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from evalkeeper.models import utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import MIGRATIONS, Warehouse, WarehouseLocked, schema_version
from tests.helpers import analyst_holding, run_suite, write_dataset

ROOT = Path(__file__).resolve().parents[2]

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
            "started_at": [utcnow()] * 3,
        }
    )
    wh.write({"runs": frame})
    wh.write({"runs": frame})
    assert wh.rows("SELECT count(*) FROM runs") == [(3,)]


def _run_batch(
    experiment: str, examples: list[str], evaluators: tuple[str, ...] = ("a", "b")
) -> dict[str, Any]:
    now = utcnow()
    runs = pl.DataFrame(
        {"experiment_id": [experiment] * len(examples), "example_id": examples,
         "repetition": [0] * len(examples), "attempts": [1] * len(examples),
         "started_at": [now] * len(examples)}
    )  # fmt: skip
    n = len(examples) * len(evaluators)
    scores = pl.DataFrame(
        {"experiment_id": [experiment] * n,
         "example_id": [x for x in examples for _ in evaluators],
         "repetition": [0] * n, "evaluator": [e for _ in examples for e in evaluators],
         "evaluator_version": ["1"] * n, "evaluator_args_hash": ["h"] * n,
         "passed": [True] * n, "skipped": [False] * n, "created_at": [now] * n,
         "dataset_version": ["dv"] * n, "category": ["c"] * n, "target_spec": ["t:t"] * n}
    )  # fmt: skip
    return {"runs": runs, "scores": scores}


def test_scores_are_kept_only_for_runs_the_batch_inserted(tmp_path: Path) -> None:
    """`scores` has no index of its own: a re-ingested or overlapping batch must still not
    duplicate a score, because scores follow their run."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write(_run_batch("e", ["x1", "x2"]))
    wh.write(_run_batch("e", ["x1", "x2"]))  # the same batch again (a re-ingested spool)
    assert wh.rows("SELECT count(*) FROM scores") == [(4,)]
    wh.write(_run_batch("e", ["x2", "x3"]))  # overlaps: only x3 is new
    assert wh.rows("SELECT example_id, count(*) FROM scores GROUP BY ALL ORDER BY example_id") == [
        ("x1", 2),
        ("x2", 2),
        ("x3", 2),
    ]
    # the spool path (Parquet files, not frames) filters the same way
    batch = _run_batch("e", ["x3", "x4"])
    spooled = wh._spool(batch)
    assert wh.ingest_spool() == 1 and not spooled.exists()
    assert wh.rows("SELECT count(*), count(DISTINCT example_id) FROM scores") == [(8, 4)]
    with wh.connect() as con:  # and no index on scores
        assert con.execute(
            "SELECT index_count FROM duckdb_tables() WHERE table_name = 'scores'"
        ).fetchone() == (0,)


def test_migration_2_drops_the_scores_index_and_keeps_the_rows(tmp_path: Path) -> None:
    from evalkeeper.warehouse.schema import SCHEMA_V1

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # a warehouse as version 1 left it
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for stmt in SCHEMA_V1:
        con.execute(stmt)
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.register("batch", _run_batch("old", ["x1", "x2", "x3"])["scores"].to_arrow())
    con.execute("INSERT INTO scores BY NAME SELECT * FROM batch")
    con.close()
    wh = Warehouse(path)
    with wh.connect() as c:
        assert schema_version(c) == MIGRATIONS[-1][0]
        assert c.execute(
            "SELECT index_count FROM duckdb_tables() WHERE table_name = 'scores'"
        ).fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM scores WHERE experiment_id = 'old'").fetchone() == (
            6,
        )
    # the views still read the rebuilt table
    assert wh.rows("SELECT count(*) FROM pass_rate_trend") == [(0,)]  # no experiments row


def test_small_commits_stay_in_the_log_until_it_passes_the_threshold(tmp_path: Path) -> None:
    from evalkeeper.warehouse import store

    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    wh.write(_run_batch("e", ["x1"]))
    wal = Path(f"{path}.wal")
    assert 0 < wal.stat().st_size <= store.WAL_CHECKPOINT_BYTES
    # another process (an analyst, read-only) sees the logged rows
    out = subprocess.run(
        [sys.executable, "-c",
         "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True)"
         ".execute('SELECT count(*) FROM scores').fetchone()[0])", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "2"
    big = [f"y{i}" for i in range(2000)]
    wh.write(_run_batch("e", big))  # past the threshold: checkpointed before detach
    assert not wal.exists() or wal.stat().st_size == 0
    assert wh.rows("SELECT count(*) FROM runs") == [(2001,)]


def test_writes_spool_while_an_analyst_holds_the_file_then_ingest(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path, lock_wait_s=0.3)
    wh.rows("SELECT 1")  # create + migrate
    analyst = _hold(path, 3)
    try:
        frame = pl.DataFrame(
            {"experiment_id": ["e"], "example_id": ["a"], "repetition": [0], "attempts": [1],
             "started_at": [utcnow()]}
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


def test_a_finished_experiment_leaves_everything_in_the_duckdb_file(
    settings: Settings, tmp_path: Path
) -> None:
    """Small batches wait in the WAL during a run; the end of the experiment folds them
    into the file, so the .duckdb file alone (copied, say) holds every row."""
    ds = write_dataset(tmp_path / "d.jsonl", 30)
    s = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"flush_rows": 10})}
    )
    run_suite(s, dataset=str(ds), suite="full", target="tests.fake_targets:instant")
    wal = Path(f"{s.warehouse}.wal")
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(Path(s.warehouse).read_bytes())
    con = duckdb.connect(str(copy), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (30,)
    assert con.execute("SELECT status FROM experiments").fetchall() == [("completed",)]


def test_suite_completes_while_an_analyst_holds_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    """Nothing lost, nothing crashed: rows go to the spool and land afterwards."""
    ds = write_dataset(tmp_path / "d.jsonl", 200)
    s = settings.model_copy(
        update={"lock_wait_s": 0.2, "runner": settings.runner.model_copy(update={"flush_rows": 20})}
    )
    Warehouse.from_settings(s).rows("SELECT 1")
    analyst = _hold(s.warehouse, 4)
    try:
        summary = run_suite(
            s, dataset=str(ds), suite="full", target="tests.fake_targets:instant",
            experiment_id="during-analysis",
        )  # fmt: skip
    finally:
        analyst.wait()
    # the summary reads the stored rows and the spooled ones (it said "this process" and
    # counted this process's rows when the spool could not be read)
    assert summary.source == "warehouse and spool"
    assert {e.evaluator: e.n for e in summary.evaluators}["exact_match"] == 200
    wh = Warehouse.from_settings(s)
    assert len(wh.spooled_batches()) >= 2
    assert summary.spooled_batches == len(wh.spooled_batches())
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
    outs = [p.communicate(timeout=180) for p in procs]  # a guard against a hang
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    wh = Warehouse.from_settings(settings)
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


def test_migration_3_adds_the_trace_tables_to_a_version_2_warehouse(tmp_path: Path) -> None:
    from evalkeeper.warehouse.schema import SCHEMA_V1, SCHEMA_V2

    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))  # a warehouse as version 2 left it, with a run in it
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for stmt in SCHEMA_V1 + SCHEMA_V2:
        con.execute(stmt)
    con.execute("INSERT INTO schema_version VALUES (1, now()), (2, now())")
    con.execute("INSERT INTO runs (experiment_id, example_id, repetition, attempts, started_at) "
                "VALUES ('e', 'a', 0, 1, now())")  # fmt: skip
    con.close()
    wh = Warehouse(path)
    from evalkeeper.warehouse.schema import MIGRATIONS

    with wh.connect() as c:
        assert schema_version(c) == MIGRATIONS[-1][0]  # 3, then any later migration
        assert c.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        keys = c.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND table_name LIKE 'trace%' ORDER BY 1"
        ).fetchall()
        assert keys == [("trace_cursors", ["source"]), ("traces", ["trace_id"])]
    assert wh.rows("SELECT count(*) FROM trace_overview") == [(0,)]


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


def test_reads_under_an_analyst_see_what_ingesting_the_spool_leaves(tmp_path: Path) -> None:
    """While an analyst holds the file, `reading` lays the spool over the stored rows by
    each table's key and policy: a `replace` row (an experiment's finish) wins, an
    `ignore` row already stored stays, a supersede entry deletes the stored run and its
    scores, a score follows its run. What it shows is what the ingestion leaves."""
    wh = Warehouse(tmp_path / "w.duckdb", lock_wait_s=0.3)

    def experiment(status: str) -> dict[str, Any]:
        return {
            "experiments": pl.DataFrame(
                {
                    "experiment_id": ["e"],
                    "suite": ["smoke"],
                    "dataset": ["d"],
                    "dataset_version": ["dv"],
                    "target_spec": ["t:t"],
                    "target_kind": ["python"],
                    "repetitions": [1],
                    "n_examples": [3],
                    "status": [status],
                    "started_at": [utcnow()],
                }
            )
        }

    wh.write(experiment("running"))
    wh.write(_run_batch("e", ["x1", "x2"]))
    queries = {
        "experiments": "SELECT experiment_id, status FROM experiments",
        "runs": "SELECT example_id, attempts FROM runs ORDER BY ALL",
        "scores": "SELECT example_id, evaluator, count(*) FROM scores GROUP BY ALL ORDER BY ALL",
    }

    def everything() -> dict[str, list[tuple[Any, ...]]]:
        with wh.reading() as con:
            return {t: con.execute(sql).fetchall() for t, sql in queries.items()}

    with analyst_holding(wh.path):
        redo = _run_batch("e", ["x2"], evaluators=("a", "b"))
        redo["runs"] = redo["runs"].with_columns(pl.lit(2).alias("attempts"))
        redo["supersede_runs"] = pl.DataFrame(
            {"experiment_id": ["e"], "example_id": ["x2"], "repetition": [0]}
        )
        assert wh.write(redo) == "spooled"  # x2 re-attempted: its run and scores replaced
        assert wh.spooling
        assert wh.write(_run_batch("e", ["x1", "x3"])) == "spooled"  # x1 stored: ignored
        assert wh.write(experiment("completed")) == "spooled"  # the finish: replaces
        seen = everything()
        assert len(wh.spooled_batches()) == 3
    assert seen["experiments"] == [("e", "completed")]
    assert seen["runs"] == [("x1", 1), ("x2", 2), ("x3", 1)]
    assert seen["scores"] == [(x, e, 1) for x in ("x1", "x2", "x3") for e in ("a", "b")]
    assert wh.ingest_spool() == 3
    assert not wh.spooling  # the lock was had: writes wait the whole lock wait again
    assert everything() == seen
