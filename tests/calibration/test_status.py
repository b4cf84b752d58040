"""The retirement rule, and the recorded status history on a real warehouse file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.calibration import (
    Ceiling,
    JudgeCalibration,
    decide,
    previous_quarter,
    quarter_bounds,
    quarter_of,
    record,
    status_history,
)
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import retired_judges


def cal(
    agreement: float, n: int = 200, *, kappa: float | None = 0.6, **kw: Any
) -> JudgeCalibration:
    from evalkeeper.analysis.agreement import wilson

    ci = wilson(round(agreement * n), n)
    values: dict[str, Any] = {
        "judge": "j", "version": "v1", "model": "m-2026-01-01", "quarter": "2026Q4",
        "n_items": n, "n_ties": 0, "labels": ["pass", "fail"], "agreement": agreement,
        "agreement_ci": list(ci) if ci else None, "kappa": kappa, "kappa_se": 0.05,
        "kappa_ci": None, "ac1": 0.7, "ac1_se": 0.04, "confusion": [[1, 0], [0, 1]],
        "true_pass_rate": 0.9, "true_fail_rate": 0.8,
        "ceiling": Ceiling(n_items=40, agreement=0.9, kappa=0.7, ac1=0.8, alpha=0.7),
        "bar": 0.8, "status": "uncalibrated", "reason": "",
    }  # fmt: skip
    values.update(kw)
    m = JudgeCalibration(**values)
    status, reason, bar = decide(m, Settings())
    return m.model_copy(update={"status": status, "reason": reason, "bar": bar})


@pytest.mark.parametrize(
    ("agreement", "n", "kappa", "status"),
    [
        (0.95, 200, 0.8, "healthy"),
        (0.70, 200, 0.5, "retired"),  # CI ≈ 0.63-0.76, wholly below 0.80
        (0.82, 200, 0.6, "at_risk"),  # straddles
        (0.93, 200, 0.2, "at_risk"),  # the kappa paradox: high agreement, chance-level kappa
        (0.93, 200, None, "at_risk"),
        (0.50, 20, 0.1, "uncalibrated"),  # too few labels to say anything
    ],
)
def test_rule(agreement: float, n: int, kappa: float | None, status: str) -> None:
    assert cal(agreement, n, kappa=kappa).status == status


def test_bar_as_a_share_of_the_human_ceiling() -> None:
    m = cal(0.76, 400)
    assert m.status == "retired"
    s = Settings(calibration_ceiling_share=0.75)  # 0.75 x 0.9 = 0.675
    status, reason, bar = decide(m, s)
    assert status == "healthy" and bar == pytest.approx(0.675) and "human ceiling 0.90" in reason


def test_quarters() -> None:
    assert quarter_of(datetime(2026, 11, 30, tzinfo=UTC)) == "2026Q4"
    assert quarter_bounds("2026Q1") == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert previous_quarter(datetime(2026, 1, 1, 3, tzinfo=UTC)) == "2025Q4"
    with pytest.raises(ValueError, match=r"write e\.g\. 2026Q4"):
        quarter_bounds("Q4-26")


def test_history_and_the_retired_version_stays_retired(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    t = [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 4, 7, 10)]
    record(wh, [cal(0.95)], now=t[0])
    assert [c.status for c in record(wh, [cal(0.70)], now=t[1])] == ["retired"]
    with wh.connect() as con:
        assert (
            "j is retired" in retired_judges(con)["j"]
            and "since 2026-04-01" in retired_judges(con)["j"]
        )
    # the same version measured well again: recorded, but still retired
    (again,) = record(wh, [cal(0.97)], now=t[2])
    assert again.status == "retired" and "new version" in again.reason
    # a new version at risk is not enough; a healthy new version reinstates
    assert record(wh, [cal(0.82, version="v2")], now=t[2])[0].status == "retired"
    assert record(wh, [cal(0.96, version="v3")], now=t[3])[0].status == "healthy"
    with wh.connect() as con:
        assert retired_judges(con) == {}
    history = [(h.prompt_version, h.status) for h in status_history(wh, "j")]
    assert history == [("v1", "healthy"), ("v1", "retired"), ("v2", "retired"), ("v3", "healthy")]
    assert wh.rows("SELECT count(*) FROM judge_calibrations") == [(5,)]


def test_the_default_rule_says_it_decided() -> None:
    m = cal(0.70)
    assert m.status == "retired" and m.reason.endswith("the bar 0.80 (rule: agreement)")


@pytest.mark.parametrize(
    ("kappa", "kappa_ci", "status"),
    [
        (0.30, [0.20, 0.45], "retired"),  # the whole BCa interval below 0.60
        (0.58, [0.50, 0.66], "at_risk"),
        (0.75, [0.66, 0.82], "healthy"),
    ],
)
def test_the_kappa_rule_uses_the_bca_interval(
    kappa: float, kappa_ci: list[float], status: str
) -> None:
    m = cal(0.95, kappa=kappa, kappa_ci=kappa_ci)  # agreement alone: healthy
    s = Settings(calibration_rule="kappa")
    got, reason, bar = decide(m, s)
    assert got == status and bar == pytest.approx(0.60)
    assert f"95% bca interval [{kappa_ci[0]:.2f}, {kappa_ci[1]:.2f}]" in reason
    assert reason.endswith("(rule: kappa)")


def test_a_kappa_without_bootstrap_interval_uses_the_asymptotic_one() -> None:
    m = cal(0.95, kappa=0.5, kappa_ci=None, kappa_se=0.02)  # 0.46-0.54
    status, reason, _ = decide(m, Settings(calibration_rule="kappa"))
    assert status == "retired" and "asymptotic interval [0.46, 0.54]" in reason


def test_the_kappa_rule_relative_to_the_human_kappa() -> None:
    m = cal(0.95, kappa=0.5, kappa_ci=[0.42, 0.58])  # ceiling kappa 0.7
    s = Settings(calibration_rule="kappa", calibration_ceiling_share=0.75)  # bar 0.525
    status, reason, bar = decide(m, s)
    assert status == "at_risk" and bar == pytest.approx(0.525)
    assert f"the bar {bar:.2f} (0.75 x human ceiling kappa 0.70) (rule: kappa, relative)" in reason
    none = m.model_copy(
        update={"ceiling": Ceiling(n_items=0, agreement=None, kappa=None, ac1=None, alpha=None)}
    )
    status, reason, bar = decide(none, s)
    assert bar == pytest.approx(0.60) and "no human ceiling measured: the absolute bar" in reason
    assert status == "retired"


def test_the_ac1_rule_and_an_undefined_kappa() -> None:
    m = cal(0.95, ac1=0.5, ac1_se=0.02)  # 0.46-0.54 against 0.60
    status, reason, bar = decide(m, Settings(calibration_rule="ac1", calibration_ac1_bar=0.6))
    assert bar == pytest.approx(0.6)
    assert status == "retired" and "ac1 0.50, 95% se interval [0.46, 0.54]" in reason
    undefined = cal(0.95, kappa=None)
    status, reason, _ = decide(undefined, Settings(calibration_rule="kappa"))
    assert status == "at_risk" and "kappa is undefined" in reason


def test_a_judge_not_beating_the_baseline_is_said_whatever_the_rule() -> None:
    m = cal(0.95, baseline=0.96, baseline_label="pass", beats_baseline=False)
    for rule in ("agreement", "kappa", "ac1"):
        _, reason, _ = decide(m, Settings(calibration_rule=rule))
        assert reason.endswith(
            "the agreement 0.95 does not beat the constant-answer baseline 0.96 (always 'pass')"
        )
    assert "baseline" not in cal(0.95, baseline=0.9, beats_baseline=True).reason
