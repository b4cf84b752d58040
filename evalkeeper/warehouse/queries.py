"""Read-only questions several parts ask of the warehouse: an experiment's row, its errors
grouped and counted, what decides whether it can be a baseline, and which LLM judges
calibration has retired."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from evalkeeper.models import ErrorGroup


def experiment_row(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, Any] | None:
    """The `experiments` row of `experiment_id` as a dict, or None when there is none."""
    cur = con.execute(
        "SELECT experiment_id, suite, dataset, dataset_version, git_branch, status, "
        "started_at, repetitions, evaluators FROM experiments WHERE experiment_id = ?",
        [experiment_id],
    )
    rows = cur.fetchall()
    if not rows:
        return None
    row = rows[0]
    cols = [d[0] for d in cur.description or []]
    return dict(zip(cols, row, strict=True))


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


def lost_context(alias: str = "") -> str:
    """SQL: a score skipped because its row gave it nothing to judge (`details.reason =
    'no_context'`: the groundedness judge on a reply without retrieved context). Such a
    skip is not a gap in an evaluator's coverage; `compare` weighs it on its own
    (`evalkeeper.warehouse.pairs`). `alias` qualifies the column: "s." reads `s.details`."""
    return f"(coalesce(json_extract_string({alias}details, '$.reason'), '') = 'no_context')"


# Error counts that decide whether a run failed and whether it can be a baseline, per
# experiment: the target's over all its runs; each evaluator's errors over its non-skipped
# scores of runs whose target call succeeded, and its skipped scores (over all its rows)
# but those of a row that gave it nothing to judge (`details.reason = 'no_context'`: the
# groundedness judge on a reply without retrieved context, which `compare` weighs on its
# own, `evalkeeper.warehouse.pairs`); a summary evaluator counts as one row.
_ERROR_COUNTS_SQL = f"""
    WITH ids AS (SELECT unnest($ids) AS experiment_id)
    SELECT experiment_id, 'target' AS "where", count(*) AS n, count(error) AS errors,
           0 AS skipped
    FROM runs JOIN ids USING (experiment_id) GROUP BY ALL
    UNION ALL
    SELECT s.experiment_id, s.evaluator,
           count(*) FILTER (WHERE NOT s.skipped AND r.error IS NULL),
           count(s.error) FILTER (WHERE NOT s.skipped AND r.error IS NULL),
           count(*) FILTER (WHERE s.skipped AND NOT {lost_context("s.")})
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


def retired_judges(
    con: duckdb.DuckDBPyConnection, experiment_id: str | None = None
) -> dict[str, str]:
    """Judge name -> the warning a verdict prints, for each judge the `judges` table holds
    as retired, and (given `experiment_id`) each judge whose version in that experiment is
    retired (a reinstated judge's old version stays out). `compare` leaves their cells out."""
    rows = con.execute(
        "SELECT judge, prompt_version, model, status_reason, updated_at FROM judges "
        "WHERE status = 'retired' ORDER BY judge"
    ).fetchall()
    if experiment_id is not None:
        rows += con.execute(_RETIRED_VERSIONS_SQL, [experiment_id]).fetchall()
    out: dict[str, str] = {}
    for judge, version, model, reason, since in rows:
        if judge in out:
            continue
        pin = f"prompt {version}, model {model}; " if version else ""
        out[judge] = (
            f"judge {judge} is retired ({pin}{reason or 'no reason recorded'}) since "
            f"{since:%Y-%m-%d}: not used in this verdict"
        )
    return out


# The retired judge versions that scored an experiment (latest status of each version).
_RETIRED_VERSIONS_SQL = """
    WITH latest AS (
        SELECT * FROM judge_status_history
        QUALIFY row_number() OVER (
            PARTITION BY judge, prompt_version, judge_model ORDER BY changed_at DESC) = 1
    ), used AS (
        SELECT DISTINCT evaluator, evaluator_version, judge_model FROM scores
        WHERE experiment_id = $1 AND judge_model IS NOT NULL
    )
    SELECT l.judge, l.prompt_version, l.judge_model, split_part(l.reason, ':', 1),
           l.changed_at
    FROM latest l JOIN used u ON u.evaluator = l.judge
         AND u.evaluator_version = l.prompt_version AND u.judge_model = l.judge_model
    WHERE l.status = 'retired'
    ORDER BY l.judge, l.changed_at
"""


# What decides whether an experiment can be a baseline, besides its error counts
# (`error_counts`): its status, missing rows, the evaluators it was asked to run, and its
# own latest verdict.
_ELIGIBILITY_SQL = """
    WITH ids AS (SELECT unnest($ids) AS experiment_id),
    verdict AS (
        SELECT experiment_id, arg_max(verdict, created_at) AS verdict
        FROM comparisons JOIN ids USING (experiment_id)
        WHERE kind = 'verdict' GROUP BY ALL
    )
    SELECT e.experiment_id, e.status, e.evaluators, e.params, verdict.verdict
    FROM experiments e JOIN ids USING (experiment_id)
    LEFT JOIN verdict USING (experiment_id)
"""


def baseline_facts(
    con: duckdb.DuckDBPyConnection, experiment_ids: list[str]
) -> list[tuple[str, str, str | None, str | None, str | None]]:
    """(experiment_id, status, evaluators JSON, params JSON, its latest stored verdict) of
    each experiment in `experiment_ids` that exists."""
    return [
        (eid, status, evaluators, params, verdict)
        for eid, status, evaluators, params, verdict in con.execute(
            _ELIGIBILITY_SQL, {"ids": experiment_ids}
        ).fetchall()
    ]


def scored_evaluators(
    con: duckdb.DuckDBPyConnection, experiment_ids: list[str]
) -> dict[str, set[str]]:
    """experiment id -> the evaluators with non-skipped row scores in it (what a comparison
    pairs: `evalkeeper.warehouse.pairs`)."""
    out: dict[str, set[str]] = {eid: set() for eid in experiment_ids}
    if experiment_ids:
        for eid, evaluator in con.execute(
            "SELECT DISTINCT experiment_id, evaluator FROM scores "
            "WHERE experiment_id IN (SELECT unnest($ids)) AND NOT skipped",
            {"ids": experiment_ids},
        ).fetchall():
            out[eid].add(evaluator)
    return out


def earlier_experiments(
    con: duckdb.DuckDBPyConnection,
    cand: Mapping[str, Any],
    branch: str,
    *,
    limit: int,
    offset: int,
) -> list[str]:
    """The experiments of the candidate's suite and dataset on `branch` started before it
    (`cand` is its `experiments` row), the latest first: `limit` of them from `offset`."""
    return [
        str(r[0])
        for r in con.execute(
            """
            SELECT experiment_id FROM experiments
            WHERE suite = ? AND dataset = ? AND git_branch = ?
              AND experiment_id <> ? AND started_at < ?
            ORDER BY started_at DESC, experiment_id DESC
            LIMIT ? OFFSET ?
            """,
            [
                cand["suite"],
                cand["dataset"],
                branch,
                cand["experiment_id"],
                cand["started_at"],
                limit,
                offset,
            ],
        ).fetchall()
    ]
