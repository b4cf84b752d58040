"""Shards as flow runs on a real `prefect server start` with two process workers.

The nightly flow runs in its own process (as a CI job or a deployment would) with
EVALKEEPER_SHARD_DEPLOYMENT set: each shard is a child flow run of the `suite-shard`
deployment, picked up by one of the pool's two workers (each takes two runs at a time),
and writes its rows to a results directory; the parent ingests them. One worker is killed
with SIGKILL (its process group: the worker and the shard run it started) in the middle
of a shard; the parent counts that run lost after EVALKEEPER_SHARD_TIMEOUT_S, marks it
crashed and submits it again, and the experiment completes with every row once."""

from __future__ import annotations

import contextlib
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
ABORTED = re.compile(r"Aborted submission of flow run '([0-9a-f-]{36})'")

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
    """The flow runs a worker started: those it submitted, less those whose submission the
    server aborted (two workers polling the pool may both try one run; one gets it)."""
    if not log.exists():
        return set()
    text = log.read_text(errors="replace")
    return set(SUBMITTED.findall(text)) - set(ABORTED.findall(text))


def _descendants(pid: int) -> list[int]:
    """The processes under `pid` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_shards_run_as_child_flow_runs_on_both_workers_and_survive_a_killed_worker(
    server: Server, tmp_path: Path
) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", SHARDS * PER_SHARD)
    warehouse = tmp_path / "warehouse.duckdb"
    results = tmp_path / "results"
    shard_env = {  # the shards: 60 rows of 0.2 s, 8 at a time (the experiment's concurrency)
        "FAKE_TARGET_SLEEP_S": "0.2",
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

        def w1_mid_shard() -> set[str] | None:
            """w1's shard runs that are running, once one of them has committed a batch."""
            running, writing = set(), False
            with server.client() as client:
                for run_id in _submitted(logs["w1"]):
                    fr = client.read_flow_run(run_id)
                    if fr.state is not None and fr.state.is_running():
                        running.add(run_id)
                        shard = fr.parameters.get("shard")
                        writing |= bool(list(results.glob(f"spread/shard-{shard}/*/{MANIFEST}")))
            return running if writing else None

        victims = wait(server, "a running shard run on w1", w1_mid_shard, 300)
        w1 = procs[0]
        for pid in [w1.pid, *_descendants(w1.pid)]:  # the worker and the shard runs it started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
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
    states = {str(fr.id): fr.state for runs in by_shard.values() for fr in runs}
    lost = [
        fr
        for runs in by_shard.values()
        for fr in runs
        if str(fr.id) in victims and fr.state.is_crashed()
    ]
    assert lost, {v: states.get(v) for v in victims}
    for fr in lost:  # each killed shard run was submitted again, and that run completed
        again = by_shard[int(fr.parameters["shard"])]
        assert len(again) >= 2 and any(r.state.is_completed() for r in again)
    for fr in (fr for runs in by_shard.values() for fr in runs if fr.state.is_completed()):
        # what a shard flow run costs, for docs/scale.md (printed, never asserted)
        print(
            f"shard-run {fr.name}: started {(fr.start_time - fr.created).total_seconds():.1f} s "
            f"after its creation, ran {fr.total_run_time.total_seconds():.1f} s"
        )
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
