"""Warehouse migrations: the history of the schema, applied in order to every file.

Every table keeps UTC `TIMESTAMPTZ` times. JSON columns hold canonical JSON text.
A schema change is a new entry appended to `MIGRATIONS`; applied versions are recorded in
`schema_version` and never re-run. The entries below are history: they stay exactly as they
were applied. What a table is today is declared once in `evalkeeper.warehouse.tables`, and
a future migration takes its DDL from there (`TABLES[name].ddl()`), after the declaration
has been changed. The analyst views are in `evalkeeper.warehouse.views`.
"""

from __future__ import annotations

from evalkeeper.warehouse.tables import TABLES

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
    # One comparison (evalkeeper.warehouse.comparisons.save_comparison) is one batch of rows sharing a
    # comparison_id: kind 'verdict' (one row; evaluator = category = '__verdict__'), kind
    # 'cell' (one per evaluator x category, category '__all__' per evaluator) and kind 'row'
    # (one per critical/incident example that passed in the baseline and fails now).
    # example_id is '' except on 'row' rows. Rates are pass rates, or mean values when the
    # evaluator reports no pass/fail (metric says which).
    """
    CREATE TABLE comparisons (
        comparison_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        experiment_id VARCHAR NOT NULL,
        baseline_id VARCHAR NOT NULL,
        suite VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        evaluator VARCHAR NOT NULL,
        category VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        incident_id VARCHAR,
        verdict VARCHAR NOT NULL,
        metric VARCHAR,
        n_examples INTEGER,
        baseline_rate DOUBLE,
        baseline_ci_low DOUBLE,
        baseline_ci_high DOUBLE,
        candidate_rate DOUBLE,
        candidate_ci_low DOUBLE,
        candidate_ci_high DOUBLE,
        diff DOUBLE,
        diff_ci_low DOUBLE,
        diff_ci_high DOUBLE,
        test VARCHAR,
        p_value DOUBLE,
        p_adjusted DOUBLE,
        mde DOUBLE,
        errors_baseline INTEGER,
        errors_candidate INTEGER,
        baseline_output VARCHAR,
        candidate_output VARCHAR,
        details JSON,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (comparison_id, kind, evaluator, category, example_id)
    )""",
]

# v2: `scores` without its primary key. The key's index was most of the file (about 94%
# at 7.6M score rows) and most of a small write's time. A score is written in the same
# batch as its run and kept only when that run is new (policy `with_run` below), which
# keeps re-ingest and resume just as idempotent.
SCHEMA_V2 = [
    """
    CREATE TABLE scores_v2 (
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
        git_commit VARCHAR
    )""",
    "INSERT INTO scores_v2 SELECT * FROM scores ORDER BY experiment_id, example_id, repetition",
    "DROP TABLE scores",
    "ALTER TABLE scores_v2 RENAME TO scores",
]

# v3: production traces (evalkeeper.traces), redacted before they are written, and the
# position of each trace source. A source's cursor row is written in the same batch as the
# traces it covers, so a crash between batches neither skips nor repeats a line.
SCHEMA_V3 = [
    """
    CREATE TABLE traces (
        trace_id VARCHAR PRIMARY KEY,
        time TIMESTAMPTZ NOT NULL,
        service VARCHAR,
        environment VARCHAR,
        version VARCHAR,
        model VARCHAR,
        inputs JSON NOT NULL,
        outputs JSON,
        latency_ms DOUBLE,
        error VARCHAR,
        tool_calls JSON NOT NULL,
        context JSON NOT NULL,
        conversation_id VARCHAR,
        feedback JSON,
        metadata JSON NOT NULL,
        source VARCHAR NOT NULL,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
    """
    CREATE TABLE trace_cursors (
        source VARCHAR PRIMARY KEY,
        cursor JSON NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )""",
]

# v4: post-deploy monitoring (evalkeeper.monitor). A window is a row that moves through
# states (`replace`); every tick writes its scores, its row and its per-evaluator counts,
# the window's new state and (once) the rollback decision in one batch, so a crash leaves
# either all of a tick or none of it. Counts are recomputed from `monitoring_scores` at every
# tick, never added to, so a tick that reruns double-counts nothing. A rollback decision is
# one row per window (`ignore`: the first wins) written before any delivery is attempted;
# each delivery attempt is a row of its own.
SCHEMA_V4 = [
    """
    CREATE TABLE monitoring_windows (
        window_id VARCHAR PRIMARY KEY,
        deploy_id VARCHAR NOT NULL,
        service VARCHAR NOT NULL,
        environment VARCHAR,
        version VARCHAR NOT NULL,
        previous_version VARCHAR,
        deployed_at TIMESTAMPTZ NOT NULL,
        ends_at TIMESTAMPTZ NOT NULL,
        baseline_start TIMESTAMPTZ NOT NULL,
        baseline_end TIMESTAMPTZ NOT NULL,
        config JSON NOT NULL,
        source VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,
        reasons JSON NOT NULL,
        last_tick_at TIMESTAMPTZ,
        opened_at TIMESTAMPTZ NOT NULL,
        closed_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL
    )""",
    """
    CREATE TABLE monitoring_webhooks (
        delivery_id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        window_id VARCHAR NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
    )""",
    """
    CREATE TABLE monitoring_scores (
        window_id VARCHAR NOT NULL,
        trace_id VARCHAR NOT NULL,
        evaluator VARCHAR NOT NULL,
        phase VARCHAR NOT NULL,
        trace_time TIMESTAMPTZ NOT NULL,
        evaluator_version VARCHAR NOT NULL,
        evaluator_args_hash VARCHAR NOT NULL,
        value DOUBLE,
        passed BOOLEAN,
        comment VARCHAR,
        error VARCHAR,
        skipped BOOLEAN NOT NULL,
        tick_at TIMESTAMPTZ NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (window_id, trace_id, evaluator)
    )""",
    """
    CREATE TABLE monitoring_ticks (
        window_id VARCHAR NOT NULL,
        tick_at TIMESTAMPTZ NOT NULL,
        decision VARCHAR NOT NULL,
        final BOOLEAN NOT NULL,
        reasons JSON NOT NULL,
        new_window_traces INTEGER NOT NULL,
        new_baseline_traces INTEGER NOT NULL,
        ticked_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (window_id, tick_at)
    )""",
    """
    CREATE TABLE monitoring_counts (
        window_id VARCHAR NOT NULL,
        tick_at TIMESTAMPTZ NOT NULL,
        evaluator VARCHAR NOT NULL,
        baseline_n INTEGER NOT NULL,
        baseline_flags INTEGER NOT NULL,
        baseline_errors INTEGER NOT NULL,
        window_n INTEGER NOT NULL,
        window_flags INTEGER NOT NULL,
        window_errors INTEGER NOT NULL,
        baseline_rate DOUBLE,
        upper_bound DOUBLE,
        window_rate DOUBLE,
        statistic DOUBLE,
        threshold DOUBLE,
        decision VARCHAR NOT NULL,
        reason VARCHAR,
        PRIMARY KEY (window_id, tick_at, evaluator)
    )""",
    """
    CREATE TABLE monitoring_rollbacks (
        window_id VARCHAR PRIMARY KEY,
        decided_at TIMESTAMPTZ NOT NULL,
        evaluator VARCHAR NOT NULL,
        channels JSON NOT NULL,
        payload JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
    """
    CREATE TABLE monitoring_deliveries (
        window_id VARCHAR NOT NULL,
        channel VARCHAR NOT NULL,
        attempt INTEGER NOT NULL,
        attempted_at TIMESTAMPTZ NOT NULL,
        ok BOOLEAN NOT NULL,
        status_code INTEGER,
        error VARCHAR,
        PRIMARY KEY (window_id, channel, attempt)
    )""",
]

# v5: judge calibration (evalkeeper.calibration). Items drawn for human labels, the labels
# (one per item, judge and annotator: the latest wins), every measurement with its evidence
# and decided status, and the history of each judge version's status (the `judges` row
# holds the current one).
SCHEMA_V5 = [
    """
    CREATE TABLE calibration_items (
        item_id VARCHAR NOT NULL,
        judge VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        judge_model VARCHAR,
        experiment_id VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        repetition INTEGER NOT NULL,
        category VARCHAR NOT NULL,
        judge_verdict VARCHAR NOT NULL,
        copies INTEGER NOT NULL,
        sample_id VARCHAR NOT NULL,
        sampled_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (item_id, judge)
    )""",
    """
    CREATE TABLE human_labels (
        item_id VARCHAR NOT NULL,
        judge VARCHAR NOT NULL,
        annotator VARCHAR NOT NULL,
        experiment_id VARCHAR NOT NULL,
        example_id VARCHAR NOT NULL,
        repetition INTEGER NOT NULL,
        label VARCHAR NOT NULL,
        labelled_at TIMESTAMPTZ NOT NULL,
        note VARCHAR,
        source VARCHAR NOT NULL,
        imported_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (item_id, judge, annotator)
    )""",
    """
    CREATE TABLE judge_calibrations (
        calibration_id VARCHAR NOT NULL,
        judge VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        judge_model VARCHAR NOT NULL,
        quarter VARCHAR NOT NULL,
        n_items INTEGER NOT NULL,
        n_ties INTEGER NOT NULL,
        agreement DOUBLE,
        agreement_ci_low DOUBLE,
        agreement_ci_high DOUBLE,
        kappa DOUBLE,
        kappa_se DOUBLE,
        kappa_ci_low DOUBLE,
        kappa_ci_high DOUBLE,
        ac1 DOUBLE,
        ac1_se DOUBLE,
        true_pass_rate DOUBLE,
        true_fail_rate DOUBLE,
        ceiling_n_items INTEGER NOT NULL,
        ceiling_agreement DOUBLE,
        ceiling_kappa DOUBLE,
        ceiling_ac1 DOUBLE,
        ceiling_alpha DOUBLE,
        bar DOUBLE NOT NULL,
        status VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        details JSON,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (calibration_id, judge, prompt_version, judge_model)
    )""",
    """
    CREATE TABLE judge_status_history (
        judge VARCHAR NOT NULL,
        prompt_version VARCHAR NOT NULL,
        judge_model VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        calibration_id VARCHAR NOT NULL,
        changed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (judge, changed_at, calibration_id)
    )""",
]

# v6: rollback delivery claims (evalkeeper.monitor.rollback): one live claim per window,
# so that concurrent ticks deliver a decision once.
SCHEMA_V6 = [TABLES["monitoring_claims"].ddl()]

# v7: judge calibrations keep the constant-answer baseline (the agreement of a judge that
# always gives the commonest human label) and the retire rule that decided (its statistic,
# interval, bar share and the human ceiling it was relative to). Added columns, NULL in the
# rows recorded before (the agreement rule decided those).
SCHEMA_V7 = [
    f"ALTER TABLE judge_calibrations ADD COLUMN {column}"
    for column in (
        "baseline DOUBLE", "baseline_label VARCHAR", "baseline_ci_low DOUBLE",
        "baseline_ci_high DOUBLE", "beats_baseline BOOLEAN", "rule VARCHAR", "rule_value DOUBLE",
        "rule_ci_low DOUBLE", "rule_ci_high DOUBLE", "rule_interval VARCHAR", "rule_share DOUBLE",
        "rule_ceiling DOUBLE",
    )
]  # fmt: skip

# (version, statements). Append only; never edit an applied entry. A new entry builds its
# DDL from the declarations in `evalkeeper.warehouse.tables` (e.g. `TABLES["x"].ddl()`), and
# tests/warehouse/test_tables.py checks that a freshly migrated file matches them.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
    (7, SCHEMA_V7),
]
