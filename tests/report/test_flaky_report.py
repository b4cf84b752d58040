"""The experiment report's flaky rows and the guard column, opened in headless Chromium: the
numbers shown are the `row_stability` view's."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkeeper.analysis import compare
from evalkeeper.report.html.experiment import build_experiment_report
from evalkeeper.report.html.flaky import FLAKY_SHOWN
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.analysis.test_stability import candidate, guarded_history, simulate
from tests.report.browser import open_report


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", lock_wait_s=2.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(warehouse=tmp_path / "w.duckdb", _env_file=None)  # type: ignore[call-arg]


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_the_flaky_section_shows_the_views_rows(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    simulate(wh)
    c = compare(wh, "run-11", "run-10", settings)
    path = build_experiment_report(wh, "run-11", settings=settings, comparison=c).write(
        tmp_path / "run-11.html"
    )
    view = wh.query(
        "SELECT * FROM row_stability WHERE stability = 'flaky' "
        "ORDER BY pass_rate, example_id, evaluator"
    )
    assert view.height > FLAKY_SHOWN  # the cap is reached: the rest is counted
    expected = [
        [
            r["example_id"],
            r["evaluator"],
            "—",
            "agent:v · this run",
            str(r["runs"]),
            str(r["observations"]),
            str(r["passes"]),
            str(r["fails"]),
            pct(r["pass_rate"]),
            f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
        ]
        for r in view.head(FLAKY_SHOWN).iter_rows(named=True)
    ]
    with open_report(path) as o:
        shown = o.table("flaky")
        assert shown == expected
        for row, r in zip(shown, view.iter_rows(named=True), strict=False):  # the numbers
            assert float(row[8].removesuffix("%")) == pytest.approx(100 * r["pass_rate"], abs=0.05)
            lo, hi = (float(x.strip(" %")) for x in row[9].strip("[]").split(","))
            assert (lo, hi) == pytest.approx((100 * r["ci_low"], 100 * r["ci_high"]), abs=0.05)
        summary = o.text('[data-summary="flaky"]')
        assert f"{view.height} (example, evaluator) rows" in summary
        assert f"{view.height - FLAKY_SHOWN} more not" in summary
        assert not o.console_errors and not o.page_errors and not o.requests_out


def test_the_incident_table_says_a_row_is_flaky(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    candidate(wh, guarded_history(wh, flaky=True), fails=1, reps=1)
    c = compare(wh, "cand", "base", settings)
    path = build_experiment_report(wh, "cand", settings=settings, comparison=c).write(
        tmp_path / "cand.html"
    )
    [r] = wh.query("SELECT * FROM row_stability WHERE stability = 'flaky'").iter_rows(named=True)
    with open_report(path) as o:
        [incident] = o.table("incidents")
        assert incident[0] == "ex-0007" and incident[1] == "INC-7"
        assert incident[-1] == (
            "flaky: too few repetitions (1/1 failed; history 57.1% [25.0%, 84.2%] over 7)"
        )
        [flaky] = o.table("flaky")
        # the section counts the candidate's run too: 4 passes of 8 in 8 runs
        assert flaky[:8] == ["ex-0007", "exact", "INC-7", "agent:v · this run", "8", "8", "4", "4"]
        assert flaky[8:] == [pct(r["pass_rate"]), f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]"]
        assert "INCONCLUSIVE" in o.text().upper()
