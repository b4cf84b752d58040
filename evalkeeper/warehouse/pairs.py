"""What a comparison of two experiments reads from the warehouse, as frames.

* ``load_pair(con, candidate, baseline) -> PairFrames`` — given both `experiments` rows
  (`queries.experiment_row`): the evaluators of each side with their versions, the paired
  per-(evaluator, example) sums, the runs' latencies, the guarded examples of both dataset
  versions, the candidate's skipped evaluators, the rows that lost their retrieved context,
  and the candidate's error groups.
* ``flipped_details(con, example_ids, candidate_id, baseline_id)`` — the score rows (with
  the run's outputs) of the examples the per-row guard found flipped.

Read-only, and nothing here decides: the statistics and the verdict are
`evalkeeper.analysis`'s (`paired.analyse_pair`, `verdict.decide_verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from evalkeeper.models import ErrorGroup
from evalkeeper.warehouse.queries import error_groups, lost_context

# Per (evaluator, example) with rows on both sides: scored rows, sums, sums of squares and
# errors of the candidate ($1) and the baseline ($2), side by side. The metric is the pass
# rate for evaluators with any pass/fail row, else the value. Aggregating here (not in
# Python) keeps `compare` fast on large experiments.
#
# A candidate row skipped for lack of retrieved context (`details.reason = 'no_context'`,
# the groundedness judge) where the baseline's run of the same example was scored counts
# as a failure: retrieval broke, and a quiet skip would hide it.
_PAIRED_SQL = f"""
    WITH raw AS (
        SELECT experiment_id = $1 AS cand, evaluator, example_id, category, passed, value,
               error IS NOT NULL AS has_error, skipped,
               skipped AND CASE WHEN skipped THEN {lost_context()} END AS lost_context
        FROM scores
        WHERE experiment_id IN ($1, $2)
    ), based AS (
        SELECT DISTINCT evaluator, example_id, true AS had FROM raw WHERE NOT cand AND NOT skipped
    ), s AS (
        SELECT cand, evaluator, example_id, category,
               CASE WHEN skipped THEN false ELSE passed END AS passed,
               CASE WHEN skipped THEN 0.0 ELSE value END AS value, has_error
        FROM raw LEFT JOIN based USING (evaluator, example_id)
        WHERE NOT skipped OR (cand AND lost_context AND based.had)
    ), bin AS (
        SELECT DISTINCT evaluator FROM s WHERE passed IS NOT NULL
    ), y AS (
        SELECT s.*, bin.evaluator IS NOT NULL AS is_binary,
               CASE WHEN bin.evaluator IS NOT NULL THEN CAST(s.passed AS DOUBLE)
                    ELSE s.value END AS y
        FROM s LEFT JOIN bin USING (evaluator)
    ), r AS (
        SELECT *, NOT has_error AND y IS NOT NULL AS ok FROM y
    )
    SELECT evaluator, example_id, bool_or(is_binary) AS is_binary,
           coalesce(any_value(category) FILTER (WHERE cand), any_value(category)) AS category,
           count(*) FILTER (WHERE cand AND ok) AS n_ok,
           count(*) FILTER (WHERE cand AND NOT ok) AS n_err,
           coalesce(sum(y) FILTER (WHERE cand AND ok), 0) AS s,
           coalesce(sum(y * y) FILTER (WHERE cand AND ok), 0) AS ss,
           count(*) FILTER (WHERE NOT cand AND ok) AS n_ok_b,
           count(*) FILTER (WHERE NOT cand AND NOT ok) AS n_err_b,
           coalesce(sum(y) FILTER (WHERE NOT cand AND ok), 0) AS s_b,
           coalesce(sum(y * y) FILTER (WHERE NOT cand AND ok), 0) AS ss_b
    FROM r
    GROUP BY evaluator, example_id
    HAVING count(*) FILTER (WHERE cand) > 0 AND count(*) FILTER (WHERE NOT cand) > 0
    ORDER BY evaluator, example_id
"""


# The candidate's evaluators that skipped rows for another reason than a missing context
# (a judge with no endpoint), with the first reason given.
_SKIPPED_SQL = f"""
    SELECT evaluator, count(*) AS n, any_value(comment) AS comment FROM scores
    WHERE experiment_id = $1 AND skipped
      AND NOT {lost_context()}
    GROUP BY evaluator ORDER BY evaluator
"""

# Candidate rows that lost their context where the baseline had it (counted as failures).
_LOST_CONTEXT_SQL = f"""
    SELECT c.evaluator, count(*) FROM scores c
    WHERE c.experiment_id = $1 AND c.skipped
      AND {lost_context("c.")}
      AND EXISTS (SELECT 1 FROM scores b WHERE b.experiment_id = $2 AND NOT b.skipped
                  AND b.evaluator = c.evaluator AND b.example_id = c.example_id)
    GROUP BY c.evaluator ORDER BY c.evaluator
"""

_EVALUATORS_SQL = """
    SELECT experiment_id = $1 AS cand, evaluator,
           list(DISTINCT evaluator_version ORDER BY evaluator_version) AS versions
    FROM scores
    WHERE experiment_id IN ($1, $2) AND NOT skipped
    GROUP BY ALL
"""


_RUNS_SQL = (
    "SELECT experiment_id = ? AS cand, example_id, latency_ms, error IS NOT NULL AS "
    "has_error FROM runs WHERE experiment_id IN (?, ?)"
)

# The examples the per-row guard watches, in either side's dataset version.
_GUARDED_SQL = (
    "SELECT example_id, dataset_version = ? AS is_cand_version, critical, incident_id "
    "FROM examples WHERE dataset_version IN (?, ?) AND (critical OR incident_id IS "
    "NOT NULL)"
)

# Both sides' non-skipped score rows of some examples, with the run's outputs, the lowest
# repetition first.
_DETAILS_SQL = """
    SELECT s.experiment_id = ? AS cand, s.example_id, s.evaluator, s.repetition, s.passed,
           s.comment, r.outputs
    FROM scores s
    LEFT JOIN runs r USING (experiment_id, example_id, repetition)
    WHERE s.experiment_id IN (?, ?) AND list_contains(?, s.example_id) AND NOT s.skipped
    ORDER BY s.repetition
"""


@dataclass(frozen=True)
class PairFrames:
    """What `load_pair` read: each frame's columns are those of its query above."""

    evaluators: pl.DataFrame
    """`cand, evaluator, versions`: each side's evaluators with non-skipped scores."""
    paired: pl.DataFrame
    """Per (evaluator, example) scored on both sides: `is_binary, category` and the sums
    `n_ok, n_err, s, ss` (candidate), `n_ok_b, n_err_b, s_b, ss_b` (baseline)."""
    runs: pl.DataFrame
    """`cand, example_id, latency_ms, has_error`: every run of both sides."""
    examples: pl.DataFrame
    """`example_id, is_cand_version, critical, incident_id`: the guarded examples."""
    skipped: list[tuple[str, int, str | None]]
    """(evaluator, rows, first comment): the candidate's skips other than lost context."""
    lost_context: list[tuple[str, int]]
    """(evaluator, rows): candidate rows with no retrieved context where the baseline's were
    scored."""
    error_groups: list[ErrorGroup]
    """The candidate's errors grouped by cause (`queries.error_groups`)."""


def load_pair(
    con: duckdb.DuckDBPyConnection, candidate: Mapping[str, Any], baseline: Mapping[str, Any]
) -> PairFrames:
    """Everything a comparison of `candidate` with `baseline` reads (their `experiments`
    rows as `queries.experiment_row` returns them)."""
    cand_id, base_id = candidate["experiment_id"], baseline["experiment_id"]
    cand_version = candidate["dataset_version"]
    return PairFrames(
        evaluators=con.sql(_EVALUATORS_SQL, params=[cand_id, base_id]).pl(),
        paired=con.sql(_PAIRED_SQL, params=[cand_id, base_id]).pl(),
        runs=con.sql(_RUNS_SQL, params=[cand_id, cand_id, base_id]).pl(),
        examples=con.sql(
            _GUARDED_SQL, params=[cand_version, cand_version, baseline["dataset_version"]]
        ).pl(),
        skipped=[
            (str(name), int(n), comment)
            for name, n, comment in con.execute(_SKIPPED_SQL, [cand_id]).fetchall()
        ],
        lost_context=[
            (str(name), int(n))
            for name, n in con.execute(_LOST_CONTEXT_SQL, [cand_id, base_id]).fetchall()
        ],
        error_groups=error_groups(con, cand_id),
    )


def flipped_details(
    con: duckdb.DuckDBPyConnection, example_ids: list[str], candidate_id: str, baseline_id: str
) -> list[tuple[bool, str, str, int, bool | None, str | None, str | None]]:
    """(cand, example_id, evaluator, repetition, passed, comment, outputs) of both sides'
    non-skipped scores of `example_ids`, the lowest repetition first; [] without ids."""
    if not example_ids:
        return []
    ids = sorted(set(example_ids))
    rows = con.execute(_DETAILS_SQL, [candidate_id, candidate_id, baseline_id, ids]).fetchall()
    return [
        (cand, ex, ev, rep, passed, comment, None if outputs is None else str(outputs))
        for cand, ex, ev, rep, passed, comment, outputs in rows
    ]
