"""Benchmark judge calibration: interval coverage by simulation, the sizing rule, and the
time to measure 10 judges x 2,000 labels with bootstrap intervals.

    uv run python benchmarks/calibration.py [--sims 2000] [--n 200] [--resamples 999]

* Coverage: `--sims` samples of `--n` items from a known judge-human table (agreement
  0.85, 25% human fails, true kappa 0.62); the share of 95% intervals that cover the truth,
  for agreement (Wilson) and kappa (the paired BCa bootstrap `calibrate report` gives, with
  `--resamples`; and the asymptotic one, for reference). Goal 0.95 ± 0.02.
* Sizing: the labels the sizing rule asks for (±5 points at 85%), checked by simulation:
  the mean Wilson half-width over `--sims` samples of that size.
* measure_s: `measure` from a warehouse file holding 10 judges x 2,000 labelled items (20%
  doubly labelled), with 2,000 bootstrap resamples each (the default). Goal under 5 s.

Prints a table, then one JSON line: ``{"ci_coverage_agreement", "ci_coverage_kappa",
"ci_coverage_kappa_asymptotic", "labels_needed_for_5pt_ci", "half_width_at_that_n",
"measure_s", …}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import bench_settings
from evalkeeper.analysis.agreement import (
    cohen_kappa,
    confusion,
    kappa_bootstrap_ci,
    labels_for_half_width,
    wilson,
)
from evalkeeper.calibration import measure
from evalkeeper.report.output import make_console
from evalkeeper.warehouse import Warehouse

# judge rows x human columns (pass, fail): agreement 0.85, humans fail 25%
TRUE_TABLE = np.array([[0.68, 0.08], [0.07, 0.17]])


def coverage(sims: int, n: int, resamples: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    p = TRUE_TABLE.ravel()
    true_agreement = float(np.trace(TRUE_TABLE))
    true_kappa = cohen_kappa(TRUE_TABLE * 1_000_000).value
    assert true_kappa is not None
    hit_a = hit_k = hit_k_asym = undefined = 0
    for s in range(sims):
        cells = rng.choice(4, size=n, p=p)
        judge, human = cells // 2, cells % 2
        k = int(np.sum(judge == human))
        lo, hi = wilson(k, n) or (0.0, 0.0)
        hit_a += lo <= true_agreement <= hi
        ci = kappa_bootstrap_ci(judge, human, 2, seed=seed + s, n_resamples=resamples)
        if ci is None:
            undefined += 1
        else:
            hit_k += ci[0] <= true_kappa <= ci[1]
        asym = cohen_kappa(confusion(judge, human, 2)).ci
        hit_k_asym += asym is not None and asym[0] <= true_kappa <= asym[1]
    return {
        "agreement": hit_a / sims,
        "kappa": hit_k / sims,
        "kappa_asymptotic": hit_k_asym / sims,
        "true_agreement": true_agreement,
        "true_kappa": true_kappa,
        "undefined": undefined,
    }


def half_width_by_simulation(n: int, p: float, sims: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    widths = []
    for k in rng.binomial(n, p, size=sims):
        lo, hi = wilson(int(k), n) or (0.0, 1.0)
        widths.append((hi - lo) / 2)
    w = np.array(widths)
    return float(w.mean()), float(np.mean(w <= 0.05))


def build_warehouse(path: Path, judges: int, items: int) -> None:
    """Scores of `judges` judges on `items` runs each, and labels: h1 on every item, h2 on
    every fifth; the judge agrees with h1 ~85% of the time (deterministic hashes)."""
    wh = Warehouse(path)
    with wh.connect(checkpoint=True) as con:
        con.execute(
            f"""
            INSERT INTO scores
            SELECT 'bench', 'ex-' || i, 0, 'judge_' || j, 'v1', 'h', 1.0,
                   (hash(i, j) % 100) >= 20 AS passed, 'reasoning ' || i, NULL, false,
                   NULL, TIMESTAMPTZ '2026-11-01 00:00:00+00', 'dv', 'cat-' || (i % 6),
                   'bench:target', NULL, NULL, 'bench-judge-2026-01-01', 'abc'
            FROM range({items}) r(i), range({judges}) q(j)
            """
        )
        label = """CASE WHEN (hash(i, j, 7) % 100) < 85 THEN
                        CASE WHEN (hash(i, j) % 100) >= 20 THEN 'pass' ELSE 'fail' END
                   ELSE CASE WHEN (hash(i, j) % 100) >= 20 THEN 'fail' ELSE 'pass' END END"""
        for annotator, where in (("h1", "true"), ("h2", "i % 5 = 0")):
            con.execute(
                f"""
                INSERT INTO human_labels
                SELECT 'it-' || i, 'judge_' || j, '{annotator}', 'bench', 'ex-' || i, 0,
                       {label}, TIMESTAMPTZ '2026-11-02 00:00:00+00', NULL, 'bench',
                       now()
                FROM range({items}) r(i), range({judges}) q(j)
                WHERE {where}
                """
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--n", type=int, default=200, help="items per simulated sample")
    parser.add_argument("--resamples", type=int, default=999, help="bootstrap, coverage runs")
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    console = make_console()

    t0 = time.perf_counter()
    cov = coverage(args.sims, args.n, args.resamples, args.seed)
    coverage_s = time.perf_counter() - t0
    needed = labels_for_half_width(0.85, 0.05)
    mean_hw, share_ok = half_width_by_simulation(needed, 0.85, args.sims, args.seed)

    tmp = Path(tempfile.mkdtemp(prefix="evalkeeper-calibration-"))
    try:
        build_warehouse(tmp / "warehouse.duckdb", judges=10, items=2000)
        settings = bench_settings(tmp)
        wh = Warehouse(settings.warehouse)
        t0 = time.perf_counter()
        cals = measure(wh, settings)
        measure_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert len(cals) == 10, f"measured {len(cals)} judges, expected 10"
    labelled = sum(c.n_items + c.n_ties for c in cals)

    from rich.table import Table

    t = Table(title="judge calibration")
    for col in ("measure", "value", "goal"):
        t.add_column(col)
    t.add_row(
        f"agreement CI coverage (Wilson; {args.sims} samples of {args.n})",
        f"{cov['agreement']:.3f}",
        "0.95 ± 0.02",
    )
    t.add_row(
        f"kappa CI coverage (paired BCa, {args.resamples} resamples; true {cov['true_kappa']:.3f})",
        f"{cov['kappa']:.3f}",
        "0.95 ± 0.02",
    )
    t.add_row("kappa CI coverage (asymptotic SE)", f"{cov['kappa_asymptotic']:.3f}", "reference")
    t.add_row("labels for ±5 points at 85% (sizing rule)", str(needed), "about 200")
    t.add_row(
        f"  simulated mean half-width at n={needed}",
        f"{mean_hw:.4f} ({share_ok:.0%} of samples ≤ 0.05)",
        "≤ 0.05",
    )
    t.add_row(
        f"measure: 10 judges x 2,000 labels ({labelled} items, bootstrap 2,000)",
        f"{measure_s:.2f} s",
        "< 5 s",
    )
    t.add_row("coverage simulation wall time", f"{coverage_s:.1f} s", "")
    console.print(t)
    print(
        json.dumps(
            {
                "ci_coverage_agreement": round(cov["agreement"], 4),
                "ci_coverage_kappa": round(cov["kappa"], 4),
                "ci_coverage_kappa_asymptotic": round(cov["kappa_asymptotic"], 4),
                "labels_needed_for_5pt_ci": needed,
                "half_width_at_that_n": round(mean_hw, 4),
                "measure_s": round(measure_s, 3),
                "sims": args.sims,
                "n_per_sim": args.n,
            }
        )
    )


if __name__ == "__main__":
    main()
