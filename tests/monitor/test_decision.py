"""The monitor's decision from counts: per evaluator and for the window (the `mixture` test;
the default `spending` test is in test_group_sequential.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evalkeeper.monitor.decision import (
    EvaluatorCounts,
    MonitorPolicy,
    decide,
)

POLICY = MonitorPolicy(method="mixture")


def counts(
    name: str = "tool_error",
    base: tuple[int, int, int] = (5000, 250, 0),
    window: tuple[int, int, int] = (2000, 100, 0),
) -> EvaluatorCounts:
    return EvaluatorCounts(name, *base, *window)


def test_a_clear_rise_rolls_back_with_its_evidence() -> None:
    d = decide([counts(window=(2000, 180, 0))], POLICY, final=False)
    assert d.decision == "rollback"
    (e,) = d.evaluators
    assert e.decision == "rollback"
    assert e.baseline_rate == pytest.approx(0.05)
    assert e.window_rate == pytest.approx(0.09)
    assert e.baseline_rate < e.upper_bound < e.window_rate  # type: ignore[operator]
    assert e.statistic is not None and e.statistic >= e.threshold
    assert "9.00%" in e.reason and "5.00%" in e.reason
    assert d.rollback_by == [e]


def test_unchanged_traffic_continues_then_is_stable_at_the_end() -> None:
    c = counts(window=(4800, 245, 0))
    assert decide([c], POLICY, final=False).decision == "continue"
    final = decide([c], POLICY, final=True)
    assert final.decision == "stable"
    assert final.evaluators[0].statistic < final.evaluators[0].threshold  # type: ignore[operator]


def test_too_few_baseline_traces_is_inconclusive_from_the_first_look() -> None:
    c = counts(base=(150, 8, 0), window=(0, 0, 0))
    d = decide([c, counts("latency_ok", window=(0, 0, 0))], POLICY, final=False)
    assert d.decision == "inconclusive"
    assert d.evaluators[0].decision == "inconclusive"
    assert "min_baseline is 200" in d.evaluators[0].reason
    assert d.evaluators[1].decision == "continue"
    # and it can never end stable, even with a quiet window
    quiet = dataclasses.replace(c, window_n=5000, window_flags=10)
    assert decide([quiet], POLICY, final=True).decision == "inconclusive"


def test_evaluator_errors_make_it_inconclusive_never_rollback() -> None:
    # 30% of the window's traces errored, and the scored ones flag at 20%
    c = counts(window=(700, 140, 300))
    d = decide([c], POLICY, final=False)
    assert d.decision == "inconclusive"
    assert "300 of 1000 traces errored" in d.evaluators[0].reason
    assert decide([c], POLICY, final=True).decision == "inconclusive"
    # the same flags without the errors are a rollback
    assert decide([dataclasses.replace(c, window_errors=0)], POLICY, final=False).decision == (
        "rollback"
    )


def test_baseline_errors_make_it_inconclusive() -> None:
    d = decide([counts(base=(5000, 250, 2000))], POLICY, final=True)
    assert d.decision == "inconclusive"
    assert d.evaluators[0].reason.startswith("baseline: 2000 of 7000 traces errored")


def test_a_few_early_errors_do_not_stop_the_window() -> None:
    # 2 errors in the first 3 traces: below min_window, the error rate is not judged yet
    d = decide([counts(window=(1, 0, 2))], POLICY, final=False)
    assert d.decision == "continue"
    assert "collecting" in d.evaluators[0].reason


def test_no_decision_before_min_window_and_too_little_traffic_at_the_end() -> None:
    every_trace_flagged = counts(window=(40, 40, 0))
    assert decide([every_trace_flagged], POLICY, final=False).decision == "continue"
    end = decide([every_trace_flagged], POLICY, final=True)
    assert end.decision == "inconclusive"
    assert "too little traffic" in end.evaluators[0].reason
    assert decide(
        [every_trace_flagged], MonitorPolicy(min_window=20, method="mixture"), final=False
    ).decision == ("rollback")


def test_tolerance_accepts_a_small_rise() -> None:
    c = counts(base=(20000, 1000, 0), window=(20000, 1200, 0))  # 5% -> 6%
    assert decide([c], POLICY, final=False).decision == "rollback"
    assert (
        decide([c], MonitorPolicy(tolerance=0.015, method="mixture"), final=True).decision
        == "stable"
    )


def test_alpha_is_split_across_evaluators() -> None:
    """Counts that roll back alone do not when three more evaluators share alpha."""
    p = MonitorPolicy(method="mixture")
    borderline = None
    for flags in range(100, 200):
        c = counts(window=(2000, flags, 0))
        if decide([c], p, final=False).decision == "rollback":
            borderline = c
            break
    assert borderline is not None
    others = [counts(f"quiet_{i}") for i in range(3)]
    shared = decide([borderline, *others], p, final=False)
    assert shared.decision == "continue"
    assert shared.evaluators[0].alpha == pytest.approx(p.alpha / 4)
    assert (
        shared.evaluators[0].threshold
        > decide([borderline], p, final=False).evaluators[0].threshold
    )


def test_the_window_rolls_back_when_any_evaluator_does() -> None:
    d = decide([counts("a"), counts("b", window=(2000, 200, 0))], POLICY, final=True)
    assert d.decision == "rollback"
    assert [e.decision for e in d.evaluators] == ["stable", "rollback"]
    assert len(d.reasons) == 2 and d.reasons[1].startswith("b: rollback: ")


def test_bad_input_is_refused_with_its_fix() -> None:
    with pytest.raises(ValueError, match=r"evaluator 'x': window counts n=10, flags=11"):
        EvaluatorCounts("x", 100, 5, 0, 10, 11, 0)
    with pytest.raises(ValueError, match="given twice"):
        decide([counts("a"), counts("a")], POLICY, final=False)
    with pytest.raises(ValueError, match="at least one evaluator"):
        decide([], POLICY, final=False)
    with pytest.raises(ValueError, match=r"alpha=1\.5.*tolerance=-0\.1"):
        MonitorPolicy(alpha=1.5, tolerance=-0.1)


def test_false_rollbacks_stay_under_alpha_through_decide() -> None:
    """Seeded windows of unchanged traffic (5%), 48 looks of 50 traces, two evaluators, at
    a generous alpha of 0.2 so that a broken bound would show: at most 0.2 (3 SEs)."""
    rng = np.random.default_rng(11)
    policy = MonitorPolicy(alpha=0.2, method="mixture")
    windows, looks, per = 400, 48, 50
    rollbacks = 0
    for _ in range(windows):
        base = rng.binomial(1000, 0.05, 2)
        flags = rng.binomial(per, 0.05, (2, looks)).cumsum(axis=1)
        for look in range(looks):
            cs = [
                EvaluatorCounts(
                    f"e{j}", 1000, int(base[j]), 0, per * (look + 1), int(flags[j, look]), 0
                )
                for j in range(2)
            ]
            if decide(cs, policy, final=look == looks - 1).decision == "rollback":
                rollbacks += 1
                break
    assert rollbacks / windows <= 0.2 + 3 * (0.2 * 0.8 / windows) ** 0.5


def test_a_rise_from_5_to_15_percent_is_caught_early() -> None:
    rng = np.random.default_rng(12)
    caught = []
    for _ in range(100):
        x0 = int(rng.binomial(5000, 0.05))
        flags = rng.binomial(50, 0.15, 48).cumsum()
        for look in range(48):
            c = EvaluatorCounts("e", 5000, x0, 0, 50 * (look + 1), int(flags[look]), 0)
            if decide([c], POLICY, final=False).decision == "rollback":
                caught.append(50 * (look + 1))
                break
    assert len(caught) >= 99
    assert float(np.median(caught)) <= 400
