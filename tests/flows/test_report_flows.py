"""The nightly and gate flows write the experiment's HTML report beside the warehouse and
link it from the run, under Prefect's test harness."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from evalkeeper.report.html import default_report_path
from evalkeeper.settings import Settings
from tests.flows.test_flows import run_flow_result
from tests.helpers import write_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")


def latest_artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert found, f"no artifact {key!r}"
    return found[0]


def linked_file(artifact: Any) -> Path:
    """The file a link artifact points at (its data is the markdown `[text](file://…)`)."""
    assert artifact.type == "markdown"  # Prefect stores a link as markdown
    data = str(artifact.data)
    match = re.search(r"\((file://[^)]+)\)", data)
    assert match, data
    return Path(unquote(urlparse(match.group(1)).path))


def test_nightly_links_the_report_of_each_run(settings: Settings, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from tasks.suite import artifact_key

    ds = write_dataset(tmp_path / "reported.jsonl", 24, critical_every=5)
    run = {"suite": "full", "dataset": str(ds), "target": "tests.fake_targets:instant"}
    wh = str(settings.warehouse)
    key = artifact_key("reported-full-report")

    first = run_flow_result(nightly, **run, experiment="rep-1", warehouse=wh)
    assert "verdict" not in first  # nothing to compare with: not judged
    path = default_report_path(settings, "experiment", "rep-1").resolve()
    assert first["report"] == {"path": str(path), "error": None}
    assert linked_file(latest_artifact(key)) == path
    text = path.read_text()
    assert "not judged: no baseline for rep-1" in text and "data-verdict" not in text

    second = run_flow_result(nightly, **run, experiment="rep-2", warehouse=wh)
    assert second["verdict"] == "pass" and second["comparison"]["baseline_id"] == "rep-1"
    path = default_report_path(settings, "experiment", "rep-2").resolve()
    assert linked_file(latest_artifact(key)) == path and path.exists()
    text = path.read_text()
    assert 'data-verdict="pass"' in text and 'data-chart="forest"' in text
    assert f"HTML report: `{path}`" in str(latest_artifact("reported-full-verdict").data)


def test_a_report_that_cannot_be_written_keeps_the_verdict_and_says_so(
    settings: Settings, tmp_path: Path
) -> None:
    from flows.gate import gate

    home = tmp_path / "blocked"
    home.mkdir()
    (home / "reports").write_text("a file where the reports folder would go")
    ds = write_dataset(tmp_path / "blocked-ds.jsonl", 12)
    result = run_flow_result(
        gate, target="tests.fake_targets:instant", dataset=str(ds), suite="full",
        warehouse=str(home / "warehouse.duckdb"),
    )  # fmt: skip
    assert result["verdict"] == "inconclusive" and result["exit_code"] == 2  # no baseline
    assert result["report"]["path"] is None
    assert "was not written" in result["report"]["error"]
    assert "**Warning:** the HTML report" in result["markdown"]
    verdict = str(latest_artifact("blocked-ds-full-verdict").data)
    assert "INCONCLUSIVE" in verdict and "**Warning:** the HTML report" in verdict
