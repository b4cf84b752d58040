"""Which calibration corrects which cell side, and when no corrected number is given: the
pure assembly of `evalkeeper.analysis.judge_rates`, on hand-made facts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evalkeeper.analysis.corrected import JudgeErrors, corrected_rate
from evalkeeper.analysis.judge_rates import correct_cells, same_judge_note
from evalkeeper.analysis.models import ALL, Cell, SideEstimate
from evalkeeper.warehouse.judge_errors import CalibrationCounts, JudgeErrorFacts

AT = datetime(2026, 11, 30, tzinfo=UTC)


def side(mean: float, n: int, se: float, se_cluster: float | None = None) -> SideEstimate:
    return SideEstimate(
        n_rows=n, mean=mean, se=se, se_cluster=se_cluster, ci_low=None, ci_high=None
    )


def cell(evaluator: str = "judge", metric: str = "pass_rate") -> Cell:
    return Cell(
        evaluator=evaluator, category=ALL, metric=metric, n_examples=100, rows_baseline=300,
        rows_candidate=300, errors_baseline=0, errors_candidate=0, error_rate_baseline=0.0,
        error_rate_candidate=0.0, baseline=side(0.70, 300, 0.026, 0.031),
        candidate=side(0.64, 300, 0.028, None), diff=-0.06,
    )  # fmt: skip


def counts(
    n_pass: int, tp: int, n_fail: int, tn: int, status: str = "healthy"
) -> CalibrationCounts:
    return CalibrationCounts(
        n_pass=n_pass, tp=tp, n_fail=n_fail, tn=tn, quarter="2026Q4",
        n_items=n_pass + n_fail, status=status, calibration_id="cal-1", calibrated_at=AT,
    )  # fmt: skip


def test_each_side_uses_its_own_version_and_its_own_se() -> None:
    facts = JudgeErrorFacts(
        versions={("cand", "judge"): [("v2", "m")], ("base", "judge"): [("v1", "m")]},
        calibrations={
            ("judge", "v1", "m"): counts(150, 135, 50, 44),
            ("judge", "v2", "m"): counts(160, 150, 40, 30),
        },
    )
    base, cand = correct_cells([cell()], "cand", "base", facts, min_j=0.1)
    assert (base.side, base.prompt_version, cand.prompt_version) == ("baseline", "v1", "v2")
    # the baseline repeats examples: its cluster-robust SE; the candidate's CLT SE
    want_b = corrected_rate(0.70, 0.031, JudgeErrors(150, 135, 50, 44))
    want_c = corrected_rate(0.64, 0.028, JudgeErrors(160, 150, 40, 30))
    assert base.corrected == pytest.approx(want_b.estimate)
    assert base.ci_low == pytest.approx(want_b.ci_low) and base.raw_se == 0.031
    assert cand.corrected == pytest.approx(want_c.estimate) and cand.raw_se == 0.028
    note = same_judge_note([base, cand])
    assert note is not None and "different judge versions" in note


@pytest.mark.parametrize(
    ("versions", "calibration", "reason"),
    [
        ([("v1", "m")], None, "no calibration of this version (prompt v1, model m)"),
        ([("v1", "m"), ("v2", "m")], counts(150, 135, 50, 44), "several judge versions"),
        ([("v1", "m")], counts(20, 18, 10, 9, status="uncalibrated"), "fewer than the minimum"),
        ([("v1", "m")], counts(200, 180, 0, 0), "0 human-fail items"),
    ],
)
def test_uncalibrated_sides_get_no_number(
    versions: list[tuple[str, str]], calibration: CalibrationCounts | None, reason: str
) -> None:
    cals = {("judge", "v1", "m"): calibration} if calibration else {}
    facts = JudgeErrorFacts(
        versions={("cand", "judge"): versions, ("base", "judge"): versions}, calibrations=cals
    )
    for r in correct_cells([cell()], "cand", "base", facts, min_j=0.1):
        assert r.status == "uncalibrated" and r.corrected is None and r.ci_low is None
        assert reason in r.reason
        assert r.raw is not None


def test_only_judge_pass_rates_are_corrected() -> None:
    facts = JudgeErrorFacts(
        versions={("cand", "judge"): [("v1", "m")], ("base", "judge"): [("v1", "m")]},
        calibrations={("judge", "v1", "m"): counts(150, 135, 50, 44)},
    )
    cells = [cell("latency_ok"), cell("judge", metric="mean_value")]
    assert correct_cells(cells, "cand", "base", facts, min_j=0.1) == []


def test_an_uninformative_judge_says_why() -> None:
    facts = JudgeErrorFacts(
        versions={("cand", "judge"): [("v1", "m")], ("base", "judge"): [("v1", "m")]},
        calibrations={("judge", "v1", "m"): counts(180, 178, 20, 2)},  # J 0.09
    )
    for r in correct_cells([cell()], "cand", "base", facts, min_j=0.1):
        assert r.status == "uninformative" and r.corrected is None
        assert r.youden_j == pytest.approx(178 / 180 + 2 / 20 - 1)
        assert "its scores carry almost no information" in r.reason
