"""Shards that never open the warehouse: their rows go to a results location (a directory,
or S3 on a real moto server on 127.0.0.1) and the parent, the warehouse's one writer,
ingests them. The same experiment in-process and through the location gives the same
rows and the same verdict; a shard run twice, an ingest done twice and a shard killed
with SIGKILL all leave every row exactly once."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkeeper import run as core
from evalkeeper.analysis.gate import decide_gate
from evalkeeper.models import Experiment
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.results import MANIFEST, ResultsLocation, ResultsLocationError
from tests.helpers import write_dataset
from tests.s3_server import CREDENTIALS, S3Server, s3_server

ROOT = Path(__file__).resolve().parents[2]
N = 60
SHARDS = 3

SCORES_SQL = (  # a latency's value and comment are the clock's, not the run's
    "SELECT example_id, repetition, evaluator, evaluator_version, evaluator_args_hash, "
    "CASE WHEN evaluator = 'latency_ok' THEN NULL ELSE value END, passed, error, skipped, "
    "CASE WHEN evaluator = 'latency_ok' THEN NULL ELSE comment END, category "
    "FROM scores WHERE experiment_id = ? ORDER BY ALL"
)
RUNS_SQL = (
    "SELECT example_id, repetition, outputs, error, attempts FROM runs WHERE experiment_id = ? "
    "ORDER BY ALL"
)


def _rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _count(settings: Settings, table: str, experiment_id: str) -> tuple[int, int]:
    """Rows of `table` for the experiment, and distinct (example, repetition[, evaluator])."""
    key = "example_id, repetition" + (", evaluator" if table == "scores" else "")
    row = _rows(
        settings,
        f"SELECT count(*), count(DISTINCT ({key})) FROM {table} WHERE experiment_id = ?",
        experiment_id,
    )[0]
    return int(row[0]), int(row[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with s3_server() as srv:
        yield srv


def _blocked(settings: Settings, tmp_path: Path) -> Settings:
    """The shards' settings: a warehouse path that cannot be opened or created (its
    directory is a file), so a shard that touched the warehouse would fail."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    blocker = tmp_path / "no-warehouse-here"
    blocker.write_text("a file where the warehouse's directory would be\n")
    return settings.model_copy(update={"warehouse": blocker / "warehouse.duckdb"})


def _experiment(
    settings: Settings,
    ds: Path,
    target: str,
    experiment_id: str,
    *,
    results: ResultsLocation | None = None,
    shard_settings: Settings | None = None,
    before_ingest: Any = None,
) -> core.Summary:
    """prepare, SHARDS shards, finish: the flows' sequence, the shards through `results`
    (with `shard_settings`) when given."""

    async def go() -> core.Summary:
        exp = await core.prepare(
            settings, dataset=str(ds), suite="full", target=target, experiment_id=experiment_id
        )
        if results is not None:
            await core.publish_stored(settings, exp, results)
        for shard in range(SHARDS):
            await core.run_shard(
                shard_settings or settings, exp, shard=shard, shards=SHARDS, results=results
            )
        if results is not None:
            if before_ingest is not None:
                before_ingest(exp)
            report = await core.ingest_results(settings, exp, results)
            assert report.batches >= SHARDS and report.rows["runs"] == N
        return await core.finish(settings, exp)

    return asyncio.run(go())


def _suite_pair(
    settings: Settings,
    ds: Path,
    *,
    results: ResultsLocation | None = None,
    shard_settings: Settings | None = None,
    before_ingest: Any = None,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], str, list[str]]:
    """A baseline in-process, then a candidate (through `results` when given): the
    candidate's scores and runs, and the verdict of the candidate against the baseline."""
    _experiment(settings, ds, "tests.fake_targets:instant", "base")
    summary = _experiment(
        settings,
        ds,
        "tests.fake_targets:wrong_on_sevens",
        "cand",
        results=results,
        shard_settings=shard_settings,
        before_ingest=before_ingest,
    )
    assert summary.experiment.status == "completed"
    outcome = decide_gate(Warehouse.from_settings(settings), "cand", "base", settings)
    return (
        _rows(settings, SCORES_SQL, "cand"),
        _rows(settings, RUNS_SQL, "cand"),
        outcome.verdict,
        outcome.reasons,
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data" / "d.jsonl", N, critical_every=7)


def _settings_in(settings: Settings, folder: Path) -> Settings:
    return settings.model_copy(update={"warehouse": folder / "warehouse.duckdb"})


def test_results_in_a_directory_and_in_s3_give_the_in_process_experiment(
    settings: Settings, dataset: Path, tmp_path: Path, s3: S3Server
) -> None:
    in_process = _suite_pair(_settings_in(settings, tmp_path / "a"), dataset)
    scores, runs, verdict, reasons = in_process
    assert len(runs) == N and len(scores) == 2 * N
    failed = [r for r in scores if r[2] == "exact_match" and r[6] is False]
    assert len(failed) == len(range(0, N, 7))
    assert verdict == "regression" and reasons, reasons  # critical rows broke: worth comparing

    directory = tmp_path / "results"
    local = _settings_in(settings, tmp_path / "b")
    via_dir = _suite_pair(
        local,
        dataset,
        results=ResultsLocation(str(directory)),
        shard_settings=_blocked(local, tmp_path / "b"),
    )
    assert via_dir == in_process

    seen: list[str] = []

    def keys_before_ingest(exp: Experiment) -> None:
        seen.extend(s3.keys("evals/cand/"))

    remote = _settings_in(settings, tmp_path / "c")
    via_s3 = _suite_pair(
        remote,
        dataset,
        results=ResultsLocation(f"s3://{s3.bucket}/evals", endpoint_url=s3.endpoint),
        shard_settings=_blocked(remote, tmp_path / "c"),
        before_ingest=keys_before_ingest,
    )
    assert via_s3 == in_process
    # the shards wrote committed batches under shard-<k>/; the ingest removed them
    shards = {k.split("/")[2] for k in seen if k.split("/")[2].startswith("shard-")}
    assert shards == {f"shard-{k}" for k in range(SHARDS)}
    manifests = [k for k in seen if k.endswith("/" + MANIFEST)]
    assert manifests and all(k.rsplit("/", 1)[0] + "/runs.parquet" in seen for k in manifests)
    assert [k for k in s3.keys("evals/cand/") if "/shard-" in k] == []
    # no shard opened the warehouse: nothing was created where they were pointed
    assert (tmp_path / "b" / "no-warehouse-here").is_file()
    assert (tmp_path / "c" / "no-warehouse-here").is_file()
    assert not Path(f"{remote.warehouse}.spool").exists()


def _prepared(settings: Settings, ds: Path, target: str, results: ResultsLocation) -> Experiment:
    async def go() -> Experiment:
        exp = await core.prepare(
            settings, dataset=str(ds), suite="full", target=target, experiment_id="x"
        )
        await core.publish_stored(settings, exp, results)
        return exp

    return asyncio.run(go())


def test_a_shard_run_twice_and_an_ingest_done_twice_keep_every_row_once(
    settings: Settings, dataset: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "results"
    results = ResultsLocation(str(directory))
    exp = _prepared(settings, dataset, "tests.fake_targets:instant", results)
    shard = _blocked(settings, tmp_path)

    # a duplicated shard flow run: two attempts that each started before the other wrote
    # anything (the second one writes elsewhere first, then its batches join the first's)
    twin_dir = tmp_path / "twin"
    shutil.copytree(directory, twin_dir)
    twin = ResultsLocation(str(twin_dir))
    first = asyncio.run(core.run_shard(shard, exp, shard=0, shards=2, results=results))
    second = asyncio.run(core.run_shard(shard, exp, shard=0, shards=2, results=twin))
    assert first.rows == second.rows == N // 2  # both ran everything
    shutil.copytree(twin_dir / "x" / "shard-0", directory / "x" / "shard-0", dirs_exist_ok=True)
    # a retry after them finds their batches: nothing left to run
    again = asyncio.run(core.run_shard(shard, exp, shard=0, shards=2, results=results))
    assert again.rows == 0 and again.skipped_existing == N // 2
    asyncio.run(core.run_shard(shard, exp, shard=1, shards=2, results=results))

    kept = tmp_path / "kept"
    shutil.copytree(directory, kept)  # as a crash between the commit and the removal leaves
    report = asyncio.run(core.ingest_results(settings, exp, results))
    assert report.rows["runs"] == 2 * (N // 2) + N // 2  # shard 0 twice, shard 1 once
    assert _count(settings, "runs", "x") == (N, N)
    assert _count(settings, "scores", "x") == (2 * N, 2 * N)
    assert not list(directory.glob("x/shard-*/*"))  # ingested batches are removed

    shutil.rmtree(directory)
    shutil.copytree(kept, directory)
    again_report = asyncio.run(core.ingest_results(settings, exp, results))
    assert again_report.batches == report.batches
    assert _count(settings, "runs", "x") == (N, N)
    assert _count(settings, "scores", "x") == (2 * N, 2 * N)
    summary = asyncio.run(core.finish(settings, exp))
    assert summary.experiment.status == "completed" and summary.rows == N


_SHARD = """
import asyncio, sys
from evalkeeper import run as core
from evalkeeper.models import Experiment
from evalkeeper.settings import Settings
from evalkeeper.warehouse.results import ResultsLocation

exp = Experiment.model_validate_json(open(sys.argv[1]).read())
settings = Settings()
results = ResultsLocation.from_settings(settings)
r = asyncio.run(core.run_shard(settings, exp, shard=0, shards=1, results=results))
print(r.rows, r.skipped_existing, flush=True)
"""


def test_a_shard_killed_midway_and_run_again_completes_the_experiment(
    settings: Settings, tmp_path: Path
) -> None:
    n = 200
    ds = write_dataset(tmp_path / "data" / "d.jsonl", n)
    directory = tmp_path / "results"
    results = ResultsLocation(str(directory))
    exp = _prepared(settings, ds, "tests.fake_targets:slow", results)
    exp_file = tmp_path / "exp.json"
    exp_file.write_text(exp.model_dump_json())
    shard_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EVALKEEPER_WAREHOUSE": str(_blocked(settings, tmp_path).warehouse),
        "EVALKEEPER_RESULTS_URL": str(directory),
        "EVALKEEPER_FLUSH_ROWS": "10",
        "EVALKEEPER_FLUSH_S": "0.1",
        "EVALKEEPER_CONCURRENCY": "4",
        "FAKE_TARGET_SLEEP_S": "0.05",
    }
    cmd = [sys.executable, "-c", _SHARD, str(exp_file)]
    child = subprocess.Popen(cmd, env=shard_env, cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(directory.glob(f"x/shard-0/*/{MANIFEST}"))) < 4:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    committed = list(directory.glob(f"x/shard-0/*/{MANIFEST}"))
    assert 4 <= len(committed) < n // 10
    # what a kill in the middle of a batch leaves: table files without their manifest
    torn = directory / "x" / "shard-0" / f"{time.time_ns():020d}-dead-000001"
    torn.mkdir()
    shutil.copy(committed[0].with_name("runs.parquet"), torn / "runs.parquet")
    before = {
        r["example_id"]: r["started_at"]
        for m in committed
        for r in _parquet_rows(m.with_name("runs.parquet"))
    }

    done = subprocess.run(cmd, env=shard_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows, skipped = map(int, done.stdout.split())
    assert skipped == len(before) and rows == n - len(before)  # nothing redone
    report = asyncio.run(core.ingest_results(settings, exp, results))
    assert report.incomplete == 1  # the torn batch is never read
    summary = asyncio.run(core.finish(settings, exp))
    assert summary.experiment.status == "completed"
    assert _count(settings, "runs", "x") == (n, n)
    assert _count(settings, "scores", "x") == (2 * n, 2 * n)
    stored = dict(
        _rows(settings, "SELECT example_id, started_at FROM runs WHERE experiment_id = ?", "x")
    )
    assert all(stored[k] == v for k, v in before.items())  # the killed attempt's rows kept


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import polars as pl

    return pl.read_parquet(path).to_dicts()


def test_a_results_location_that_cannot_be_used_says_so(settings: Settings) -> None:
    bad = settings.model_copy(
        update={"results": settings.results.model_copy(update={"url": "/tmp/x"})}
    )
    from pydantic import SecretStr

    bad.results.storage_options = SecretStr('["not", "an object"]')
    with pytest.raises(ResultsLocationError, match="not a JSON object") as info:
        ResultsLocation.from_settings(bad)
    assert "an object" not in str(info.value)  # the value may hold keys: never shown
    assert ResultsLocation.from_settings(settings) is None
