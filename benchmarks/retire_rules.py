"""Benchmark the retire rules on a set that is 90% passes: which judges each rule retires,
and the constant-answer baseline's interval coverage, by simulation.

    uv run python benchmarks/retire_rules.py [--sims 300] [--n 200] [--resamples 999]

Each simulation labels `--n` items (each fails with probability 0.10: the truth, labelled
by one annotator, a fifth of the items by a second who agrees on 90% of them) and scripts
four judges by their true-pass and true-fail rates (TPR, TNR):

* constant: always "pass" (TPR 1, TNR 0): agreement 0.90, kappa 0;
* lenient: TPR 0.98, TNR 0.30 (lets most failures through): agreement ~0.91, kappa ~0.35;
* good: TPR 0.97, TNR 0.85: agreement ~0.96, kappa ~0.78;
* poor: TPR 0.75, TNR 0.60: agreement ~0.74, kappa ~0.19.

Each judge is measured by `evalkeeper.calibration.measure.measure_one` (the code
`calibrate report` runs: Wilson, the paired BCa bootstrap with `--resamples`, AC1, the
ceiling, the baseline) and decided under each rule: `agreement` (the default, with the
kappa floor 0.40), `kappa` (bar 0.60), `kappa` relative (0.75 x the humans' kappa), `ac1`
(bar 0.60). The table gives the share of simulations retired, at risk and healthy, and the
share where the agreement does not beat the constant-answer baseline. Coverage: the share
of simulations whose baseline Wilson interval covers the true 0.90 (goal 0.95 ± 0.02).

Prints a table, then one JSON line: ``{"retired": {judge: {rule: share}}, "at_risk": …,
"not_beaten": {judge: share}, "baseline_coverage", "sims", "n", "seconds"}``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

import benchmarks._common  # noqa: F401  (the import path)
from evalkeeper.calibration.measure import measure_one
from evalkeeper.calibration.status import decide
from evalkeeper.report.output import make_console
from evalkeeper.settings import Settings

JUDGES = {"constant": (1.0, 0.0), "lenient": (0.98, 0.30), "good": (0.97, 0.85),
          "poor": (0.75, 0.60)}  # fmt: skip
RULES = {
    "agreement": {},
    "kappa": {"calibration_rule": "kappa"},
    "kappa relative": {"calibration_rule": "kappa", "calibration_ceiling_share": 0.75},
    "ac1": {"calibration_rule": "ac1"},
}
FAIL = 0.10


def _rows(truth: np.ndarray, verdict: np.ndarray, second: np.ndarray) -> list[dict[str, Any]]:
    label = {0: "pass", 1: "fail"}
    rows = []
    for i, (t, v) in enumerate(zip(truth, verdict, strict=True)):
        base = {
            "item_id": f"it-{i:05d}", "experiment_id": "e", "example_id": f"ex-{i}",
            "repetition": 0, "category": "c", "comment": None, "verdict": label[int(v)],
        }  # fmt: skip
        rows.append({**base, "annotator": "h1", "label": label[int(t)]})
        if i % 5 == 0:
            rows.append({**base, "annotator": "h2", "label": label[int(second[i])]})
    return rows


def simulate(sims: int, n: int, resamples: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    settings = {r: Settings(calibration_bootstrap_resamples=resamples, seed=seed, **kw)
                for r, kw in RULES.items()}  # fmt: skip
    counts = {j: {r: {"retired": 0, "at_risk": 0, "healthy": 0} for r in RULES} for j in JUDGES}
    not_beaten = dict.fromkeys(JUDGES, 0)
    covered = 0
    for _ in range(sims):
        truth = (rng.random(n) < FAIL).astype(int)  # 1 = fail
        # the second annotator (every fifth item) agrees with the first on 90%: a
        # disagreement is a tie, left out of the judge's measures, and lowers the ceiling
        second = np.where(rng.random(n) < 0.9, truth, 1 - truth)
        first = True
        for judge, (tpr, tnr) in JUDGES.items():
            u = rng.random(n)
            verdict = np.where(truth == 0, (u >= tpr).astype(int), (u < tnr).astype(int))
            m = measure_one(
                _rows(truth, verdict, second), settings["agreement"], judge=judge,
                version="v", model="m", quarter="2026Q4",
            )  # fmt: skip
            if first:
                lo, hi = m.baseline_ci or (0.0, 0.0)
                covered += lo <= 1 - FAIL <= hi
                first = False
            not_beaten[judge] += m.beats_baseline is False
            for rule, s in settings.items():
                status, _, _ = decide(m, s)
                if status in counts[judge][rule]:
                    counts[judge][rule][status] += 1
    share = {j: {r: {k: round(v / sims, 3) for k, v in c.items()} for r, c in rules.items()}
             for j, rules in counts.items()}  # fmt: skip
    return {
        "share": share,
        "not_beaten": {j: round(v / sims, 3) for j, v in not_beaten.items()},
        "baseline_coverage": covered / sims,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sims", type=int, default=300)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    console = make_console()
    started = time.perf_counter()
    out = simulate(args.sims, args.n, args.resamples, args.seed)
    seconds = time.perf_counter() - started

    from rich.table import Table

    t = Table(title=f"retire rules on a 90%-pass set: {args.sims} simulations of {args.n} items")
    t.add_column("judge (TPR/TNR)")
    for rule in RULES:
        t.add_column(f"{rule}: retired / at risk")
    t.add_column("not beating the baseline")
    for judge, (tpr, tnr) in JUDGES.items():
        cells = [
            f"{out['share'][judge][r]['retired']:.2f} / {out['share'][judge][r]['at_risk']:.2f}"
            for r in RULES
        ]
        t.add_row(f"{judge} ({tpr}/{tnr})", *cells, f"{out['not_beaten'][judge]:.2f}")
    console.print(t)
    console.print(
        f"baseline 95% interval covers 0.90 in {out['baseline_coverage']:.3f} of simulations"
    )
    retired = {j: {r: c["retired"] for r, c in rules.items()} for j, rules in out["share"].items()}
    at_risk = {j: {r: c["at_risk"] for r, c in rules.items()} for j, rules in out["share"].items()}
    print(
        json.dumps(
            {
                "retired": retired,
                "at_risk": at_risk,
                "not_beaten": out["not_beaten"],
                "baseline_coverage": round(out["baseline_coverage"], 4),
                "sims": args.sims,
                "n": args.n,
                "seconds": round(seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
