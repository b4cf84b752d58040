"""Benchmark the flaky-row classification on simulated histories with known flip rates.

    uv run python benchmarks/flaky.py [--seeds 20000] [--seed 1]

A row whose true pass probability is p is observed n times (runs x repetitions of one pin);
its passes are Binomial(n, p), drawn `--seeds` times for each p and n. Each draw is
classified by the production code (`evalkeeper.analysis.stability.classify`, the default
settings: Wilson at 95%, ε = 0.10). The table gives, per (p, n), the share of each class,
and the coverage of the Wilson interval (the share of draws whose interval holds p).

What to read in it: a deterministic row (p = 0 or 1) is never flaky, and is stable from
n = 35 on; a row flipping more than ε of the time (0.2 <= p <= 0.8) is flaky as soon as
both outcomes are seen and is almost never called stable; a row flipping rarely (p = 0.97,
0.99) is flaky when one of its rare failures was seen and the interval cannot yet prove the
rate is under ε, stable once it can. Then the guard's default rule, 3 of 3: the chance that
a flaky row with pass rate p fails all three repetitions of a candidate that did not change
it (a false gate) is (1 - p)^3, measured here on the same draws.

Ends with one JSON line: `misclassified_deterministic` (flaky calls of p in {0, 1}; must be
0), `stable_calls_of_flipping_rows` (stable calls of 0.2 <= p <= 0.8, max over n >= 9;
should be at most (1 - confidence) / 2), `flaky_detection` per (p, n), `wilson_coverage_min`,
and `false_gate_3_of_3` per p.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evalkeeper.analysis.stability import STABILITIES, classify, wilson

PS = (1.0, 0.99, 0.97, 0.8, 0.5, 0.2, 0.0)
NS = (3, 9, 18, 36, 72, 150)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    # the class and interval of every possible count, once per n (the production code)
    table = {
        n: [(classify(k, n, confidence=0.95, tolerance=0.10), wilson(k, n)) for k in range(n + 1)]
        for n in NS
    }
    print(f"{'p':>5} {'n':>4} " + " ".join(f"{s:>12}" for s in STABILITIES) + f" {'coverage':>9}")
    detection: dict[str, float] = {}
    stable_flipping = 0.0
    deterministic_flaky = 0
    coverage_min = 1.0
    for p in PS:
        for n in NS:
            ks = rng.binomial(n, p, size=args.seeds)
            classes = [table[n][k][0] for k in ks]
            shares = {s: classes.count(s) / args.seeds for s in STABILITIES}
            covered = np.mean([table[n][k][1][0] <= p <= table[n][k][1][1] for k in ks])
            print(
                f"{p:>5} {n:>4} "
                + " ".join(f"{shares[s]:>12.4f}" for s in STABILITIES)
                + f" {covered:>9.4f}"
            )
            if p in (0.0, 1.0):
                deterministic_flaky += classes.count("flaky")
            else:
                coverage_min = min(coverage_min, float(covered))
                detection[f"{p}@{n}"] = round(shares["flaky"], 4)
            if 0.2 <= p <= 0.8 and n >= 9:
                stable_flipping = max(
                    stable_flipping, shares["stable_pass"] + shares["stable_fail"]
                )
    false_gate = {}
    print("\nthe guard's 3-of-3 rule: a flaky row that did not change fails 3 of 3 by chance")
    for p in (0.97, 0.8, 0.5, 0.2):
        fails = rng.random((args.seeds, 3)) >= p
        rate = float(np.mean(fails.all(axis=1)))
        false_gate[str(p)] = round(rate, 4)
        print(f"  pass rate {p:>4}: {rate:.4f} (exact (1 - p)^3 = {(1 - p) ** 3:.4f})")
    print(f"\n{time.perf_counter() - started:.1f} s")
    print(
        json.dumps(
            {
                "seeds": args.seeds,
                "misclassified_deterministic": deterministic_flaky,
                "stable_calls_of_flipping_rows": round(stable_flipping, 4),
                "wilson_coverage_min": round(coverage_min, 4),
                "flaky_detection": detection,
                "false_gate_3_of_3": false_gate,
            }
        )
    )


if __name__ == "__main__":
    main()
