"""The nightly flow run for real under Prefect's test harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evalkeeper.settings import Settings
from tests.helpers import run_flow, write_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run_flow_result(flow: Any, **params: Any) -> Any:
    """The flow's result, also when its run ended Inconclusive or Regression
    (`VerdictInconclusive`, `VerdictRegression`: both `VerdictNotPass`)."""
    from flows.nightly import VerdictNotPass

    try:
        return run_flow(flow, **params)
    except VerdictNotPass as exc:
        return exc.result


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


def test_nightly_flow_shards_through_a_results_location(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EVALKEEPER_RESULTS_URL the shards write Parquet batches there and the flow
    ingests them: the same rows as the shards writing to the warehouse, each once."""
    from flows.nightly import nightly

    results = tmp_path / "results"
    monkeypatch.setenv("EVALKEEPER_RESULTS_URL", str(results))
    ds = write_dataset(tmp_path / "d.jsonl", 410)
    params = {
        "suite": "full",
        "dataset": str(ds),
        "target": "tests.fake_targets:instant",
        "experiment": "via-results",
        "warehouse": str(settings.warehouse),
        "shards": 3,  # the flow's parameter (EVALKEEPER_SHARDS by default)
    }
    result = run_flow(nightly, **params)
    assert result["rows"] == 410 and result["experiment"]["status"] == "completed"
    assert sorted(p.name for p in (results / "via-results").iterdir()) == [
        "_stored",  # what the shards were told is stored; their batches were ingested
        *[f"shard-{k}" for k in range(3)],
    ]
    assert not list(results.glob("via-results/shard-*/*"))
    again = run_flow(nightly, **params)
    assert again["rows"] == 410
    con = duckdb.connect(str(settings.warehouse))
    assert con.execute("SELECT count(*), count(DISTINCT example_id) FROM runs").fetchone() == (
        410,
        410,
    )
    assert con.execute("SELECT count(*) FROM scores").fetchone() == (820,)


def test_shard_flow_runs_without_a_results_location_are_refused_before_anything_runs(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.nightly import nightly
    from flows.shard import ShardRunsNeedResults

    monkeypatch.setenv("EVALKEEPER_SHARD_DEPLOYMENT", "suite-shard/suite-shard")
    monkeypatch.delenv("EVALKEEPER_RESULTS_URL", raising=False)
    ds = write_dataset(tmp_path / "d.jsonl", 10)
    with pytest.raises(ShardRunsNeedResults, match="EVALKEEPER_RESULTS_URL"):
        run_flow(
            nightly,
            dataset=str(ds),
            target="tests.fake_targets:instant",
            warehouse=str(settings.warehouse),
        )
    assert not settings.warehouse.exists()  # refused before the experiment was recorded


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
    second = run_flow_result(
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

    result = run_flow_result(
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
    result = run_flow_result(gate, target="evalkeeper.demo.agent:v1", suite="smoke", warehouse=wh)
    assert result["verdict"] == "inconclusive" and result["exit_code"] == 2
    assert "--allow-skipped factual_match" in result["markdown"]


def test_an_inconclusive_nightly_run_is_not_green_and_emits_an_event(settings: Settings) -> None:
    """Seen: a nightly run whose verdict is inconclusive ended plain Completed (green in the
    Prefect UI), and nothing alerted."""
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.nightly import VerdictInconclusive, nightly
    from tasks.events import INCONCLUSIVE_EVENT

    wh = str(settings.warehouse)
    judges = ["factual_match", "tone_appropriate", "no_hallucination"]  # no endpoint here
    run = {"suite": "smoke", "dataset": "appointments", "target": "evalkeeper.demo.agent:v1"}
    first = run_flow(nightly, **run, warehouse=wh, allow_skipped=judges)
    assert "comparison" not in first  # the baseline
    # the judges skipped and not allowed: the verdict is inconclusive
    state = asyncio.run(nightly(**run, warehouse=wh, return_state=True))  # type: ignore[call-overload]
    assert state.is_failed() and state.name == "Inconclusive", state
    assert "skipped" in (state.message or "")
    with pytest.raises(VerdictInconclusive) as raised:
        state.result()
    result = raised.value.result
    assert result["verdict"] == "inconclusive"
    assert result["comparison"]["baseline_id"] == first["experiment"]["experiment_id"]
    experiment_id = result["experiment"]["experiment_id"]

    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(state.state_details.flow_run_id)
        assert stored.state is not None
        assert (stored.state.type.value, stored.state.name) == ("FAILED", "Inconclusive")
        events: list[object] = []
        for _ in range(50):  # the events worker sends in the background
            events = list(
                client.read_events(
                    filter=EventFilter(event=EventNameFilter(name=[INCONCLUSIVE_EVENT])), limit=50
                ).events
            )
            if any(e.resource.id == f"evalkeeper.experiment.{experiment_id}" for e in events):  # type: ignore[attr-defined]
                break  # earlier tests' runs emit inconclusive events too: wait for this one
            time.sleep(0.2)
    assert events, f"no {INCONCLUSIVE_EVENT} event"
    (event,) = [e for e in events if e.resource.id == f"evalkeeper.experiment.{experiment_id}"]  # type: ignore[attr-defined]
    assert event.payload["baseline_id"] == first["experiment"]["experiment_id"]  # type: ignore[attr-defined]
    assert any("skipped" in r for r in event.payload["reasons"])  # type: ignore[attr-defined]


def verdict_events(experiment_ids: set[str], until: str) -> dict[str, list[Any]]:
    """experiment id -> the verdict events about it, once the one about `until` arrived
    (the events worker sends in order, so the earlier runs' have arrived by then)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from tasks.events import VERDICT_EVENTS

    found: dict[str, list[Any]] = {}
    wanted = EventFilter(
        event=EventNameFilter(name=list(VERDICT_EVENTS.values())),
        resource=EventResourceFilter(id=[f"evalkeeper.experiment.{e}" for e in experiment_ids]),
    )
    with get_client(sync_client=True) as client:
        for _ in range(100):
            events = client.read_events(filter=wanted, limit=50).events
            found = {
                eid: [e for e in events if e.resource.id == f"evalkeeper.experiment.{eid}"]
                for eid in experiment_ids
            }
            if found[until]:
                break
            time.sleep(0.2)
    return found


@pytest.mark.parametrize("flow_name", ["nightly", "gate"])
def test_a_verdict_that_is_not_pass_ends_the_run_in_a_state_named_after_it(
    settings: Settings, flow_name: str
) -> None:
    """Seen: a nightly run whose verdict was inconclusive ended plain Completed (green), and
    so did a regression; the gate flow too. Pass ends Completed; regression and inconclusive
    end in Failed-type states named Regression and Inconclusive, each with its event."""
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.gate import gate
    from flows.nightly import VerdictInconclusive, VerdictRegression, nightly
    from tasks.events import INCONCLUSIVE_EVENT, REGRESSION_EVENT

    wh = str(settings.warehouse)
    # deterministic evaluators only, so that the same agent twice is a pass on any machine
    evaluators = ["tool_call_correct", "contains"]
    common = {"suite": "smoke", "dataset": "appointments", "warehouse": wh}
    first = run_flow(nightly, **common, target="evalkeeper.demo.agent:v1", evaluators=evaluators)
    assert "comparison" not in first  # the baseline
    flow: Any = nightly if flow_name == "nightly" else gate
    extra = {"baseline": "auto"} if flow_name == "nightly" else {"baseline": "main"}

    def run(target: str, evs: list[str]) -> Any:
        return asyncio.run(
            flow(**common, **extra, target=target, evaluators=evs, return_state=True)
        )

    passed = run("evalkeeper.demo.agent:v1", evaluators)
    regressed = run("evalkeeper.demo.agent:v2", evaluators)
    # a judge with no endpoint, not allowed to be skipped: inconclusive
    unsure = run("evalkeeper.demo.agent:v1", [*evaluators, "factual_match"])

    assert (passed.type.value, passed.name) == ("COMPLETED", "Completed"), passed
    result = passed.result()
    verdict = result["verdict"] if flow_name == "gate" else result["comparison"]["verdict"]
    assert verdict == "pass"
    assert (regressed.type.value, regressed.name) == ("FAILED", "Regression"), regressed
    assert "INC-2041" in (regressed.message or "")
    with pytest.raises(VerdictRegression) as raised:
        regressed.result()
    assert raised.value.result["verdict"] == "regression"
    assert (unsure.type.value, unsure.name) == ("FAILED", "Inconclusive"), unsure
    with pytest.raises(VerdictInconclusive) as inconclusive:
        unsure.result()
    assert inconclusive.value.result["verdict"] == "inconclusive"
    assert "factual_match" in (unsure.message or "")

    with get_client(sync_client=True) as client:
        stored = {
            name: client.read_flow_run(state.state_details.flow_run_id).state
            for name, state in (("pass", passed), ("regression", regressed), ("inc", unsure))
        }
    assert {k: (s.type.value, s.name) for k, s in stored.items() if s} == {
        "pass": ("COMPLETED", "Completed"),
        "regression": ("FAILED", "Regression"),
        "inc": ("FAILED", "Inconclusive"),
    }

    def experiment_of(result: dict[str, Any]) -> str:
        return str(
            result["comparison"]["experiment_id"]
            if flow_name == "gate"
            else result["experiment"]["experiment_id"]
        )

    ids = {
        "pass": experiment_of(result),
        "regression": experiment_of(raised.value.result),
        "inconclusive": experiment_of(inconclusive.value.result),
    }
    events = verdict_events(set(ids.values()), until=ids["inconclusive"])
    assert events[ids["pass"]] == []
    (reg,) = events[ids["regression"]]
    (inc,) = events[ids["inconclusive"]]
    assert (reg.event, inc.event) == (REGRESSION_EVENT, INCONCLUSIVE_EVENT)
    for event, verdict in ((reg, "regression"), (inc, "inconclusive")):
        assert event.payload["flow"] == flow_name and event.payload["verdict"] == verdict
        # the pass is the latest healthy run on main (the regression cannot be a baseline)
        assert event.payload["baseline_id"] == ids["pass"]
        assert event.payload["suite"] == "smoke" and event.payload["reasons"]
