"""What `evalkeeper plan` reads: a dataset's latest completed runs, their pass/fail rows
summed per (run, example, evaluator), its examples (for the smoke suite's size), and the
judge calls of those runs (`evalkeeper.warehouse.history.judge_usage`). Aggregated in SQL:
a row per (run, example, evaluator), never the score rows."""

from __future__ import annotations

import duckdb
import polars as pl


def known_datasets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every dataset the warehouse has examples or experiments of."""
    rows = con.execute(
        "SELECT dataset FROM experiments UNION SELECT dataset FROM examples ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


# The latest `limit` completed experiments of the dataset, oldest first, with the target's
# pin (two runs of one pin are two runs of the same target).
_RUNS_SQL = """
    SELECT experiment_id, suite, dataset_version, repetitions, n_examples, started_at,
           target_spec, agent_version, model, git_commit
    FROM experiments
    WHERE dataset = $dataset AND status = 'completed'
    QUALIFY row_number() OVER (ORDER BY started_at DESC, experiment_id DESC) <= $limit
    ORDER BY started_at, experiment_id
"""


def dataset_runs(con: duckdb.DuckDBPyConnection, dataset: str, *, limit: int) -> pl.DataFrame:
    """`experiment_id, suite, dataset_version, repetitions, n_examples, started_at,
    target_spec, agent_version, model, git_commit` of the latest `limit` completed runs of
    `dataset`, oldest first."""
    return con.sql(_RUNS_SQL, params={"dataset": dataset, "limit": limit}).pl()


# Per run, example and pass/fail evaluator: `k` scored repetitions (no error, not skipped,
# with a pass/fail), `y` of them passed, and `first` the outcome of the lowest-numbered one.
_GROUPS_SQL = """
    SELECT experiment_id, evaluator, example_id,
           count(*) AS k,
           count(*) FILTER (WHERE passed) AS y,
           arg_min(passed, repetition) AS first
    FROM scores
    WHERE experiment_id IN (SELECT unnest($ids)) AND NOT skipped AND error IS NULL
      AND passed IS NOT NULL
    GROUP BY ALL
    ORDER BY experiment_id, evaluator, example_id
"""


def outcome_groups(con: duckdb.DuckDBPyConnection, experiment_ids: list[str]) -> pl.DataFrame:
    """`experiment_id, evaluator, example_id, k, y, first` (see `_GROUPS_SQL`)."""
    return con.sql(_GROUPS_SQL, params={"ids": experiment_ids}).pl()


def value_evaluators(con: duckdb.DuckDBPyConnection, experiment_ids: list[str]) -> list[str]:
    """The evaluators of those runs that never gave a pass/fail (they score a value)."""
    rows = con.execute(
        "SELECT evaluator FROM scores WHERE experiment_id IN (SELECT unnest(?)) "
        "AND NOT skipped GROUP BY evaluator HAVING count(passed) = 0 ORDER BY 1",
        [experiment_ids],
    ).fetchall()
    return [str(r[0]) for r in rows]


def latest_examples(
    con: duckdb.DuckDBPyConnection, dataset: str, version: str | None
) -> pl.DataFrame:
    """`example_id, category, critical` of `version` of the dataset (None: the version
    stored last, by example count tie-break)."""
    if version is None:
        row = con.execute(
            "SELECT dataset_version FROM examples WHERE dataset = ? GROUP BY ALL "
            "ORDER BY count(*) DESC, dataset_version DESC LIMIT 1",
            [dataset],
        ).fetchone()
        if row is None:
            return pl.DataFrame(
                schema={"example_id": pl.String, "category": pl.String, "critical": pl.Boolean}
            )
        version = str(row[0])
    return con.sql(
        "SELECT example_id, category, critical FROM examples "
        "WHERE dataset = $dataset AND dataset_version = $version ORDER BY example_id",
        params={"dataset": dataset, "version": version},
    ).pl()


def cell_count(con: duckdb.DuckDBPyConnection, experiment_id: str) -> int:
    """The cells a comparison of this run has: its scored evaluators x (its categories +
    the ``__all__`` cell)."""
    row = con.execute(
        "SELECT count(DISTINCT evaluator), count(DISTINCT category) FROM scores "
        "WHERE experiment_id = ? AND NOT skipped",
        [experiment_id],
    ).fetchone()
    evaluators, categories = (int(row[0]), int(row[1])) if row else (0, 0)
    return max(1, evaluators * (categories + 1))
