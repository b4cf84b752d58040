"""The experiment report, from real runs of the demo agent (v1, then v2 with its bug),
written through the real commands and opened in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.analysis.models import ALL, Comparison
from evalkeeper.analysis.reasons import fmt_diff, fmt_p, fmt_value
from evalkeeper.cli import app
from evalkeeper.settings import Settings
from tests.report.browser import open_report

runner = CliRunner()
JUDGES = "factual_match,tone_appropriate,no_hallucination"  # no endpoint here: allowed skips


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EVALKEEPER_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("EVALKEEPER_DATASETS_DIR", str(settings.datasets_dir))
    monkeypatch.setenv("EVALKEEPER_GIT_COMMIT", "c0ffee")
    monkeypatch.setenv("EVALKEEPER_GIT_BRANCH", "main")
    monkeypatch.setenv("EVALKEEPER_CONCURRENCY", "32")
    return settings


def gate(target: str, experiment: str, *extra: str) -> int:
    out = runner.invoke(
        app,
        ["gate", "--dataset", "appointments", "--suite", "full", "--baseline", "main",
         "--allow-skipped", JUDGES, "--target", target, "--experiment", experiment,
         "--format", "json", *extra],
    )  # fmt: skip
    return out.exit_code


@pytest.fixture
def regressed(env: Settings, tmp_path: Path) -> Path:
    """main-1 (v1, no baseline), then pr-bad (v2) gated against it with `--report`."""
    first = tmp_path / "first.html"
    assert gate("evalkeeper.demo.agent:v1", "main-1", "--report", str(first)) == 2
    assert "no baseline" in first.read_text()  # a gate that cannot decide still reports
    report = tmp_path / "gate.html"
    assert gate("evalkeeper.demo.agent:v2", "pr-bad", "--report", str(report)) == 1
    return report


def cell_text(c: Comparison) -> list[list[str]]:
    """The differences table as the markdown formats the comparison's numbers."""
    return [
        [
            x.evaluator,
            "all" if x.category == ALL else x.category,
            str(x.n_examples),
            fmt_value(x.baseline.mean, x.metric),
            fmt_value(x.candidate.mean, x.metric),
            fmt_diff(x.diff, x.metric),
            "–"
            if x.diff_ci_low is None
            else f"{fmt_diff(x.diff_ci_low, x.metric)} to {fmt_diff(x.diff_ci_high, x.metric)}",
            fmt_p(x.p_value),
            fmt_p(x.p_adjusted),
            fmt_diff(x.mde, x.metric)[1:] if x.mde is not None else "–",
            x.status,
        ]
        for x in c.cells
    ]


def test_the_report_of_a_regression_shows_the_comparison(
    env: Settings, regressed: Path, tmp_path: Path
) -> None:
    assert regressed.stat().st_size > 10_000  # gate --report wrote the full report
    out = runner.invoke(app, ["compare", "pr-bad", "--format", "json"])
    assert out.exit_code == 1, out.output
    c = Comparison.model_validate_json(out.stdout)
    assert c.verdict == "regression" and c.baseline_id == "main-1" and c.row_regressions

    path = tmp_path / "pr-bad.html"
    out = runner.invoke(app, ["report", "pr-bad", "--out", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"report": str(path), "verdict": "regression"}
    html = path.read_text()
    assert "<script" not in html and len(html) < 1_000_000

    drawn = [x for x in c.cells if x.diff is not None and x.metric == "pass_rate"]
    with_ci = [x for x in drawn if x.diff_ci_low is not None and x.diff_ci_high is not None]
    assert drawn and len(c.cells) <= 60  # every cell drawn (the cap is not reached here)
    with open_report(path) as o:
        # one point per cell with a difference, one rule per confidence interval, the zero
        assert o.marks("forest") == len(drawn) + len(with_ci) + 1
        rows = o.table("cells")
        assert rows == cell_text(c)
        for row, x in zip(rows, c.cells, strict=True):  # the numbers, not only the format
            if x.diff is not None and x.metric == "pass_rate":
                assert float(row[5].removesuffix(" pt")) == pytest.approx(x.diff * 100, abs=0.05)
        assert any(r[10] == "regression" for r in rows)

        incidents = o.table("incidents")
        assert len(incidents) == len(c.row_regressions)
        for row, r in zip(incidents, c.row_regressions, strict=True):
            assert row[0] == r.example_id and row[1] == (r.incident_id or "—")
            assert row[3] == r.evaluator
            assert row[5] == (r.baseline_output or "—").strip()
            assert row[6] == (r.candidate_output or "—").strip()
            assert row[8] == (r.candidate_comment or "—").strip()
        assert any(r.incident_id == "INC-2041" for r in c.row_regressions)

        skipped = {r[0]: r[3] for r in o.table("skipped")}
        assert set(skipped) == set(JUDGES.split(","))
        assert set(skipped.values()) == {"allowed (optional)"}

        facts = o.text("dl.facts")
        for fact in ("pr-bad", "main-1", "appointments", "evalkeeper.demo.agent:v2", "c0ffee"):
            assert fact in facts
        assert "LangSmith" not in facts  # never uploaded: no link
        assert o.page.query_selector('[data-verdict="regression"]') is not None
        assert o.console_errors == [] and o.page_errors == []
        assert o.requests_out == []
    assert o.screenshot is not None and o.screenshot.stat().st_size > 10_000
    with open_report(path, width=390, height=844) as phone:  # a phone: the page does not overflow
        overflow = phone.page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False


def test_an_experiment_without_a_baseline_gets_an_inconclusive_report(
    env: Settings, tmp_path: Path
) -> None:
    assert gate("evalkeeper.demo.agent:v1", "lonely") == 2
    path = tmp_path / "lonely.html"
    out = runner.invoke(app, ["report", "lonely", "--out", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["verdict"] == "inconclusive"
    with open_report(path) as o:
        summary = o.text("[data-list=summary]")
        assert "no baseline for 'lonely'" in summary and "--baseline EXP" in summary
        assert "evalkeeper.demo.agent:v1" in o.text("dl.facts")
        assert o.console_errors == [] and o.requests_out == []
    out = runner.invoke(app, ["report", "ghost", "--out", str(tmp_path / "g.html")])
    assert out.exit_code == 2 and "experiment 'ghost'" in out.output
    out = runner.invoke(
        app, ["report", "lonely", "--baseline", "ghost", "--out", str(tmp_path / "g.html")]
    )
    assert out.exit_code == 2 and "'ghost'" in out.output  # a named baseline: the user's typo
    assert not (tmp_path / "g.html").exists()


def test_gate_report_that_cannot_be_written_keeps_the_verdict(
    env: Settings, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    # no baseline yet: inconclusive (exit 2) stays 2, and says why there is no report
    out = runner.invoke(
        app,
        ["gate", "--dataset", "appointments", "--suite", "smoke", "--allow-skipped", JUDGES,
         "--target", "evalkeeper.demo.agent:v1", "--report", str(blocked / "r.html")],
    )  # fmt: skip
    assert out.exit_code == 2
    assert "report not written" in out.output and "INCONCLUSIVE" in out.output
