"""The judge-calibration flow under Prefect's test harness, and its deployment."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deployments.schedules import CALIBRATION, TIMEZONE
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tests.calibration.scenario import judge_settings, judged_run, write_labels, write_scenario
from tests.helpers import run_flow
from tests.report.artifacts import linked_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def labelled(tmp_path: Path) -> Iterator[Settings]:
    with ScriptedLLMServer(policy=Policy(error_rates={"factual_match": 0.05})) as server:
        s = judge_settings(tmp_path, server)
        _, replay = write_scenario(tmp_path, 90)
        judged_run(s, replay, "exp-q", ["factual_match"])
        from evalkeeper.calibration import import_labels
        from evalkeeper.warehouse import Warehouse

        import_labels(
            Warehouse.from_settings(s),
            write_labels(tmp_path / "l.csv", "exp-q", "factual_match", 90),
        )
        yield s


@pytest.mark.usefixtures("prefect_harness")
def test_flow_samples_measures_decides_and_publishes(labelled: Settings, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.calibrate import judge_calibration

    result = run_flow(
        judge_calibration,
        since="2020-01-01T00:00:00Z",
        n=30,
        out_dir=str(tmp_path / "annotations"),
        warehouse=str(labelled.warehouse),
    )
    (sample,) = result["samples"]
    assert sample["judge"] == "factual_match" and sample["n_items"] == 30
    assert all(Path(f).exists() for f in sample["files"])
    (judge,) = result["judges"]
    assert judge["status"] == "healthy" and judge["n_items"] == 90
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["judge-calibration"]))
        )
    assert arts and "| factual_match |" in str(arts[0].data)
    assert "healthy" in str(arts[0].data)
    # the HTML report beside the warehouse, linked next to the markdown table
    report = labelled.warehouse.parent / "reports" / "calibration-latest.html"
    assert result["reports"] == {"calibration-latest": str(report)}
    assert result["report_failures"] == 0
    assert linked_file("judge-calibration-report") == report.resolve()
    assert 'data-verdict="healthy"' in report.read_text()


def test_prefect_yaml_declares_the_quarterly_deployment() -> None:
    from prefect import Flow

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    for name, declared in CALIBRATION.items():
        d = deployments[name]
        assert d["schedules"] == [{"cron": declared["cron"], "timezone": TIMEZONE}]
        path, _, attr = d["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attr)
        assert isinstance(flow, Flow) and flow.name == "judge-calibration"
    # the first day of each quarter
    assert CALIBRATION["judge-calibration"]["cron"].split()[2:4] == ["1", "1,4,7,10"]
