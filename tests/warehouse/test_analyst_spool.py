"""An analyst's read-only connection held open in another process costs a run nothing
(issue 17, item 10): every write of a smoke run and of a gate (rows, summary scores, the
finish, the comparison and its verdict) goes to the spool, the run says what it spooled,
`experiments` says the experiment waits in the spool, and the next writer ingests it all,
once, in order.

Seen before: a smoke run took 24-95 s (the lock wait paid per batch), printed
`"spooled_batches": 0` with five batches in the spool, and its `latency_p95` summary score
never arrived ("no: evaluator latency_p95 has no scores")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # an analyst's notebook
con.execute("SELECT count(*) FROM runs").fetchall()
print("holding", flush=True)
time.sleep(3600)
"""

EVALUATORS = "tool_call_correct,contains,latency_ok,latency_p95"
SMOKE = ["--dataset", "appointments", "--suite", "smoke", "--target", "evalkeeper.demo.agent:v1"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "EVALKEEPER_LOCK_WAIT_S": "1",
        "EVALKEEPER_GIT_BRANCH": "main",
        "EVALKEEPER_GIT_COMMIT": "0123456789abcdef",
    }


def cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, not a timing assertion
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def analyst(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Started by the test (after the warehouse exists); killed at the end whatever happens."""
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, env["EVALKEEPER_WAREHOUSE"]],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        return proc

    yield start  # type: ignore[misc]
    for proc in procs:
        proc.kill()
        proc.wait()


def _spool(env: dict[str, str]) -> list[Path]:
    spool = Path(env["EVALKEEPER_WAREHOUSE"] + ".spool")
    return sorted(p for p in spool.iterdir() if p.is_dir() and not p.name.startswith("."))


def _statuses(env: dict[str, str]) -> dict[str, dict]:
    return {r["experiment_id"]: r for r in json.loads(cli(env, "experiments", "--format", "json"))}


def test_a_run_and_a_gate_under_an_analysts_connection_spool_everything(
    env: dict[str, str], analyst
) -> None:
    cli(env, "run", *SMOKE, "--evaluators", EVALUATORS, "--experiment", "base", "--json")
    held = analyst()

    # a smoke run: it finishes, and counts in numbers and in words what it spooled
    summary = json.loads(
        cli(env, "run", *SMOKE, "--evaluators", EVALUATORS, "--experiment", "cand", "--json")
    )
    assert held.poll() is None  # the analyst outlived the run
    batches = _spool(env)
    assert summary["spooled_batches"] == len(batches) > 0
    assert summary["source"] == "warehouse and spool"
    assert f"wait in the spool {env['EVALKEEPER_WAREHOUSE']}.spool" in summary["spool_note"]
    assert "the next writer ingests them" in summary["spool_note"]
    by_name = {e["evaluator"]: e for e in summary["evaluators"]}
    assert by_name["tool_call_correct"]["n"] == summary["rows"] == 28  # spooled rows read back
    assert by_name["latency_p95"]["n"] == 1  # the summary score, from the spooled runs
    assert summary["experiment"]["status"] == "completed"

    # until a writer ingests them, `experiments` says so (and never "completed")
    listed = _statuses(env)
    assert listed["cand"]["status"] == "waiting in the spool"
    assert listed["cand"]["rows"] == 28
    assert "rows still waiting in the spool" in listed["cand"]["baseline"]
    assert listed["base"]["status"] == "completed"

    # a gate under the same connection: its comparison and verdict are spooled too
    gate_args = ["--evaluators", EVALUATORS, "--experiment", "gated", "--baseline", "base"]
    gate = json.loads(cli(env, "gate", *SMOKE, *gate_args, "--format", "json"))
    assert gate["verdict"] == "pass", gate["reasons"]
    assert any((b / "comparisons.parquet").exists() for b in _spool(env))
    assert held.poll() is None

    # the analyst leaves; the next command that gets the lock ingests everything, in order
    held.kill()
    held.wait()
    listed = _statuses(env)
    assert _spool(env) == []
    assert {listed[e]["status"] for e in ("base", "cand", "gated")} == {"completed"}
    assert listed["cand"]["baseline"] == "yes"

    con = duckdb.connect(env["EVALKEEPER_WAREHOUSE"], read_only=True)
    try:
        for eid in ("cand", "gated"):
            assert con.execute(
                "SELECT count(*), count(DISTINCT (example_id, repetition)) FROM runs "
                "WHERE experiment_id = ?",
                [eid],
            ).fetchall() == [(28, 28)]
            assert con.execute(
                "SELECT count(*), count(DISTINCT (example_id, repetition, evaluator)) "
                "FROM scores WHERE experiment_id = ?",
                [eid],
            ).fetchall() == [(84, 84)]
            assert con.execute(
                "SELECT evaluator, count(*) FROM summary_scores WHERE experiment_id = ? "
                "GROUP BY ALL",
                [eid],
            ).fetchall() == [("latency_p95", 1)]
            assert con.execute(
                "SELECT status, finished_at IS NOT NULL, CAST(params ->> 'missing_rows' AS INTEGER) "
                "FROM experiments WHERE experiment_id = ?",
                [eid],
            ).fetchall() == [("completed", True, 0)]
        assert con.execute(
            "SELECT baseline_id, verdict, count(*) OVER () FROM comparisons "
            "WHERE experiment_id = 'gated' AND kind = 'verdict'"
        ).fetchall() == [("base", "pass", 1)]
    finally:
        con.close()
