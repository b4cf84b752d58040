"""Heuristic evaluators: properties of a run that need no reference (latency).

`latency_ok` scores one run against a latency budget; `latency_p95` is a summary evaluator
that scores a whole experiment by its 95th-percentile latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalkeeper.models import Example, RunRecord, Score
from evalkeeper.registry import Evaluator, SummaryEvaluator, evaluator
from evalkeeper.settings import SETTINGS
from evaluators.reference import NO_OUTPUTS

# The default of EVALKEEPER_LATENCY_P95_S: the one place the 1.2 s budget is written.
DEFAULT_THRESHOLD_S: float = SETTINGS["latency_p95_s"].info.default

__all__ = ["latency_ok", "latency_p95"]


def _check_threshold(threshold_s: Any) -> float:
    """A latency budget in seconds: a finite positive number, or a ValueError at build."""
    if (
        isinstance(threshold_s, bool)
        or not isinstance(threshold_s, int | float)
        or not math.isfinite(threshold_s)
        or threshold_s <= 0
    ):
        raise ValueError(
            f"threshold_s={threshold_s!r}: expected a positive number of seconds, e.g. 1.2"
        )
    return float(threshold_s)


def _field(run: Any, name: str) -> Any:
    """A field of a run: a RunRecord attribute, or a key of a plain mapping."""
    return run.get(name) if isinstance(run, Mapping) else getattr(run, name, None)


def _latency_ms(run: Any) -> float | None:
    """The run's latency in milliseconds, when it was recorded."""
    value = _field(run, "latency_ms")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _target_error(run: Any) -> str | None:
    """The target's error for this run, when it had one."""
    error = _field(run, "error")
    return str(error) if error else None


@evaluator(
    "latency_ok", version="1", kind="heuristic", settings_defaults={"threshold_s": "latency_p95_s"}
)
def latency_ok(threshold_s: float = DEFAULT_THRESHOLD_S) -> Evaluator:
    """Passes when one run's latency is within `threshold_s` seconds; value is the latency (s).

    `threshold_s` defaults to `EVALKEEPER_LATENCY_P95_S` (1.2 s) when built for a run.
    The latency is the runner's wall-clock time for the target call (`run.latency_ms`).
    A run whose target errored, or with no recorded latency, is an error score.
    """
    limit = _check_threshold(threshold_s)

    def score(
        *,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        reference_outputs: dict[str, Any] | None = None,
        run: RunRecord | None = None,
        example: Example | None = None,
    ) -> Score:
        if run is None:
            return Score(error="no run record: latency_ok needs `run` with latency_ms")
        target_error = _target_error(run)
        if target_error is not None:
            return Score(error=f"{NO_OUTPUTS}: {target_error}")
        if outputs is None and _field(run, "outputs") is None:
            return Score(error=NO_OUTPUTS)
        ms = _latency_ms(run)
        if ms is None:
            return Score(error="run has no latency_ms: the runner did not time this call")
        seconds = ms / 1000.0
        passed = seconds <= limit
        verdict = "within" if passed else "over"
        return Score(
            value=seconds,
            passed=passed,
            comment=f"latency {seconds:.3f}s {verdict} the {limit:g}s budget",
        )

    return score


@evaluator(
    "latency_p95",
    version="1",
    kind="heuristic",
    summary=True,
    settings_defaults={"threshold_s": "latency_p95_s"},
)
def latency_p95(threshold_s: float = DEFAULT_THRESHOLD_S) -> SummaryEvaluator:
    """Passes when the experiment's p95 latency is within `threshold_s` seconds; value is p95 (s).

    `threshold_s` defaults to `EVALKEEPER_LATENCY_P95_S` (1.2 s) when built for a run.

    Percentiles are `numpy.percentile(..., method="linear")` (NumPy's default, the same as
    `statistics.quantiles(method="inclusive")` and R's type 7): the p-th percentile of n
    sorted latencies sits at rank (n - 1) * p / 100, interpolated linearly between
    neighbours. Only runs whose target succeeded and that carry a latency count; errored
    runs are left out (a fast failure is not a fast answer) and counted in the details.
    """
    limit = _check_threshold(threshold_s)

    def score(
        *, runs: Sequence[RunRecord] | None = None, examples: Sequence[Example] | None = None
    ) -> Score:
        if not runs:
            return Score(error="no runs: latency_p95 needs the experiment's runs")
        latencies: list[float] = []
        errored = 0
        for run in runs:
            if _target_error(run) is not None:
                errored += 1
                continue
            ms = _latency_ms(run)
            if ms is not None:
                latencies.append(ms / 1000.0)
        if not latencies:
            return Score(
                error=f"no latencies: none of the {len(runs)} runs succeeded with a latency_ms"
            )
        p50, p95 = (float(x) for x in np.percentile(latencies, [50, 95], method="linear"))
        max_s = max(latencies)
        n = len(latencies)
        passed = p95 <= limit
        verdict = "within" if passed else "over"
        comment = (
            f"p95 {p95:.3f}s {verdict} the {limit:g}s budget "
            f"(p50 {p50:.3f}s, max {max_s:.3f}s, n={n}"
            + (f", {errored} errored runs left out" if errored else "")
            + ")"
        )
        return Score(
            value=p95,
            passed=passed,
            comment=comment,
            details={"p50_s": p50, "p95_s": p95, "max_s": max_s, "n": n, "n_errored": errored},
        )

    return score
