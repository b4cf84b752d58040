"""Benchmark the post-deploy monitor.

    uv run python benchmarks/monitor.py [--windows 2000] [--baseline 5000] [--seed 1]

The script is a list of sections (`SECTIONS`); each prints its own table and returns its
JSON keys, and the script ends with one JSON line merging every section's keys.

**statistics**: simulated monitoring windows decided by the production code
(`evalkeeper.monitor.decision.decide`, one evaluator, alpha 0.05): a baseline of
`--baseline` traces at a 5% flag rate, then 96 looks (24 h of 15-minute ticks) of 50 new
traces each (200 sampled traces an hour). Unchanged windows (5% after the deploy) give
`false_rollback_rate` (goal: at or under alpha); rises to 10% and to 7.5% give
`detection_rate_*` and `median_traces_to_detect_*` (goal: most windows detected within
the 24 h). The same windows (the same random draws) are decided, side by side, by

* a fixed-threshold alert, as trace tools and rollout controllers run it: alert when the
  flag rate of the last hour (4 ticks) is at least 1.5 x (or 2 x) the baseline's rate;
* a pooled two-proportion z-test of the cumulative window against the baseline,
  repeated at every look, one-sided at alpha (z >= 1.645).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `uv run python benchmarks/monitor.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

from benchmarks._common import table  # noqa: E402
from evalkeeper.monitor.decision import EvaluatorCounts, MonitorPolicy, decide  # noqa: E402

ALPHA = 0.05
BASE_RATE = 0.05
LOOKS = 96
PER_LOOK = 50  # 200 sampled traces an hour, a look every 15 minutes
FIXED_FACTOR = 1.5
FIXED_LOOKS = 4  # the fixed-threshold alert's window: the last hour
Z_CRIT = 1.6448536269514722  # one-sided 5%

Section = Callable[[argparse.Namespace], dict[str, Any]]
SECTIONS: list[Section] = []


def section(fn: Section) -> Section:
    """Add a section to the script (they run in the order they are defined)."""
    SECTIONS.append(fn)
    return fn


# -- statistics -----------------------------------------------------------------------------


def first_look(hits: np.ndarray) -> np.ndarray:
    """Per window, the first look (0-based) at which `hits` is true, or -1."""
    any_hit = hits.any(axis=1)
    return np.where(any_hit, hits.argmax(axis=1), -1)


def sequential_looks(
    x0: np.ndarray, n0: int, flags: np.ndarray, policy: MonitorPolicy
) -> np.ndarray:
    """The production decision at every look until it rolls back: the first rollback look."""
    out = np.full(len(x0), -1)
    for w in range(len(x0)):
        for look in range(LOOKS):
            counts = EvaluatorCounts(
                "flagged", n0, int(x0[w]), 0, PER_LOOK * (look + 1), int(flags[w, look]), 0
            )
            if decide([counts], policy, final=look == LOOKS - 1).decision == "rollback":
                out[w] = look
                break
    return out


def fixed_threshold_looks(
    x0: np.ndarray, n0: int, per_look: np.ndarray, factor: float = FIXED_FACTOR
) -> np.ndarray:
    """Alert when the last hour's rate is >= factor x the baseline rate (from the first hour)."""
    kernel = np.ones(FIXED_LOOKS)
    hour = np.array([np.convolve(row, kernel)[: row.size] for row in per_look])
    hour_rate = hour / (PER_LOOK * FIXED_LOOKS)
    hits = hour_rate >= factor * (x0 / n0)[:, None]
    hits[:, : FIXED_LOOKS - 1] = False  # the first full hour
    return first_look(hits)


def z_test_looks(x0: np.ndarray, n0: int, flags: np.ndarray) -> np.ndarray:
    """A pooled two-proportion z-test (window vs baseline) at every look, one-sided."""
    n = PER_LOOK * np.arange(1, LOOKS + 1)[None, :]
    p1, p2 = flags / n, (x0 / n0)[:, None]
    pooled = (flags + x0[:, None]) / (n + n0)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / se, 0.0)
    return first_look(z >= Z_CRIT)


def summarise(looks: np.ndarray) -> tuple[float, float | None]:
    """(share of windows that fired, median traces seen when they fired)."""
    fired = looks[looks >= 0]
    rate = fired.size / looks.size
    median = statistics.median(PER_LOOK * (fired + 1)) if fired.size else None
    return rate, (None if median is None else float(median))


@section
def monitor_statistics(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    policy = MonitorPolicy(alpha=ALPHA)
    methods = {
        "sequential (evalkeeper)": lambda x0, fl, per: sequential_looks(
            x0, args.baseline, fl, policy
        ),
        "fixed threshold 1.5x, 1 h": lambda x0, fl, per: fixed_threshold_looks(
            x0, args.baseline, per
        ),
        "fixed threshold 2x, 1 h": lambda x0, fl, per: fixed_threshold_looks(
            x0, args.baseline, per, 2.0
        ),
        "z-test at every look": lambda x0, fl, per: z_test_looks(x0, args.baseline, fl),
    }
    keys = {
        "sequential (evalkeeper)": "",
        "fixed threshold 1.5x, 1 h": "fixed_threshold_",
        "fixed threshold 2x, 1 h": "fixed_threshold_2x_",
        "z-test at every look": "z_test_",
    }
    scenarios = {"unchanged 5%": BASE_RATE, "5% -> 10%": 0.10, "5% -> 7.5%": 0.075}
    suffix = {"5% -> 10%": "10", "5% -> 7.5%": "7_5"}
    rows = []
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    for label, rate in scenarios.items():
        x0 = rng.binomial(args.baseline, BASE_RATE, args.windows)
        per_look = rng.binomial(PER_LOOK, rate, (args.windows, LOOKS))
        flags = per_look.cumsum(axis=1)
        for method, run in methods.items():
            fired, median = summarise(run(x0, flags, per_look))
            hours = None if median is None else median / (PER_LOOK * 4)
            rows.append((method, label, fired, "-" if median is None else median,
                         "-" if hours is None else hours))  # fmt: skip
            key = keys[method]
            if rate == BASE_RATE:
                out[f"{key}false_rollback_rate" if not key else f"{key}false_alarm_rate"] = fired
            else:
                out[f"{key}detection_rate_{suffix[label]}"] = fired
                out[f"{key}median_traces_to_detect_{suffix[label]}"] = median
    elapsed = time.perf_counter() - t0
    print(
        f"monitor statistics: {args.windows:,} windows per scenario, baseline {args.baseline:,} "
        f"traces at 5%, {LOOKS} looks of {PER_LOOK} traces, alpha {ALPHA} ({elapsed:.1f} s)"
    )
    print(table(("method", "scenario", "fired", "median traces", "median hours"), rows))
    print()
    out.update(alpha=ALPHA, windows=args.windows, baseline_traces=args.baseline, looks=LOOKS)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000, help="Windows per scenario.")
    parser.add_argument("--baseline", type=int, default=5000, help="Baseline traces.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    merged: dict[str, Any] = {}
    for run in SECTIONS:
        merged.update(run(args))
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                      for k, v in merged.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
