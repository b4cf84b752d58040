"""The nightly flow run for real under Prefect's test harness."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from evalkeeper.settings import Settings
from tests.helpers import run_flow, write_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_nightly_flow_records_experiment_and_publishes_summary(
    settings: Settings, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.nightly import nightly

    ds = write_dataset(tmp_path / "tiny.jsonl", 30)
    result = run_flow(
        nightly,
        suite="smoke",
        dataset=str(ds),
        target="tests.fake_targets:instant",
        experiment="flow-test",
        warehouse=str(settings.warehouse),
    )
    assert result["experiment"]["experiment_id"] == "flow-test"
    assert result["experiment"]["status"] == "completed"
    con = duckdb.connect(str(settings.warehouse))
    n = con.execute("SELECT n_examples FROM experiments WHERE experiment_id='flow-test'").fetchone()
    assert n is not None and 8 <= n[0] < 30  # smoke: a stratified subset
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (n[0],)

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tiny-smoke-summary"]))
        )
    assert arts, "no summary artifact published"
    data = arts[0].data
    data = json.loads(data) if isinstance(data, str) else data
    rows = {r["evaluator"]: r for r in data}
    assert rows["exact_match"]["passed"] == n[0]


def test_nightly_flow_shards_large_suites_and_resumes(settings: Settings, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from tasks.suite import shard_count

    assert shard_count(1) == 1 and shard_count(4001) == 3 and shard_count(10**6) == 8
    ds = write_dataset(tmp_path / "big.jsonl", 4500)
    result = run_flow(
        nightly,
        suite="full",
        dataset=str(ds),
        target="tests.fake_targets:instant",
        experiment="sharded",
        warehouse=str(settings.warehouse),
    )
    assert result["rows"] == 4500
    # running the same experiment again does nothing new, duplicates nothing
    again = run_flow(
        nightly,
        suite="full",
        dataset=str(ds),
        target="tests.fake_targets:instant",
        experiment="sharded",
        warehouse=str(settings.warehouse),
    )
    assert again["rows"] == 4500
    con = duckdb.connect(str(settings.warehouse))
    assert con.execute("SELECT count(*), count(DISTINCT example_id) FROM runs").fetchone() == (
        4500,
        4500,
    )


def test_nightly_verdict_and_gate_flow(settings: Settings, tmp_path: Path) -> None:
    """The second nightly run is judged against the first; the gate flow catches v2."""
    from flows.gate import gate
    from flows.nightly import nightly

    wh = str(settings.warehouse)
    judges = ["factual_match", "tone_appropriate", "no_hallucination"]  # no endpoint here
    first = run_flow(
        nightly,
        suite="smoke",
        dataset="appointments",
        target="evalkeeper.demo.agent:v1",
        warehouse=wh,
        allow_skipped=judges,
    )
    assert "comparison" not in first  # nothing to compare with yet: it becomes the baseline
    second = run_flow(
        nightly,
        suite="smoke",
        dataset="appointments",
        target="evalkeeper.demo.agent:v1",
        warehouse=wh,
        allow_skipped=judges,
    )
    assert "comparison" in second, second.get("reasons")
    assert second["comparison"]["verdict"] in ("pass", "inconclusive")
    assert second["comparison"]["baseline_id"] == first["experiment"]["experiment_id"]
    con = duckdb.connect(wh)
    stored = con.execute(
        "SELECT verdict FROM comparisons WHERE kind = 'verdict' AND experiment_id = ?",
        [second["experiment"]["experiment_id"]],
    ).fetchall()
    con.close()
    assert stored == [(second["comparison"]["verdict"],)]

    result = run_flow(
        gate,
        target="evalkeeper.demo.agent:v2",
        suite="smoke",
        baseline="main",
        warehouse=wh,
        allow_skipped=judges,
    )
    assert result["verdict"] == "regression" and result["exit_code"] == 1
    assert "INC-2041" in result["markdown"]
    # the same gate with its judges off and not allowed: never a pass
    result = run_flow(gate, target="evalkeeper.demo.agent:v1", suite="smoke", warehouse=wh)
    assert result["verdict"] == "inconclusive" and result["exit_code"] == 2
    assert "--allow-skipped factual_match" in result["markdown"]
