"""The nightly flow publishes the judge-corrected pass rates: in the markdown verdict
artifact (with the note) and as a table artifact, equal to the comparison's. A judge
answered over HTTP by the scripted server on 127.0.0.1, its calibration recorded through
the CLI between two nightly runs, under Prefect's test harness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tests.calibration.scenario import PINNED, write_labels, write_scenario
from tests.flows.test_flows import run_flow_result
from tests.flows.test_report_flows import latest_artifact

pytestmark = pytest.mark.usefixtures("prefect_harness")
N = 120


def test_nightly_publishes_corrected_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.nightly import nightly

    with ScriptedLLMServer(policy=Policy(error_rates={"factual_match": 0.08})) as server:
        for name, value in {
            "EVALKEEPER_JUDGE_BASE_URL": server.base_url,
            "EVALKEEPER_JUDGE_MODEL": PINNED,
            "EVALKEEPER_JUDGE_API_KEY": "test-key",
            "EVALKEEPER_JUDGE_VOTES": "1",
            "EVALKEEPER_JUDGE_RPM": "60000",
            "EVALKEEPER_GIT_BRANCH": "main",
            "EVALKEEPER_GIT_COMMIT": "abc",
        }.items():
            monkeypatch.setenv(name, value)
        _, replay = write_scenario(tmp_path, N)
        wh = str(tmp_path / "w.duckdb")
        run = {
            "suite": "full",
            "dataset": "cal",
            "datasets_dir": str(tmp_path / "datasets"),
            "target": f"replay:{replay}",
            "evaluators": ["latency_ok", "factual_match"],
            "warehouse": wh,
        }
        run_flow_result(nightly, **run, experiment="night-1")
        runner = CliRunner()
        labels = write_labels(tmp_path / "l.csv", "night-1", "factual_match", N)
        for args in (["calibrate", "import", str(labels)], ["calibrate", "report", "--record"]):
            out = runner.invoke(app, [*args, "--warehouse", wh])
            assert out.exit_code == 0, out.output
        result = run_flow_result(nightly, **run, experiment="night-2")

    rates = result["comparison"]["corrected_rates"]
    assert rates and all(r["status"] == "corrected" for r in rates)
    verdict = str(latest_artifact("cal-full-verdict").data)
    assert "### Judge-corrected pass rates" in verdict
    assert "a paired difference between two runs scored by the same judge version" in verdict
    overall = next(r for r in rates if r["category"] == "__all__" and r["side"] == "candidate")
    shown = f"{overall['corrected']:.1%} ({overall['ci_low']:.1%}, {overall['ci_high']:.1%})"
    assert f"| `factual_match` | all | candidate | {N} |" in verdict and shown in verdict
    table = latest_artifact("cal-full-corrected")
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == len(rates)
    for row, rate in zip(rows, rates, strict=True):
        assert (row["evaluator"], row["category"], row["side"]) == (
            rate["evaluator"],
            rate["category"],
            rate["side"],
        )
        assert math.isclose(row["corrected"], rate["corrected"])
        assert math.isclose(row["ci_low"], rate["ci_low"])
