"""The runner against real targets: callables, HTTP on 127.0.0.1, replay files; errors,
timeouts, retries, and resume after a killed process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkeeper import run as core
from evalkeeper.models import Score
from evalkeeper.registry import evaluator
from evalkeeper.run.targets import TargetSpecError, load_target
from evalkeeper.settings import Settings
from tests.fake_targets import HANGS, IN_FLIGHT
from tests.helpers import run_suite, write_dataset

ROOT = Path(__file__).resolve().parents[2]


def _count(settings: Settings, sql: str, *params: object) -> int:
    con = duckdb.connect(str(settings.warehouse))
    try:
        return con.execute(sql, list(params)).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()


def test_callable_target_full_suite_records_pin_runs_and_scores(
    settings: Settings, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 40)
    summary = run_suite(
        settings, dataset=str(ds), suite="full", target="tests.fake_targets:instant"
    )
    exp = summary.experiment
    assert exp.status == "completed"
    assert summary.rows == 40
    by_name = {e.evaluator: e for e in summary.evaluators}
    assert by_name["exact_match"].passed == 40
    assert by_name["latency_ok"].passed == 40
    assert exp.target.agent_version == "fake 1.0"
    assert exp.target.git_commit == "0123456789abcdef"
    assert (
        _count(settings, "SELECT count(*) FROM scores WHERE experiment_id=?", exp.experiment_id)
        == 80
    )
    assert (
        _count(
            settings,
            "SELECT count(*) FROM scores WHERE dataset_version=? AND agent_version='fake 1.0'",
            exp.dataset_version,
        )
        == 80
    )


def test_sync_callable_and_repetitions(settings: Settings, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 10)
    summary = run_suite(
        settings,
        dataset=str(ds),
        suite="full",
        target="tests.fake_targets:sync_echo",
        repetitions=3,
    )
    assert summary.rows == 30
    assert _count(settings, "SELECT count(DISTINCT repetition) FROM runs") == 3


@pytest.fixture
def slow_judge(restore_registry: None) -> str:
    """An async evaluator slower than the target (as an LLM judge is), counting overlap;
    registered for one test."""

    @evaluator("test_slow_judge", version="1", kind="judge")
    def _slow_judge() -> Any:
        """Sleeps 50 ms per score and counts the rows being scored at once."""

        async def score(outputs: Any = None) -> Score:
            IN_FLIGHT["scoring"] += 1
            IN_FLIGHT["scoring_max"] = max(IN_FLIGHT["scoring_max"], IN_FLIGHT["scoring"])
            try:
                await asyncio.sleep(0.05)
            finally:
                IN_FLIGHT["scoring"] -= 1
            return Score(value=1.0, passed=True)

        return score

    return "test_slow_judge"


def test_concurrency_bounds_target_calls_and_rows_being_scored(
    settings: Settings, tmp_path: Path, slow_judge: str
) -> None:
    """Workers start their next call while the last one is scored, but never more than
    `concurrency` calls at once, nor more than `concurrency` rows waiting on a slow
    evaluator (the workers wait for it instead of piling rows up)."""
    IN_FLIGHT.clear()
    ds = write_dataset(tmp_path / "d.jsonl", 60)
    summary = run_suite(
        settings, dataset=str(ds), suite="full", target="tests.fake_targets:counted",
        evaluators=[slow_judge, "exact_match"], concurrency=4,
    )  # fmt: skip
    assert IN_FLIGHT["target_max"] == 4
    assert 2 <= IN_FLIGHT["scoring_max"] <= 4
    assert IN_FLIGHT["target"] == IN_FLIGHT["scoring"] == 0
    assert summary.rows == 60
    assert {e.evaluator: e.n for e in summary.evaluators} == {
        "test_slow_judge": 60,
        "exact_match": 60,
    }


def test_target_errors_and_timeouts_are_recorded_and_the_suite_goes_on(
    settings: Settings, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 21)
    s = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"timeout_s": 0.3})}
    )
    summary = run_suite(
        s, dataset=str(ds), suite="full", target="tests.fake_targets:broken_on_sevens"
    )
    assert summary.rows == 21 and summary.target_errors == 3  # 0, 7, 14
    errors = dict(
        duckdb.connect(str(s.warehouse))
        .execute("SELECT example_id, error FROM runs WHERE error IS NOT NULL")
        .fetchall()
    )
    assert errors["ex-00007"] == "ValueError: cannot handle 7"
    # the scores of an errored row are errors, never passes or zeros
    n_bad = _count(
        s, "SELECT count(*) FROM scores WHERE example_id='ex-00007' AND (passed OR value = 0)"
    )
    assert n_bad == 0
    assert (
        _count(s, "SELECT count(*) FROM scores WHERE example_id='ex-00007' AND error IS NOT NULL")
        == 2
    )

    HANGS.clear()
    summary = run_suite(
        s, dataset=str(ds), suite="full", target="tests.fake_targets:hangs_on_fives"
    )
    # the timeout cancels each hanging call; none was waited out to its end
    assert HANGS == {"started": 5, "cancelled": 5}
    assert summary.target_errors == 5  # 0, 5, 10, 15, 20
    assert (
        _count(
            s,
            "SELECT count(*) FROM runs WHERE experiment_id=? AND error = 'timeout after 0.3s'",
            summary.experiment.experiment_id,
        )
        == 5
    )


def test_transient_errors_are_retried_with_backoff(settings: Settings, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 5)
    s = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"retries": 2, "backoff_s": 0.01})}
    )
    summary = run_suite(s, dataset=str(ds), suite="full", target="tests.fake_targets:flaky")
    assert summary.target_errors == 0
    assert _count(s, "SELECT min(attempts) FROM runs") == 3
    s1 = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"retries": 1, "backoff_s": 0.01})}
    )
    ds2 = write_dataset(tmp_path / "d2.jsonl", 5)
    # fresh example keys (the counter is per n): 5 new n values would be needed; reuse with
    # a new process-wide counter is not possible, so check the budget on other examples
    lines = [json.loads(x) for x in ds2.read_text().splitlines()]
    for row in lines:
        row["inputs"]["n"] += 1000
    ds2.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    summary = run_suite(s1, dataset=str(ds2), suite="full", target="tests.fake_targets:flaky")
    assert summary.target_errors == 5  # 2 transient failures > 1 retry


class _Agent(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["n"] == 3 and type(self).calls < 100:
            self.send_response(500)
            self.end_headers()
            return
        data = json.dumps({"reply": f"answer {body['n']}", "tool_calls": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/agent"
    server.shutdown()


def test_http_target_posts_inputs_and_retries_5xx(
    settings: Settings, tmp_path: Path, http_agent: str
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 8)
    s = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"retries": 1, "backoff_s": 0.01})}
    )
    summary = run_suite(s, dataset=str(ds), suite="full", target=http_agent)
    assert summary.experiment.target.kind == "http"
    assert summary.target_errors == 1
    err = _count(s, "SELECT count(*) FROM runs WHERE error LIKE '%HTTP 500%' AND attempts = 2")
    assert err == 1
    assert {e.evaluator: e.passed for e in summary.evaluators}["exact_match"] == 7


def test_replay_target_uses_recorded_outputs_and_latency(
    settings: Settings, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 4)
    replay = tmp_path / "recorded.jsonl"
    replay.write_text(
        "\n".join(
            [
                json.dumps(
                    {"id": "ex-00000", "outputs": {"reply": "answer 0"}, "latency_ms": 2000}
                ),
                json.dumps({"id": "ex-00001", "outputs": {"reply": "wrong"}, "latency_ms": 10}),
                json.dumps({"id": "ex-00002", "error": "upstream timeout"}),
            ]
        )
        + "\n"
    )
    summary = run_suite(settings, dataset=str(ds), suite="full", target=f"replay:{replay}")
    con = duckdb.connect(str(settings.warehouse))
    runs = {
        r[0]: r[1:]
        for r in con.execute("SELECT example_id, latency_ms, error FROM runs").fetchall()
    }
    assert runs["ex-00000"] == (2000.0, None)
    assert runs["ex-00002"][1] == "upstream timeout"
    assert "no recorded output" in runs["ex-00003"][1]
    scores = dict(
        con.execute(
            "SELECT example_id || '/' || evaluator, passed FROM scores WHERE error IS NULL"
        ).fetchall()
    )
    assert scores["ex-00000/latency_ok"] is False
    assert scores["ex-00001/exact_match"] is False
    assert summary.target_errors == 2


def test_bad_target_specs_say_how_to_fix_them(tmp_path: Path) -> None:
    with pytest.raises(TargetSpecError, match="cannot import module 'no_such_mod'"):
        load_target("no_such_mod:fn")
    with pytest.raises(TargetSpecError, match="has no callable 'nope'"):
        load_target("tests.fake_targets:nope")
    with pytest.raises(TargetSpecError, match="expected module:function"):
        load_target("just-a-word")
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"outputs": {}}\n')
    with pytest.raises(TargetSpecError, match=f'{bad}:1: missing field "id"'):
        load_target(f"replay:{bad}")


def test_resume_with_same_experiment_rejects_a_changed_dataset(
    settings: Settings, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 5)
    run_suite(
        settings,
        dataset=str(ds),
        suite="full",
        target="tests.fake_targets:instant",
        experiment_id="same",
    )
    write_dataset(ds, 6)
    with pytest.raises(core.ExperimentError, match="exists with different settings"):
        run_suite(
            settings,
            dataset=str(ds),
            suite="full",
            target="tests.fake_targets:instant",
            experiment_id="same",
        )


def test_killed_run_resumes_without_duplicates_or_losses(
    settings: Settings, tmp_path: Path
) -> None:
    """A real process is killed (SIGKILL) halfway; the same command then completes it."""
    ds = write_dataset(tmp_path / "d.jsonl", 300)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_FLUSH_ROWS": "10",
        "EVALKEEPER_FLUSH_S": "0.1",
        "FAKE_TARGET_SLEEP_S": "0.05",
    }
    cmd = [
        sys.executable, "-m", "evalkeeper.cli", "run", "--dataset", str(ds),
        "--target", "tests.fake_targets:slow", "--experiment", "nightly-x",
        "--concurrency", "4", "--json",
    ]  # fmt: skip
    child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            done = _count(settings, "SELECT count(*) FROM runs")
        except duckdb.Error:
            continue  # the child holds the lock for a moment
        if done >= 60:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 60 <= done < 300, child.stderr.read() if child.stderr else ""
    before = dict(
        duckdb.connect(str(settings.warehouse))
        .execute("SELECT example_id, started_at FROM runs")
        .fetchall()
    )
    assert len(before) < 300

    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["experiment"]["status"] == "completed"
    con = duckdb.connect(str(settings.warehouse))
    assert con.execute("SELECT count(*), count(DISTINCT example_id) FROM runs").fetchone() == (
        300,
        300,
    )
    assert con.execute("SELECT count(*) FROM scores").fetchone() == (600,)
    after = dict(con.execute("SELECT example_id, started_at FROM runs").fetchall())
    assert all(after[k] == v for k, v in before.items())  # nothing redone, nothing lost


def test_interrupted_run_says_how_to_resume_and_keeps_its_rows(
    settings: Settings, tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT): exit 130, the buffered rows are written, the message names the
    experiment to resume."""
    ds = write_dataset(tmp_path / "d.jsonl", 300)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "FAKE_TARGET_SLEEP_S": "0.05",
    }
    cmd = [
        sys.executable, "-m", "evalkeeper.cli", "run", "--dataset", str(ds),
        "--target", "tests.fake_targets:slow", "--concurrency", "4",
    ]  # fmt: skip
    child = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the run has really started
        time.sleep(0.2)
        try:
            if _count(settings, "SELECT count(*) FROM experiments") == 1:
                break
        except duckdb.Error:
            continue
    time.sleep(1.0)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    resume = err.split("--experiment ")[1].split()[0]
    kept = _count(settings, "SELECT count(*) FROM runs WHERE experiment_id = ?", resume)
    assert 0 < kept < 300  # what finished before Ctrl-C was flushed on the way out
    done = subprocess.run([*cmd, "--experiment", resume, "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _count(settings, "SELECT count(*) FROM runs WHERE experiment_id = ?", resume) == 300
