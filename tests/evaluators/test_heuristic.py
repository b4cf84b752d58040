"""Tests for the heuristic evaluators: latency_ok and the latency_p95 summary evaluator."""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from typing import Any

import pytest

from evalkeeper import registry
from evalkeeper.models import EvaluatorRef, Example, RunRecord, Score
from evalkeeper.registry import EvaluatorConfigError, build, evaluator


def run_eval(name: str, args: dict[str, Any] | None = None, **kwargs: Any) -> Score:
    """Build an evaluator through the registry and score once, as the runner does."""
    ev = build(EvaluatorRef(name=name, args=args or {}))
    return asyncio.run(ev(**kwargs))


def make_run(latency_ms: float | None, *, error: str | None = None, i: int = 0) -> RunRecord:
    outputs = None if error else {"reply": "ok"}
    return RunRecord(
        experiment_id="exp-1",
        example_id=f"ex-{i}",
        outputs=outputs,
        latency_ms=latency_ms,
        error=error,
    )


# -- latency_ok -----------------------------------------------------------------------------


def test_latency_ok_passes_under_threshold_and_reports_seconds() -> None:
    run = make_run(850.0)
    score = run_eval("latency_ok", {"threshold_s": 1.0}, outputs=run.outputs, run=run)
    assert score.error is None
    assert score.passed is True
    assert score.value == pytest.approx(0.85)
    assert score.name == "latency_ok" and score.version == "1"
    assert "0.850s" in (score.comment or "")


def test_latency_ok_fails_over_threshold() -> None:
    run = make_run(1500.0)
    score = run_eval("latency_ok", outputs=run.outputs, run=run)  # default 1.2 s
    assert score.passed is False
    assert score.value == pytest.approx(1.5)
    assert "over" in (score.comment or "")


def test_latency_ok_threshold_is_inclusive() -> None:
    run = make_run(1200.0)
    assert run_eval("latency_ok", outputs=run.outputs, run=run).passed is True


def test_latency_ok_missing_latency_is_an_error() -> None:
    run = make_run(None)
    score = run_eval("latency_ok", outputs=run.outputs, run=run)
    assert score.error is not None and "latency_ms" in score.error
    assert score.passed is None and score.value is None


def test_latency_ok_without_run_is_an_error() -> None:
    score = run_eval("latency_ok", outputs={"reply": "ok"})
    assert score.error is not None and score.passed is None


def test_latency_ok_target_error_is_an_error_not_a_pass() -> None:
    run = make_run(20.0, error="TimeoutError: upstream")
    score = run_eval("latency_ok", outputs=None, run=run)
    assert score.error is not None
    assert score.error.startswith("no outputs (target error)")
    assert score.passed is None


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "fast", True, None])
def test_latency_ok_bad_threshold_fails_at_build(bad: Any) -> None:
    with pytest.raises(ValueError, match="threshold_s"):
        build(EvaluatorRef(name="latency_ok", args={"threshold_s": bad}))


def test_unknown_argument_fails_at_build() -> None:
    with pytest.raises(EvaluatorConfigError, match="unknown argument"):
        build(EvaluatorRef(name="latency_ok", args={"threshold": 1.0}))


# -- latency_p95 ----------------------------------------------------------------------------

# 20 latencies 100, 200, …, 2000 ms. Linear-interpolation percentiles (numpy "linear",
# statistics "inclusive", R type 7): rank = (n - 1) * p / 100 over the sorted sample.
#   p95: rank 19 * 0.95 = 18.05 -> 1900 + 0.05 * (2000 - 1900) = 1905 ms = 1.905 s
#   p50: rank 19 * 0.50 =  9.5  -> 1000 + 0.5  * (1100 - 1000) = 1050 ms = 1.050 s
KNOWN_MS = [100.0 * k for k in range(1, 21)]


def summary(runs: list[RunRecord], threshold_s: float = 1.2) -> Score:
    examples = [Example(id=r.example_id, inputs={}) for r in runs]
    return run_eval("latency_p95", {"threshold_s": threshold_s}, runs=runs, examples=examples)


def test_latency_p95_known_sample() -> None:
    runs = [make_run(ms, i=i) for i, ms in enumerate(reversed(KNOWN_MS))]
    score = summary(runs, threshold_s=2.0)
    assert score.error is None
    assert score.value == pytest.approx(1.905)
    assert score.passed is True
    assert score.details is not None
    assert score.details["p95_s"] == pytest.approx(1.905)
    assert score.details["p50_s"] == pytest.approx(1.05)
    assert score.details["max_s"] == pytest.approx(2.0)
    assert score.details["n"] == 20
    comment = score.comment or ""
    assert "p95 1.905s" in comment and "p50 1.050s" in comment and "n=20" in comment


def test_latency_p95_fails_over_threshold() -> None:
    runs = [make_run(ms, i=i) for i, ms in enumerate(KNOWN_MS)]
    score = summary(runs, threshold_s=1.9)
    assert score.passed is False
    assert score.value == pytest.approx(1.905)


def test_latency_p95_agrees_with_statistics_inclusive_quantiles() -> None:
    rng = random.Random(20240611)
    latencies_ms = [rng.lognormvariate(6.5, 0.6) for _ in range(137)]
    runs = [make_run(ms, i=i) for i, ms in enumerate(latencies_ms)]
    score = summary(runs)
    seconds = [ms / 1000 for ms in latencies_ms]
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    assert score.value == pytest.approx(cuts[94], rel=1e-12)
    assert score.details is not None
    assert score.details["p50_s"] == pytest.approx(cuts[49], rel=1e-12)
    assert score.details["max_s"] == pytest.approx(max(seconds))
    assert score.passed is (cuts[94] <= 1.2)


def test_latency_p95_single_run() -> None:
    score = summary([make_run(300.0)])
    assert score.value == pytest.approx(0.3)
    assert score.details is not None and score.details["n"] == 1


def test_latency_p95_skips_runs_without_latency_and_errored_runs() -> None:
    runs = [make_run(ms, i=i) for i, ms in enumerate(KNOWN_MS)]
    runs.append(make_run(None, i=50))
    runs.append(make_run(90_000.0, error="TimeoutError", i=51))
    score = summary(runs, threshold_s=2.0)
    assert score.value == pytest.approx(1.905)
    assert score.details is not None
    assert score.details["n"] == 20 and score.details["n_errored"] == 1


def test_latency_p95_no_latencies_is_an_error() -> None:
    score = summary([make_run(None), make_run(10.0, error="boom", i=1)])
    assert score.error is not None and "no latencies" in score.error
    assert score.passed is None and score.value is None


def test_latency_p95_no_runs_is_an_error() -> None:
    score = summary([])
    assert score.error is not None and score.passed is None


def test_latency_p95_bad_threshold_fails_at_build() -> None:
    with pytest.raises(ValueError, match="threshold_s"):
        build(EvaluatorRef(name="latency_p95", args={"threshold_s": -0.5}))


# -- the registry turns an evaluator crash into an error score --------------------------------


@pytest.mark.usefixtures("restore_registry")
def test_evaluator_raising_inside_gives_an_error_score() -> None:
    name = f"test_raises_{uuid.uuid4().hex[:8]}"

    @evaluator(name, version="0", kind="heuristic")
    def raises() -> Any:
        """Always crashes (test only)."""

        def score(outputs: Any = None) -> Score:
            raise KeyError("boom")

        return score

    score = run_eval(name, outputs={"reply": "ok"})
    assert score.error is not None and "KeyError" in score.error and "boom" in score.error
    assert score.passed is None and score.value is None
    assert score.name == name and score.version == "0"


@pytest.mark.usefixtures("restore_registry")
def test_unregister_removes_an_evaluator_and_refuses_an_unknown_one() -> None:
    name = f"test_unregister_{uuid.uuid4().hex[:8]}"

    @evaluator(name, version="0")
    def passes() -> Any:
        """Always passes (test only)."""
        return lambda: True

    assert registry.get(name).factory is passes
    assert registry.unregister(name).name == name
    with pytest.raises(registry.UnknownEvaluator, match=name):
        registry.get(name)
    with pytest.raises(registry.UnknownEvaluator, match="nothing to unregister"):
        registry.unregister(name)
