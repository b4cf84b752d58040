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


# Error shares that decide whether a run failed: the target's over all its runs, each
# evaluator's over the non-skipped scores of runs whose target call succeeded.
_ERROR_SHARES_SQL = """
    SELECT 'target' AS "where", count(*) AS n, count(error) AS errors
    FROM runs WHERE experiment_id = $1
    UNION ALL
    SELECT s.evaluator, count(*), count(s.error)
    FROM scores s JOIN runs r USING (experiment_id, example_id, repetition)
    WHERE s.experiment_id = $1 AND r.error IS NULL AND NOT s.skipped
    GROUP BY s.evaluator
    UNION ALL
    SELECT evaluator, 1, count(error) FROM summary_scores
    WHERE experiment_id = $1 GROUP BY evaluator
"""


def error_shares(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, tuple[int, int]]:
    """where -> (rows, errored rows), for the target and every evaluator."""
    rows = con.execute(_ERROR_SHARES_SQL, [experiment_id]).fetchall()
    return {w: (int(n), int(e)) for w, n, e in rows}
