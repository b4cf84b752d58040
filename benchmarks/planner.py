"""Check `evalkeeper plan` by simulation: does the planned size reach the asked power?

    uv run python benchmarks/planner.py [--replicates 2000] [--seed 20261207]

For each scenario (pass rate, intraclass correlation, repetitions, drop), plans the number
of examples with `evalkeeper.analysis.planner.examples_needed` (power 0.8, alpha 0.05),
then draws `--replicates` comparisons of that size from the model (examples with
Beta-distributed pass probabilities, repetitions independent given them, the candidate
`drop` lower) and runs the *production* test and decision on each
(`stats.paired_comparison`, `stats.decide`): the share called a regression is the
simulated power. The last rows check the exact power at a fixed small size (a smoke
suite). Prints a table and ends with one JSON line:
``{"scenarios": [...], "max_abs_error": ..., "within_3_points": ..., "replicates": ...}``.
Goal: every planned size within ±3 points of the asked power.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from evalkeeper.analysis import planner as P  # noqa: E402

POWER, ALPHA = 0.8, 0.05
# (name, pass rate, icc, repetitions, drop, fixed size or None to plan it)
SCENARIOS: list[tuple[str, float, float, int, float, int | None]] = [
    ("typical, 1 rep", 0.80, 0.5, 1, 0.05, None),
    ("typical, 3 reps", 0.80, 0.5, 3, 0.05, None),
    ("reliable, 2 reps", 0.90, 0.2, 2, 0.05, None),
    ("all alike, 1 rep", 0.70, 0.0, 1, 0.10, None),
    ("near ceiling, 5 reps", 0.95, 0.7, 5, 0.03, None),
    ("hard set, 2 reps", 0.60, 0.3, 2, 0.05, None),
    ("smoke 60 x 1", 0.80, 0.5, 1, 0.10, 60),
    ("smoke 60 x 3", 0.80, 0.5, 3, 0.10, 60),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args()
    console = Console(width=140)
    table = Table(title=f"planned vs simulated power ({args.replicates} replicates each)")
    for col in ("scenario", "p", "icc", "reps", "drop", "examples", "planned", "simulated",
                "SE", "error", "s"):  # fmt: skip
        table.add_column(col, justify="right" if col != "scenario" else "left")
    results = []
    for i, (name, p, rho, reps, drop, fixed) in enumerate(SCENARIOS):
        model = P.ExampleModel(p, rho)
        probs = P.sign_probabilities(model, drop, reps)
        n = fixed or P.examples_needed(probs, power=POWER, alpha=ALPHA)
        assert n is not None
        planned = P.gate_power(n, probs, alpha=ALPHA)
        t0 = time.perf_counter()
        simulated = P.simulate_power(
            model,
            detect=drop,
            examples=n,
            repetitions=reps,
            alpha=ALPHA,
            tolerance=0.0,
            replicates=args.replicates,
            seed=args.seed + i,
        )
        elapsed = time.perf_counter() - t0
        se = math.sqrt(simulated * (1 - simulated) / args.replicates)
        error = simulated - planned
        results.append(
            {
                "scenario": name,
                "pass_rate": p,
                "icc": rho,
                "repetitions": reps,
                "drop": drop,
                "examples": n,
                "planned_power": round(planned, 4),
                "simulated_power": round(simulated, 4),
                "se": round(se, 4),
                "error": round(error, 4),
            }
        )
        table.add_row(
            name, f"{p:.2f}", f"{rho:.1f}", str(reps), f"{drop:.2f}", f"{n:,}",
            f"{planned:.3f}", f"{simulated:.3f}", f"{se:.3f}", f"{error:+.3f}", f"{elapsed:.1f}",
        )  # fmt: skip
    console.print(table)
    worst = max(abs(r["error"]) for r in results)  # type: ignore[arg-type]
    console.print(
        f"largest |simulated - planned| = {worst:.3f} (goal: within 0.03)", highlight=False
    )
    print(
        json.dumps(
            {
                "scenarios": results,
                "max_abs_error": round(worst, 4),
                "within_3_points": worst <= 0.03,
                "replicates": args.replicates,
            }
        )
    )


if __name__ == "__main__":
    main()
