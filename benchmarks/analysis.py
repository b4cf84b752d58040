"""Benchmark the analysis: `compare` on two large experiments, and the `pass_rate_trend` view.

    uv run python benchmarks/analysis.py [--path DIR [--keep] [--reuse]] [--days 365]

Builds a warehouse with DuckDB SQL alone (`range()` cross joins, deterministic `hash()`
outcomes; no Python loops over rows):

* one year of nightly runs: 365 nights x 2 suites x 2,000 examples x 5 evaluators
  (~7.3 M score rows, plus their runs), for the trend view;
* two experiments of 10,000 examples x 5 evaluators x 3 repetitions (300,000 score rows),
  the candidate with a drop in one category and a few critical incident rows failing again,
  for `compare`.

Then times `compare` (from the warehouse file, as the CLI does) and a full read of
`pass_rate_trend`, prints a table, and ends with one JSON line:
``{"compare_s": …, "trend_s": …, "score_rows": …, "warehouse_mib": …}``. Goals: both under 1 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from evalkeeper.analysis import compare
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, save_comparison

T = TypeVar("T")
EVALUATORS = 5
CATEGORIES = ("booking", "cancellation", "policy", "billing", "small_talk", "escalation")

NIGHTLY_SQL = """
CREATE TEMP TABLE nights AS
SELECT 'nightly-' || s.suite || '-' || lpad(CAST(d AS VARCHAR), 3, '0') AS experiment_id,
       s.suite, d AS night,
       TIMESTAMPTZ '2025-11-01 02:00:00+00' + d * INTERVAL 1 DAY AS started_at
FROM range({days}) t(d), (VALUES ('full'), ('smoke')) s(suite);

INSERT INTO experiments
SELECT experiment_id, suite, 'bench', 'v1', 'bench.agent:run', 'callable',
       'agent-' || (night // 30), 'model-2025-08-06', 'c' || night, 'main', '[]', 1, '{{}}',
       {examples}, 'completed', started_at, started_at + INTERVAL 20 MINUTE
FROM nights;

INSERT INTO runs
SELECT n.experiment_id, 'ex-' || lpad(CAST(e AS VARCHAR), 5, '0'), 0,
       '{{"reply":"ok"}}', 200 + hash(n.night, e, 'lat') % 900, NULL, 1, n.started_at
FROM nights n, range({examples}) t(e);

INSERT INTO scores
SELECT n.experiment_id, 'ex-' || lpad(CAST(e AS VARCHAR), 5, '0'), 0, 'ev' || k, '1', 'h',
       CASE WHEN hash(n.night, e, k) % 1000 < 5 THEN NULL
            ELSE CAST(hash(n.night, e, k, 'v') % 1000 AS DOUBLE) / 1000 END,
       CASE WHEN hash(n.night, e, k) % 1000 < 5 THEN NULL
            ELSE hash(n.night, e, k, 'p') % 1000 < 700 + 10 * k + n.night // 73 END,
       NULL,
       CASE WHEN hash(n.night, e, k) % 1000 < 5 THEN 'judge timeout' END,
       false, NULL, n.started_at, 'v1',
       ['booking', 'cancellation', 'policy', 'billing', 'small_talk', 'escalation'][1 + e % 6],
       'bench.agent:run', 'agent-' || (n.night // 30), 'model-2025-08-06', NULL, 'c' || n.night
FROM nights n, range({examples}) t(e), range({evaluators}) u(k);
"""

PAIR_SQL = """
INSERT INTO examples
SELECT 'bench', 'v2', 'big-' || lpad(CAST(e AS VARCHAR), 5, '0'), 'h' || e,
       ['booking', 'cancellation', 'policy', 'billing', 'small_talk', 'escalation'][1 + e % 6],
       e % 500 = 0, CASE WHEN e % 1000 = 0 THEN 'INC-' || e END, '{{}}', '{{}}', '{{}}'
FROM range({examples}) t(e);

INSERT INTO experiments VALUES
  ('pair-base', 'full', 'bench', 'v2', 'bench.agent:run', 'callable', 'agent-1', 'm', 'c1',
   'main', '[]', {reps}, '{{}}', {examples}, 'completed',
   TIMESTAMPTZ '2026-11-01 02:00:00+00', TIMESTAMPTZ '2026-11-01 03:00:00+00'),
  ('pair-cand', 'full', 'bench', 'v2', 'bench.agent:run', 'callable', 'agent-2', 'm', 'c2',
   'feature', '[]', {reps}, '{{}}', {examples}, 'completed',
   TIMESTAMPTZ '2026-11-02 02:00:00+00', TIMESTAMPTZ '2026-11-02 03:00:00+00');

CREATE TEMP TABLE pair AS
SELECT x.exp, e, r, (x.exp = 'pair-cand') AS cand
FROM (VALUES ('pair-base'), ('pair-cand')) x(exp), range({examples}) t(e), range({reps}) u(r);

INSERT INTO runs
SELECT exp, 'big-' || lpad(CAST(e AS VARCHAR), 5, '0'), r, '{{"reply":"answer"}}',
       CASE WHEN cand THEN 260 ELSE 240 END + hash(e, r, exp) % 800, NULL, 1,
       TIMESTAMPTZ '2026-11-01 02:00:00+00'
FROM pair;

-- An example's pass probability is fixed (hash of the example), repetitions vary around it;
-- the candidate loses 15 points on 'billing' (e % 6 = 3) for evaluator ev0 and fails the
-- critical incident examples (e % 1000 = 0) on ev1.
INSERT INTO scores
SELECT exp, 'big-' || lpad(CAST(e AS VARCHAR), 5, '0'), r, 'ev' || k, '1', 'h',
       NULL,
       CASE WHEN hash(e, r, k, exp, 'err') % 1000 < 3 THEN NULL
            WHEN cand AND k = 1 AND e % 1000 = 0 THEN false
            ELSE hash(e, r, k, exp) % 100
                 < (hash(e, k) % 60 + 40) - CASE WHEN cand AND k = 0 AND e % 6 = 3 THEN 15 ELSE 0 END
       END,
       CASE WHEN NOT (cand AND k = 1 AND e % 1000 = 0) THEN 'ok' ELSE 'wrong slot' END,
       CASE WHEN hash(e, r, k, exp, 'err') % 1000 < 3 THEN 'judge timeout' END,
       false, NULL, TIMESTAMPTZ '2026-11-01 02:00:00+00', 'v2',
       ['booking', 'cancellation', 'policy', 'billing', 'small_talk', 'escalation'][1 + e % 6],
       'bench.agent:run', NULL, NULL, NULL, NULL
FROM pair, range({evaluators}) v(k);

-- the critical incident rows pass in the baseline
UPDATE scores SET passed = true, error = NULL
WHERE experiment_id = 'pair-base' AND evaluator = 'ev1' AND example_id IN (
    SELECT 'big-' || lpad(CAST(e AS VARCHAR), 5, '0') FROM range(0, {examples}, 1000) t(e));
"""


def build(
    path: Path, *, days: int, nightly_examples: int, pair_examples: int, reps: int
) -> dict[str, float]:
    wh = Warehouse(path)
    timings: dict[str, float] = {}
    with wh.connect() as con:  # creates the schema (migrations + views)
        t = time.perf_counter()
        con.execute(NIGHTLY_SQL.format(days=days, examples=nightly_examples, evaluators=EVALUATORS))
        timings["build nightly year"] = time.perf_counter() - t
        t = time.perf_counter()
        con.execute(PAIR_SQL.format(examples=pair_examples, reps=reps, evaluators=EVALUATORS))
        timings["build compare pair"] = time.perf_counter() - t
        con.execute("CHECKPOINT")
    return timings


def timed(fn: Callable[[], T], repeat: int) -> tuple[T, list[float]]:
    """The last result of `fn` and the wall time of each of `repeat` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return result, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--path", type=Path, help="directory for the warehouse (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the warehouse file")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--nightly-examples", type=int, default=2000)
    ap.add_argument("--pair-examples", type=int, default=10_000)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each query")
    ap.add_argument(
        "--reuse", action="store_true", help="time an existing --path warehouse, do not rebuild"
    )
    args = ap.parse_args()

    from benchmarks._common import bench_warehouse

    tmp, path, reuse = bench_warehouse(args.path, args.reuse)
    console = Console(width=120)
    try:
        build_t = (
            {}
            if reuse
            else build(
                path,
                days=args.days,
                nightly_examples=args.nightly_examples,
                pair_examples=args.pair_examples,
                reps=args.repetitions,
            )
        )
        settings = Settings(warehouse=path, _env_file=None)
        wh = Warehouse(path)
        score_rows, run_rows = wh.rows(
            "SELECT (SELECT count(*) FROM scores), (SELECT count(*) FROM runs)"
        )[0]
        pair_rows = wh.rows(
            "SELECT count(*) FROM scores WHERE experiment_id IN ('pair-base', 'pair-cand')"
        )[0][0]
        warehouse_mib = path.stat().st_size / 2**20

        # compare: a fresh Warehouse object each time, as a CLI invocation would have
        comparison, compare_times = timed(
            lambda: compare(Warehouse(path), "pair-cand", "pair-base", settings), args.repeat
        )
        trend, trend_times = timed(
            lambda: Warehouse(path).query("SELECT * FROM pass_rate_trend"), args.repeat
        )
        one_trend, one_trend_times = timed(
            lambda: Warehouse(path).query(
                "SELECT * FROM pass_rate_trend WHERE suite = 'full' AND evaluator = 'ev0' "
                "ORDER BY started_at"
            ),
            args.repeat,
        )
        auto, auto_times = timed(
            lambda: compare(Warehouse(path), f"nightly-full-{args.days - 1:03d}", "auto", settings),
            args.repeat,
        )
        _, save_times = timed(lambda: save_comparison(Warehouse(path), comparison), 1)

        compare_s = statistics.median(compare_times)
        trend_s = statistics.median(trend_times)
        table = Table(title="evalkeeper analysis benchmark")
        for col in ("what", "size", "median s", "min s", "max s", "goal"):
            table.add_column(col, justify="left" if col in ("what", "size") else "right")
        for name, secs in build_t.items():
            table.add_row(name, "", f"{secs:.2f}", "", "", "")
        table.add_row(
            "compare (10k x 5 ev x 3 rep, 2 exps)",
            f"{pair_rows:,} score rows, {len(comparison.cells)} cells",
            f"{compare_s:.3f}",
            f"{min(compare_times):.3f}",
            f"{max(compare_times):.3f}",
            "< 1 s",
        )
        table.add_row(
            "compare, auto baseline (nightly 2k x 5)",
            f"{len(auto.cells)} cells",
            f"{statistics.median(auto_times):.3f}",
            f"{min(auto_times):.3f}",
            f"{max(auto_times):.3f}",
            "",
        )
        table.add_row(
            "pass_rate_trend, whole view",
            f"{trend.height:,} rows from {score_rows:,} score rows",
            f"{trend_s:.3f}",
            f"{min(trend_times):.3f}",
            f"{max(trend_times):.3f}",
            "< 1 s",
        )
        table.add_row(
            "pass_rate_trend, one suite x evaluator",
            f"{one_trend.height:,} rows",
            f"{statistics.median(one_trend_times):.3f}",
            f"{min(one_trend_times):.3f}",
            f"{max(one_trend_times):.3f}",
            "",
        )
        table.add_row(
            "save_comparison",
            f"{len(comparison.cells) + 1 + len(comparison.row_regressions)} rows",
            f"{save_times[0]:.3f}",
            "",
            "",
            "",
        )
        table.add_row(
            "warehouse on disk",
            f"{score_rows:,} scores, {run_rows:,} runs",
            f"{warehouse_mib:.1f} MiB",
            "",
            "",
            "",
        )
        console.print(table)
        console.print(
            f"compare verdict: [bold]{comparison.verdict}[/] — "
            + "; ".join(comparison.reasons[:4])
            + (" …" if len(comparison.reasons) > 4 else ""),
            highlight=False,
        )
        print(
            json.dumps(
                {
                    "compare_s": round(compare_s, 4),
                    "trend_s": round(trend_s, 4),
                    "score_rows": int(score_rows),
                    "warehouse_mib": round(warehouse_mib, 1),
                }
            )
        )
    finally:
        if args.path is None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.path is None:
            console.print(f"warehouse kept: {path}", highlight=False)


if __name__ == "__main__":
    main()
