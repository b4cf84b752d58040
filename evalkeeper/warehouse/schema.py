"""Warehouse schema: forward-only migrations, table write policies and analyst views.

Every table keeps UTC `TIMESTAMPTZ` times. JSON columns hold canonical JSON text.
A schema change is a new entry appended to `MIGRATIONS`; applied versions are recorded in
`schema_version` and never re-run. Views are (re)created on every migrate, so a view can
change without a migration.
"""

from __future__ import annotations

from typing import Literal

SCHEMA_V1 = [
    """
    CREATE TABLE examples (
        dataset VARCHAR NOT NULL,
        dataset_version VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        critical BOOLEAN NOT NULL,
        incident_id VARCHAR,
        inputs JSON,
        reference_outputs JSON,
        metadata JSON,
        PRIMARY KEY (dataset_version, example_id)
    )""",
    """
    CREATE TABLE experiments (
        experiment_id VARCHAR PRIMARY KEY,
        suite VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        dataset_version VARCHAR NOT NULL,
        target_spec VARCHAR NOT NULL,
        target_kind VARCHAR NOT NULL,
        agent_version VARCHAR,
        model VARCHAR,
        git_commit VARCHAR,
        git_branch VARCHAR,
        evaluators JSON,
        repetitions INTEGER NOT NULL,
        params JSON,
        n_examples INTEGER NOT NULL,
        status VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ
    )""",
    """
    CREATE TABLE runs (
        experiment_id VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        repetition INTEGER NOT NULL,
        outputs JSON,
        latency_ms DOUBLE,
        error VARCHAR,
        attempts INTEGER NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (experiment_id, example_id, repetition)
    )""",
    """
    CREATE TABLE scores (
        experiment_id VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        repetition INTEGER NOT NULL,
        evaluator VARCHAR NOT NULL,
        evaluator_version VARCHAR NOT NULL,
        evaluator_args_hash VARCHAR NOT NULL,
        value DOUBLE,
        passed BOOLEAN,
        comment VARCHAR,
        error VARCHAR,
        skipped BOOLEAN NOT NULL,
        details JSON,
        created_at TIMESTAMPTZ NOT NULL,
        dataset_version VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        target_spec VARCHAR NOT NULL,
        agent_version VARCHAR,
        model VARCHAR,
        judge_model VARCHAR,
        git_commit VARCHAR,
        PRIMARY KEY (experiment_id, example_id, repetition, evaluator)
    )""",
    """
    CREATE TABLE summary_scores (
        experiment_id VARCHAR NOT NULL,
        evaluator VARCHAR NOT NULL,
        evaluator_version VARCHAR NOT NULL,
        evaluator_args_hash VARCHAR NOT NULL,
        value DOUBLE,
        passed BOOLEAN,
        comment VARCHAR,
        error VARCHAR,
        details JSON,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (experiment_id, evaluator)
    )""",
    """
    CREATE TABLE judges (
        judge VARCHAR PRIMARY KEY,
        model VARCHAR,
        prompt_version VARCHAR,
        status VARCHAR NOT NULL,
        status_reason VARCHAR,
        updated_at TIMESTAMPTZ NOT NULL
    )""",
    """
    CREATE TABLE judge_votes (
        experiment_id VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        repetition INTEGER NOT NULL,
        judge VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        vote_index INTEGER NOT NULL,
        verdict VARCHAR,
        reasoning VARCHAR,
        latency_ms DOUBLE,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cost_usd DOUBLE,
        cached BOOLEAN NOT NULL,
        cache_key VARCHAR NOT NULL,
        error VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (experiment_id, example_id, repetition, judge, vote_index)
    )""",
    """
    CREATE TABLE judge_cache (
        cache_key VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        vote_index INTEGER NOT NULL,
        response JSON NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cost_usd DOUBLE,
        created_at TIMESTAMPTZ NOT NULL
    )""",
]

# (version, statements). Append only; never edit an applied entry.
MIGRATIONS: list[tuple[int, list[str]]] = [(1, SCHEMA_V1)]

Conflict = Literal["ignore", "replace"]

# How a batch row that already exists is treated. `ignore` makes re-ingest and resume
# idempotent (first write wins); `replace` is for rows that move through states.
WRITE_POLICY: dict[str, Conflict] = {
    "examples": "ignore",
    "experiments": "replace",
    "runs": "ignore",
    "scores": "ignore",
    "summary_scores": "replace",
    "judges": "replace",
    "judge_votes": "ignore",
    "judge_cache": "ignore",
}

VIEWS: dict[str, str] = {
    "score_history": """
        SELECT e.experiment_id, e.started_at, e.finished_at, e.status, e.suite, e.dataset,
               e.dataset_version, e.target_spec, e.agent_version, e.model, e.git_commit,
               e.git_branch, s.evaluator, any_value(s.evaluator_version) AS evaluator_version,
               count(*) AS n,
               count(s.passed) AS n_scored,
               count(*) FILTER (WHERE s.error IS NOT NULL) AS n_errors,
               avg(CAST(s.passed AS DOUBLE)) AS pass_rate,
               avg(s.value) AS mean_value
        FROM scores s JOIN experiments e USING (experiment_id)
        WHERE NOT s.skipped
        GROUP BY ALL
    """,
}
