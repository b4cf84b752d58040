"""What the experiment report reads beyond the comparison, aggregated in SQL: the runs of
the same suite and dataset before an experiment, each one's pass rate per evaluator with a
Wilson interval, the (example, evaluator) rows whose pass/fail flips between those runs,
the target's latency binned per side, and the judge calls with their tokens and cost.

Every function returns a summary (a row per run and evaluator, per bin, per judge, or the
top flipping rows), never the score rows themselves: 10,000 examples x 5 evaluators x 20
runs stay in DuckDB."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

# The runs of the candidate's suite and dataset that a history shows: the latest `limit`
# completed ones started no later than the candidate (the candidate itself whatever its
# status), and the baseline even when it is older than those (or of another suite, named
# by hand). Oldest first.
_RUNS_SQL = """
    WITH cand AS (SELECT suite, dataset, started_at FROM experiments WHERE experiment_id = $id)
    SELECT e.experiment_id, e.started_at, e.git_branch, e.git_commit, e.status
    FROM experiments e, cand c
    WHERE (e.suite = c.suite AND e.dataset = c.dataset AND e.status = 'completed'
           AND e.started_at <= c.started_at)
       OR e.experiment_id IN ($id, $baseline)
    QUALIFY e.experiment_id IN ($id, $baseline)
         OR row_number() OVER (
                ORDER BY e.experiment_id = $id DESC, e.started_at DESC, e.experiment_id DESC
            ) <= $limit
    ORDER BY e.started_at, e.experiment_id
"""


def history_runs(
    con: duckdb.DuckDBPyConnection, experiment_id: str, baseline_id: str, *, limit: int
) -> pl.DataFrame:
    """`experiment_id, started_at, git_branch, git_commit, status`: the last `limit` runs of
    the experiment's suite and dataset up to and including it, plus its baseline, oldest
    first."""
    return con.sql(
        _RUNS_SQL, params={"id": experiment_id, "baseline": baseline_id, "limit": limit}
    ).pl()


# Per run and evaluator: non-skipped rows, errors (left out of the rate), scored rows with
# a pass/fail and the passes; a 95% Wilson score interval (z = 1.959964), the rows taken as
# independent, as the `pass_rate_trend` view computes it.
_PASS_RATES_SQL = """
    WITH agg AS (
        SELECT experiment_id, evaluator,
               count(*) FILTER (WHERE error IS NOT NULL) AS n_errors,
               count(passed) FILTER (WHERE error IS NULL) AS n,
               count(*) FILTER (WHERE passed AND error IS NULL) AS n_passed
        FROM scores
        WHERE experiment_id IN (SELECT unnest($ids)) AND evaluator IN (SELECT unnest($evs))
          AND NOT skipped
        GROUP BY ALL
    ), rated AS (
        SELECT *, CAST(n_passed AS DOUBLE) / nullif(n, 0) AS p, 1.959963984540054 AS z FROM agg
    )
    SELECT experiment_id, evaluator, n, n_passed, n_errors, p AS pass_rate,
           (p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)))
             / (1 + z * z / n) AS ci_low,
           (p + z * z / (2 * n) + z * sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)))
             / (1 + z * z / n) AS ci_high
    FROM rated
    ORDER BY evaluator, experiment_id
"""


def pass_rates(
    con: duckdb.DuckDBPyConnection, experiment_ids: list[str], evaluators: list[str]
) -> pl.DataFrame:
    """`experiment_id, evaluator, n, n_passed, n_errors, pass_rate, ci_low, ci_high` per
    run and evaluator (`pass_rate` and the interval are null when no row has a pass/fail)."""
    return con.sql(_PASS_RATES_SQL, params={"ids": experiment_ids, "evs": evaluators}).pl()


# An (example, evaluator) passes in a run when every scored repetition passed; errored and
# skipped rows are not scored. A flip is a change between two consecutive runs (in
# `started_at` order) that both scored it. The rows that never both passed and failed are
# set aside first (one aggregate over 50,000 groups, not 1,000,000): 4x faster at 10,000
# examples x 5 evaluators x 20 runs (benchmarks/report.py).
_FLIPS_SQL = """
    WITH h AS (
        SELECT experiment_id,
               CAST(row_number() OVER (ORDER BY started_at, experiment_id) AS INTEGER) AS i
        FROM experiments WHERE experiment_id IN (SELECT unnest($ids))
    ), scored AS (
        SELECT s.example_id, s.evaluator, h.i, s.passed
        FROM scores s JOIN h USING (experiment_id)
        WHERE s.evaluator IN (SELECT unnest($evs)) AND NOT s.skipped AND s.error IS NULL
          AND s.passed IS NOT NULL
    ), mixed AS (  -- only a row that both passed and failed somewhere can flip
        SELECT example_id, evaluator FROM scored
        GROUP BY ALL HAVING bool_or(passed) AND NOT bool_and(passed)
    ), per AS (
        SELECT example_id, evaluator, i, bool_and(passed) AS passed
        FROM scored SEMI JOIN mixed USING (example_id, evaluator)
        GROUP BY ALL
    ), seqs AS (
        SELECT example_id, evaluator, list(i ORDER BY i) AS positions,
               list(passed ORDER BY i) AS passes
        FROM per GROUP BY ALL
    ), agg AS (
        SELECT example_id, evaluator,
               CAST(list_sum(list_transform(range(1, len(passes)),
                    lambda x: CAST(passes[x] <> passes[x + 1] AS INTEGER))) AS INTEGER) AS flips,
               len(passes) AS runs, passes[-1] AS last_passed, positions, passes
        FROM seqs
    )
    SELECT *, count(*) OVER () AS total_rows, sum(flips) OVER () AS total_flips
    FROM agg WHERE flips > 0
    ORDER BY flips DESC, runs DESC, example_id, evaluator
    LIMIT $limit
"""


@dataclass(frozen=True)
class Flips:
    top: pl.DataFrame
    """`example_id, evaluator, flips, runs, last_passed, positions, passes`: the most
    flipping first; `positions` are 1-based indexes into the runs (oldest first), `passes`
    the pass/fail at each."""
    total_rows: int
    """(example, evaluator) pairs that flipped at least once, all of them."""
    total_flips: int


def flips(
    con: duckdb.DuckDBPyConnection, experiment_ids: list[str], evaluators: list[str], *, limit: int
) -> Flips:
    """The (example, evaluator) rows whose pass/fail changed between consecutive runs of
    `experiment_ids`, the `limit` most flipping, and how many flipped in all."""
    top = con.sql(
        _FLIPS_SQL, params={"ids": experiment_ids, "evs": evaluators, "limit": limit}
    ).pl()
    if top.is_empty():
        return Flips(top=top.drop("total_rows", "total_flips"), total_rows=0, total_flips=0)
    return Flips(
        top=top.drop("total_rows", "total_flips"),
        total_rows=int(top["total_rows"][0]),
        total_flips=int(top["total_flips"][0]),
    )


# The target's latency in seconds over the non-errored runs of both sides, in `$bins` equal
# bins from 0 to the larger of the 99.5th percentile and 1.25 x the budget; the last bin
# also holds everything above (so one slow outlier does not squash the picture).
_LATENCY_SQL = """
    WITH r AS (
        SELECT experiment_id = $cand AS cand, latency_ms / 1000.0 AS s FROM runs
        WHERE experiment_id IN ($cand, $base) AND error IS NULL AND latency_ms IS NOT NULL
    ), bounds AS (
        SELECT greatest(quantile_cont(s, 0.995), $budget * 1.25) / $bins AS width FROM r
    )
    SELECT cand, CAST(least(floor(s / width), $bins - 1) AS INTEGER) AS bin, count(*) AS n,
           any_value(width) AS width
    FROM r, bounds
    GROUP BY ALL ORDER BY cand, bin
"""

_LATENCY_SIDES_SQL = """
    SELECT experiment_id = $cand AS cand,
           count(*) FILTER (WHERE error IS NULL AND latency_ms IS NOT NULL) AS n,
           count(*) FILTER (WHERE error IS NOT NULL) AS errors,
           count(*) FILTER (WHERE error IS NULL AND latency_ms IS NULL) AS unmeasured,
           max(latency_ms) FILTER (WHERE error IS NULL) / 1000.0 AS max_s
    FROM runs WHERE experiment_id IN ($cand, $base)
    GROUP BY ALL
"""


@dataclass(frozen=True)
class LatencySideCounts:
    n: int
    """Non-errored runs with a latency (what the histogram and the percentiles count)."""
    errors: int
    """Errored runs, left out of the latency."""
    unmeasured: int
    """Non-errored runs without a latency."""
    max_s: float | None


@dataclass(frozen=True)
class LatencyBins:
    bins: pl.DataFrame
    """`cand, bin, n`: the count of runs per side and bin (only non-empty bins)."""
    width_s: float
    """Every bin's width in seconds; bin i spans [i * width, (i + 1) * width)."""
    n_bins: int
    """The last bin (`n_bins - 1`) also holds every latency above its start."""
    candidate: LatencySideCounts
    baseline: LatencySideCounts


def latency_bins(
    con: duckdb.DuckDBPyConnection,
    candidate_id: str,
    baseline_id: str,
    *,
    budget_s: float,
    n_bins: int = 40,
) -> LatencyBins:
    """Both sides' target latency binned in SQL, with their run counts."""
    params = {"cand": candidate_id, "base": baseline_id}
    frame = con.sql(_LATENCY_SQL, params={**params, "budget": budget_s, "bins": n_bins}).pl()
    sides = {
        bool(cand): LatencySideCounts(int(n), int(err), int(unm), max_s)
        for cand, n, err, unm, max_s in con.execute(_LATENCY_SIDES_SQL, params).fetchall()
    }
    empty = LatencySideCounts(0, 0, 0, None)
    width = float(frame["width"][0]) if frame.height else budget_s * 1.25 / n_bins
    return LatencyBins(
        bins=frame.drop("width"),
        width_s=width,
        n_bins=n_bins,
        candidate=sides.get(True, empty),
        baseline=sides.get(False, empty),
    )


# Per experiment and judge: every vote row, the cached ones (answered from `judge_cache`
# or an identical call in flight: no request made), the fresh ones (a request to the
# model), the errored ones; tokens and cost of the fresh votes only (a cached vote carries
# the tokens and cost of the call that first produced it); fresh votes without a cost
# (a model with no known price, or a call that failed before any usage was reported).
_JUDGE_USAGE_SQL = """
    SELECT experiment_id, judge, string_agg(DISTINCT model, ', ' ORDER BY model) AS models,
           count(*) AS votes,
           count(*) FILTER (WHERE NOT cached) AS fresh,
           count(*) FILTER (WHERE cached) AS cached,
           count(error) AS errors,
           CAST(coalesce(sum(prompt_tokens) FILTER (WHERE NOT cached), 0) AS BIGINT)
             AS prompt_tokens,
           CAST(coalesce(sum(completion_tokens) FILTER (WHERE NOT cached), 0) AS BIGINT)
             AS completion_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE NOT cached), 0) AS cost_usd,
           count(*) FILTER (WHERE NOT cached AND cost_usd IS NULL) AS unpriced
    FROM judge_votes
    WHERE experiment_id IN (SELECT unnest($ids))
    GROUP BY ALL ORDER BY experiment_id, judge
"""


def judge_usage(con: duckdb.DuckDBPyConnection, experiment_ids: list[str]) -> pl.DataFrame:
    """`experiment_id, judge, models, votes, fresh, cached, errors, prompt_tokens,
    completion_tokens, cost_usd, unpriced` per experiment and judge; `cost_usd` sums the
    fresh votes with a known cost, `unpriced` counts those without one."""
    return con.sql(_JUDGE_USAGE_SQL, params={"ids": experiment_ids}).pl()
