"""`evalkeeper report --calibration`: a real judged run and real labels, the report written
by the CLI and opened in headless Chromium; the numbers shown are the recorded ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.report.html.calibration import DISAGREEMENTS_SHOWN
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from tests.calibration.scenario import judge_settings, judged_run, write_labels, write_scenario
from tests.report.browser import open_report

runner = CliRunner()
N = 120


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """factual_match errs on 35% of its calls: it falls below the bar, with more
    disagreements than the report shows. One warehouse for the module's tests."""
    tmp_path = tmp_path_factory.mktemp("calibration-report")
    with ScriptedLLMServer(policy=Policy(error_rates={"factual_match": 0.35})) as server:
        s = judge_settings(tmp_path, server)
        _, replay = write_scenario(tmp_path, N)
        judged_run(s, replay, "exp-q", ["factual_match"])
        imported = runner.invoke(
            app,
            ["calibrate", "import", str(write_labels(tmp_path / "l.csv", "exp-q", "factual_match", N)),
             "--warehouse", str(s.warehouse)],
        )  # fmt: skip
        assert imported.exit_code == 0, imported.stdout + imported.stderr
        yield s


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def recorded(settings: Settings) -> dict[str, Any]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cur = con.execute("SELECT * FROM calibrations")
        names = [d[0] for d in cur.description]
        (row,) = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    row["details"] = json.loads(row["details"])
    return row


def test_the_calibration_report_shows_agreement_kappa_ac1_confusion_and_disagreements(
    labelled: Settings, tmp_path: Path
) -> None:
    wh = str(labelled.warehouse)
    cli("calibrate", "report", "--record", "--warehouse", wh)  # what the flow records
    cal = recorded(labelled)
    out = tmp_path / "calibration.html"
    assert str(out) in cli("report", "--calibration", "--out", str(out), "--warehouse", wh)

    with open_report(out) as opened:
        assert opened.console_errors == [] and opened.page_errors == []
        assert opened.requests_out == []
        assert opened.page.query_selector(f'[data-verdict="{cal["status"]}"]') is not None
        assert cal["status"] in ("retired", "at_risk")
        # one judge version: its point, interval, bar tick, ceiling diamond and baseline square
        assert opened.marks("agreement") == 5
        (row,) = opened.table("judges")
        assert row[0] == "factual_match" and row[2] == cal["quarter"]
        assert row[3].startswith(str(cal["n_items"]))
        ci = f"[{cal['agreement_ci_low']:.2f}–{cal['agreement_ci_high']:.2f}]"
        assert row[4] == f"{cal['agreement']:.2f} {ci}"
        kci = f"[{cal['kappa_ci_low']:.2f}–{cal['kappa_ci_high']:.2f}]"
        assert row[6] == f"{cal['kappa']:.2f} {kci}"  # after the baseline (row[5])
        assert row[7] == f"{cal['ac1']:.2f} ± {1.96 * cal['ac1_se']:.2f}"
        assert row[10] == f"{cal['bar']:.2f}" and row[11] == cal["status"]
        assert f"{cal['ceiling_agreement']:.2f}" in row[9]

        labels, confusion = cal["details"]["labels"], cal["details"]["confusion"]
        shown = {(r[2], r[3]): int(r[4]) for r in opened.table("confusion")}
        assert shown == {
            (j, h): confusion[a][b] for a, j in enumerate(labels) for b, h in enumerate(labels)
        }
        assert sum(shown.values()) == cal["n_items"]
        cells = len(labels) ** 2  # a rect and its count per cell
        assert opened.marks("confusion") == 2 * cells

        disagreements = cal["details"]["disagreements"]
        assert len(disagreements) > DISAGREEMENTS_SHOWN
        rows = opened.table("disagreements")
        assert len(rows) == DISAGREEMENTS_SHOWN
        first = disagreements[0]
        assert rows[0][1] == first["item_id"] and rows[0][4] == first["judge_verdict"]
        assert rows[0][5] == first["human_label"] != first["judge_verdict"]
        more = len(disagreements) - DISAGREEMENTS_SHOWN
        assert f"factual_match ({cal['prompt_version'][:12]}): {more} more" in opened.text()
    assert opened.screenshot is not None and opened.screenshot.stat().st_size > 10_000


def test_a_bad_quarter_is_one_line_and_exit_2(labelled: Settings) -> None:
    result = runner.invoke(
        app,
        ["report", "--calibration", "--quarter", "2026Q9", "--warehouse", str(labelled.warehouse)],
    )
    assert result.exit_code == 2
    said = (result.stdout + result.stderr).strip()
    assert "--quarter" in said and "2026Q4" in said and len(said.splitlines()) == 1


def test_a_quarter_without_labels_says_how_to_get_some(labelled: Settings, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    cli("report", "--calibration", "--quarter", "2020Q1", "--out", str(out),
        "--warehouse", str(labelled.warehouse))  # fmt: skip
    with open_report(out) as opened:
        assert "No labelled items in 2020Q1" in opened.text()
        assert opened.console_errors == []
