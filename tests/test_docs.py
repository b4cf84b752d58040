"""The analyst documentation's example queries run against a real warehouse holding v1
and v2 of the demo agent and their comparison."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper import analysis as cmp
from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, save_comparison
from tests.helpers import run_suite

DOC = Path(__file__).resolve().parents[1] / "docs" / "warehouse.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from tests.conftest import ROOT

    s = Settings(
        warehouse=tmp_path_factory.mktemp("docs") / "w.duckdb",
        datasets_dir=ROOT / "data" / "datasets",
        git_commit="abc",
        git_branch="main",
        concurrency=32,
    )
    ids = []
    for version in ("v1", "v2"):
        summary = run_suite(
            s,
            dataset="appointments",
            suite="full",
            target=f"evalkeeper.demo.agent:{version}",
            experiment_id=f"docs-{version}",
        )
        ids.append(summary.experiment.experiment_id)
    wh = Warehouse.from_settings(s)
    save_comparison(wh, cmp.compare(wh, ids[1], ids[0], s))
    return s


def test_there_are_five_queries() -> None:
    assert len(QUERIES) == 5


@pytest.mark.parametrize("n", range(5))
def test_documented_query_runs_and_returns_rows(demo_warehouse: Settings, n: int) -> None:
    frame = Warehouse.from_settings(demo_warehouse).query(QUERIES[n])
    assert frame.height > 0, QUERIES[n]


def test_incident_query_names_the_cancellation_incidents(demo_warehouse: Settings) -> None:
    frame = Warehouse.from_settings(demo_warehouse).query(QUERIES[2])
    incidents = set(frame["incident_id"].to_list())
    assert {"INC-2041", "INC-2103"} <= incidents


def test_sql_command_formats(demo_warehouse: Settings) -> None:
    runner = CliRunner()
    wh = str(demo_warehouse.warehouse)
    q = "SELECT experiment_id, n_examples FROM experiments ORDER BY 1"
    out = runner.invoke(app, ["sql", q, "--format", "csv", "--warehouse", wh])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["experiment_id,n_examples", "docs-v1,100", "docs-v2,100"]
    out = runner.invoke(app, ["sql", q, "--format", "json", "--warehouse", wh])
    assert '"experiment_id": "docs-v2"' in out.stdout
    out = runner.invoke(app, ["sql", "SELEC nonsense", "--warehouse", wh])
    assert out.exit_code == 2 and "query failed" in out.output
    out = runner.invoke(app, ["experiments", "--warehouse", wh])
    assert out.exit_code == 0 and "docs-v2" in out.stdout
