"""Read-only questions several parts ask of the warehouse."""

from __future__ import annotations

import duckdb

from evalkeeper.models import ErrorGroup

# Target errors over every run; evaluator errors over the runs whose target call succeeded
# (an evaluator cannot score a failed call, and saying so once per evaluator would bury
# the cause); summary evaluators' errors too. Grouped by the error's first line.
_ERROR_GROUPS_SQL = """
    WITH e AS (
        SELECT 'target' AS "where", error, example_id FROM runs
        WHERE experiment_id = $1 AND error IS NOT NULL
        UNION ALL
        SELECT s.evaluator, s.error, s.example_id FROM scores s
        JOIN runs r USING (experiment_id, example_id, repetition)
        WHERE s.experiment_id = $1 AND s.error IS NOT NULL AND r.error IS NULL
        UNION ALL
        SELECT evaluator, error, '' FROM summary_scores
        WHERE experiment_id = $1 AND error IS NOT NULL
    )
    SELECT "where", split_part(error, chr(10), 1) AS error, count(*) AS count,
           min(example_id) AS example_id
    FROM e GROUP BY ALL ORDER BY count DESC, "where", error
"""


def error_groups(con: duckdb.DuckDBPyConnection, experiment_id: str) -> list[ErrorGroup]:
    """An experiment's errors grouped by cause, the most frequent first."""
    rows = con.execute(_ERROR_GROUPS_SQL, [experiment_id]).fetchall()
    return [ErrorGroup(where=w, error=e, count=n, example_id=x) for w, e, n, x in rows]


# Error counts that decide whether a run failed and whether it can be a baseline, per
# experiment: the target's over all its runs; each evaluator's errors over its non-skipped
# scores of runs whose target call succeeded, and its skipped scores (over all its rows);
# a summary evaluator counts as one row.
_ERROR_COUNTS_SQL = """
    WITH ids AS (SELECT unnest($ids) AS experiment_id)
    SELECT experiment_id, 'target' AS "where", count(*) AS n, count(error) AS errors,
           0 AS skipped
    FROM runs JOIN ids USING (experiment_id) GROUP BY ALL
    UNION ALL
    SELECT s.experiment_id, s.evaluator,
           count(*) FILTER (WHERE NOT s.skipped AND r.error IS NULL),
           count(s.error) FILTER (WHERE NOT s.skipped AND r.error IS NULL),
           count(*) FILTER (WHERE s.skipped)
    FROM scores s JOIN ids USING (experiment_id)
    JOIN runs r USING (experiment_id, example_id, repetition)
    GROUP BY ALL
    UNION ALL
    SELECT experiment_id, evaluator, 1, count(error), 0
    FROM summary_scores JOIN ids USING (experiment_id) GROUP BY ALL
"""

Counts = tuple[int, int, int]
"""(rows, errored rows, skipped rows)."""


def error_counts(
    con: duckdb.DuckDBPyConnection, experiment_ids: list[str]
) -> dict[str, dict[str, Counts]]:
    """experiment id -> where ("target" or an evaluator) -> (rows, errors, skipped)."""
    out: dict[str, dict[str, Counts]] = {eid: {} for eid in experiment_ids}
    if experiment_ids:
        for eid, where, n, errors, skipped in con.execute(
            _ERROR_COUNTS_SQL, {"ids": experiment_ids}
        ).fetchall():
            out[eid][where] = (int(n), int(errors), int(skipped))
    return out
