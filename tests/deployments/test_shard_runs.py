"""Shards as flow runs on a real `prefect server start` with two process workers.

The nightly flow runs in its own process (as a CI job or a deployment would) with
EVALKEEPER_SHARD_DEPLOYMENT set: each shard is a child flow run of the `suite-shard`
deployment, picked up by one of the pool's two workers (each takes two runs at a time),
and writes its rows to a results directory; the parent ingests them. One worker is killed
with SIGKILL (its process group: the worker and the shard run it started) in the middle
of a shard; the parent counts that run lost after EVALKEEPER_SHARD_TIMEOUT_S, marks it
crashed and submits it again, and the experiment completes with every row once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkeeper.warehouse.results import MANIFEST
from tests.helpers import write_dataset
from tests.prefect_server import POOL, Server, cli, prefect_server, start, stop, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHARDS = 4
PER_SHARD = 60
SUBMITTED = re.compile(r"submitting flow run '([0-9a-f-]{36})'")

PARENT = """
import asyncio, json, sys
from flows.nightly import nightly
result = asyncio.run(nightly(suite="full", dataset=sys.argv[1], target="fake_targets:slow",
                             experiment="spread", warehouse=sys.argv[2], shards=int(sys.argv[3])))
print("RESULT " + json.dumps({"rows": result["rows"],
                              "status": result["experiment"]["status"]}), flush=True)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {"EVALKEEPER_GIT_BRANCH": "main", "EVALKEEPER_GIT_COMMIT": "0123456789abcdef"}
    with prefect_server(tmp_path / "prefect", env=env) as srv:
        yield srv


def _submitted(log: Path) -> set[str]:
    return set(SUBMITTED.findall(log.read_text(errors="replace"))) if log.exists() else set()


def test_shards_run_as_child_flow_runs_on_both_workers_and_survive_a_killed_worker(
    server: Server, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", SHARDS * PER_SHARD)
    warehouse = tmp_path / "warehouse.duckdb"
    results = tmp_path / "results"
    shard_env = {  # the shards: 60 rows of 0.2 s, two at a time: ~6 s each
        "FAKE_TARGET_SLEEP_S": "0.2",
        "EVALKEEPER_CONCURRENCY": "2",
        "EVALKEEPER_FLUSH_ROWS": "4",
        "EVALKEEPER_FLUSH_S": "0.2",
    }
    cli(server, "prefect deploy", ["-m", "prefect", "deploy", "-n", "suite-shard"])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        logs = {}
        for name in ("w1", "w2"):
            args = ["-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"]
            args += ["--limit", "2", "--name", name]
            logs[name] = start(server, procs, tmp_path / f"{name}.log", name, args, shard_env)
        parent_log = start(
            server,
            procs,
            tmp_path / "parent.log",
            "parent",
            ["-c", PARENT, str(ds), str(warehouse), str(SHARDS)],
            {
                "EVALKEEPER_RESULTS_URL": str(results),
                "EVALKEEPER_SHARD_DEPLOYMENT": "suite-shard/suite-shard",
                "EVALKEEPER_SHARD_TIMEOUT_S": "120",
            },
        )
        parent = procs[-1]

        def w1_mid_shard() -> str | None:
            """A shard run of w1 that is running and has committed a batch."""
            with server.client() as client:
                for run_id in _submitted(logs["w1"]):
                    fr = client.read_flow_run(run_id)
                    shard = fr.parameters.get("shard")
                    if (
                        fr.state is not None
                        and fr.state.is_running()
                        and list(results.glob(f"spread/shard-{shard}/*/{MANIFEST}"))
                    ):
                        return run_id
            return None

        killed = wait(server, "a running shard run on w1", w1_mid_shard, 300)
        w1 = procs[0]
        os.killpg(w1.pid, signal.SIGKILL)  # the worker and the shard run it started
        w1.wait(timeout=30)

        def parent_done() -> int | None:
            return parent.poll()

        code = wait(server, "the parent flow", parent_done, 600)
        out = parent_log.read_text(errors="replace")
        assert code == 0, server.report()
        result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
        assert result == {"rows": SHARDS * PER_SHARD, "status": "completed"}
    finally:
        for proc in procs:
            stop(proc)

    with server.client() as client:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        shard_runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["suite-shard"]))
        )
        parents = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["nightly"]))
        )
        assert len(parents) == 1
        parent_id = parents[0].id
        for fr in shard_runs:  # every shard run is a child of the nightly run
            assert fr.parent_task_run_id is not None
            assert client.read_task_run(fr.parent_task_run_id).flow_run_id == parent_id
        by_shard: dict[int, list[Any]] = {}
        for fr in shard_runs:
            by_shard.setdefault(int(fr.parameters["shard"]), []).append(fr)
    assert sorted(by_shard) == list(range(SHARDS))
    assert all(any(fr.state.is_completed() for fr in runs) for runs in by_shard.values())
    killed_run = next(fr for runs in by_shard.values() for fr in runs if str(fr.id) == killed)
    assert killed_run.state.is_crashed()  # counted lost by the parent, then resubmitted
    assert len(by_shard[int(killed_run.parameters["shard"])]) == 2
    ids = {str(fr.id) for fr in shard_runs}
    assert _submitted(logs["w1"]) & ids and _submitted(logs["w2"]) & ids  # both workers ran shards

    with duckdb.connect(str(warehouse), read_only=True) as con:
        n = SHARDS * PER_SHARD
        assert con.execute(
            "SELECT count(*), count(DISTINCT example_id) FROM runs WHERE experiment_id='spread'"
        ).fetchone() == (n, n)
        assert con.execute(
            "SELECT count(*), count(DISTINCT (example_id, evaluator)) FROM scores "
            "WHERE experiment_id='spread'"
        ).fetchone() == (2 * n, 2 * n)
        assert con.execute(
            "SELECT status FROM experiments WHERE experiment_id='spread'"
        ).fetchone() == ("completed",)
