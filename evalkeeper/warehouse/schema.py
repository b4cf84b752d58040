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

# (version, statements). Append only; never edit an applied entry.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (4, SCHEMA_V4),
    (5, SCHEMA_V5),
]

Conflict = Literal["ignore", "replace", "with_run", "supersede"]

# How a batch row that already exists is treated. `ignore` makes re-ingest and resume
# idempotent (first write wins); `replace` is for rows that move through states;
# `with_run` rows (no key of their own) are inserted only for the runs (experiment,
# example, repetition) that the same batch inserted. `supersede` entries are not tables:
# their rows are keys whose stored rows the same batch replaces, deleted first in the
# batch's transaction (a resumed run re-attempting a failed target call, a re-score).
RUN_KEY = ("experiment_id", "example_id", "repetition")
WRITE_POLICY: dict[str, Conflict] = {
    "examples": "ignore",
    "experiments": "replace",
    "runs": "ignore",
    "scores": "with_run",
    "summary_scores": "replace",
    "judges": "replace",
    "judge_votes": "ignore",
    "judge_cache": "ignore",
    "comparisons": "ignore",
    "traces": "ignore",
    "trace_cursors": "replace",
    "monitoring_windows": "replace",
    "monitoring_webhooks": "ignore",
    "monitoring_scores": "ignore",
    "monitoring_ticks": "replace",
    "monitoring_counts": "replace",
    "monitoring_rollbacks": "ignore",
    "monitoring_deliveries": "ignore",
    "calibration_items": "ignore",
    "human_labels": "replace",
    "judge_calibrations": "ignore",
    "judge_status_history": "ignore",
    "supersede_runs": "supersede",
    "supersede_scores": "supersede",
}

# What a supersede entry deletes: (table, key columns matched against the entry's rows).
# `supersede_runs` rows are run keys (the run, its scores and its judge votes go);
# `supersede_scores` rows are run keys plus an evaluator (that evaluator's scores and
# votes on that run go).
SUPERSEDE: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {
    "supersede_runs": [
        (table, tuple((c, c) for c in RUN_KEY)) for table in ("scores", "judge_votes", "runs")
    ],
    "supersede_scores": [
        ("scores", (*((c, c) for c in RUN_KEY), ("evaluator", "evaluator"))),
        ("judge_votes", (*((c, c) for c in RUN_KEY), ("judge", "evaluator"))),
    ],
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
    # Pass rate per experiment (= over time) for every evaluator, suite and dataset, with a
    # 95% Wilson score interval (z = 1.959964; it stays inside [0, 1] and does not collapse
    # at 0% or 100%). Rows are treated as independent: with repetitions the interval is
    # narrower than the cluster-robust one `compare` reports. Errored and skipped rows are
    # left out of the rate and counted in n_errors.
    "pass_rate_trend": """
        WITH agg AS (
            SELECT experiment_id, evaluator,
                   count(*) FILTER (WHERE error IS NOT NULL) AS n_errors,
                   count(passed) FILTER (WHERE error IS NULL) AS n,
                   sum(CAST(passed AS INTEGER)) FILTER (WHERE error IS NULL) AS n_passed,
                   avg(value) FILTER (WHERE error IS NULL) AS mean_value
            FROM scores
            WHERE NOT skipped
            GROUP BY experiment_id, evaluator
        ), rated AS (
            SELECT *, CAST(n_passed AS DOUBLE) / nullif(n, 0) AS p, 1.959963984540054 AS z
            FROM agg
        )
        SELECT e.suite, e.dataset, r.evaluator, e.started_at, e.experiment_id,
               e.dataset_version, e.git_branch, e.git_commit, e.agent_version, e.model,
               e.status, r.n, r.n_passed, r.n_errors, r.p AS pass_rate,
               (r.p + r.z * r.z / (2 * r.n)
                 - r.z * sqrt(r.p * (1 - r.p) / r.n + r.z * r.z / (4.0 * r.n * r.n)))
                 / (1 + r.z * r.z / r.n) AS ci_low,
               (r.p + r.z * r.z / (2 * r.n)
                 + r.z * sqrt(r.p * (1 - r.p) / r.n + r.z * r.z / (4.0 * r.n * r.n)))
                 / (1 + r.z * r.z / r.n) AS ci_high,
               r.mean_value
        FROM rated r JOIN experiments e USING (experiment_id)
    """,
    # Every per-row regression (a critical or incident example that passed in the baseline
    # and failed in the candidate) from the latest stored comparison of each
    # (experiment, baseline) pair, with its incident id and both outputs.
    "regressions": """
        SELECT c.created_at AS compared_at, c.experiment_id, c.baseline_id, c.suite,
               c.dataset, c.example_id, c.incident_id, c.evaluator, c.category,
               c.baseline_output, c.candidate_output, e.started_at, e.git_branch,
               e.git_commit, e.agent_version, c.comparison_id
        FROM comparisons c
        JOIN (
            SELECT comparison_id FROM comparisons
            WHERE kind = 'verdict'
            QUALIFY row_number() OVER (
                PARTITION BY experiment_id, baseline_id ORDER BY created_at DESC
            ) = 1
        ) latest USING (comparison_id)
        LEFT JOIN experiments e ON e.experiment_id = c.experiment_id
        WHERE c.kind = 'row'
    """,
    # One row per stored trace, flattened for analysts: tool names in call order, counts,
    # an error flag and the feedback score; the JSON columns stay for drilling down.
    "trace_overview": """
        SELECT trace_id, time, service, environment, version, model, conversation_id,
               latency_ms, error, error IS NOT NULL AS has_error,
               CAST(json_extract_string(tool_calls, '$[*].name') AS VARCHAR[]) AS tool_names,
               CAST(json_array_length(tool_calls) AS INTEGER) AS n_tool_calls,
               CAST(json_array_length(context) AS INTEGER) AS n_context,
               TRY_CAST(feedback->>'$.score' AS DOUBLE) AS feedback_score,
               feedback->>'$.comment' AS feedback_comment,
               inputs, outputs, tool_calls, context, metadata, source, ingested_at
        FROM traces
    """,
    # One row per monitoring window with its latest tick's traffic and the state of its
    # rollback: decided (and when, on which evaluator) and delivered on every channel.
    "monitor_windows": """
        WITH last_tick AS (
            SELECT window_id, tick_at,
                   max(window_n) AS window_traces, max(baseline_n) AS baseline_traces
            FROM monitoring_counts
            GROUP BY window_id, tick_at
            QUALIFY row_number() OVER (PARTITION BY window_id ORDER BY tick_at DESC) = 1
        ), delivered AS (
            SELECT window_id, list(DISTINCT channel) FILTER (WHERE ok) AS ok_channels,
                   count(*) FILTER (WHERE NOT ok) AS failed_attempts,
                   arg_max(error, attempt) FILTER (WHERE NOT ok) AS last_delivery_error
            FROM monitoring_deliveries GROUP BY window_id
        )
        SELECT w.window_id, w.deploy_id, w.service, w.environment, w.version,
               w.previous_version, w.deployed_at, w.ends_at, w.baseline_start,
               w.baseline_end, w.state, w.decision, w.last_tick_at, w.opened_at, w.closed_at,
               coalesce(t.window_traces, 0) AS window_traces,
               coalesce(t.baseline_traces, 0) AS baseline_traces,
               r.decided_at AS rollback_decided_at, r.evaluator AS rollback_evaluator,
               r.window_id IS NOT NULL AS rollback_decided,
               r.window_id IS NOT NULL AND coalesce(
                   list_has_all(coalesce(d.ok_channels, []),
                                CAST(json_extract_string(r.channels, '$[*]') AS VARCHAR[]))
                   AND json_array_length(r.channels) > 0, false) AS rollback_delivered,
               coalesce(d.failed_attempts, 0) AS failed_delivery_attempts,
               d.last_delivery_error, w.reasons
        FROM monitoring_windows w
        LEFT JOIN last_tick t USING (window_id)
        LEFT JOIN monitoring_rollbacks r USING (window_id)
        LEFT JOIN delivered d USING (window_id)
    """,
    # One row per tick and evaluator: the traffic on each side, the rates, the statistic
    # against its threshold and that evaluator's decision, beside the window's.
    "monitor_ticks": """
        SELECT c.window_id, w.service, w.version, w.deployed_at, c.tick_at,
               date_diff('minute', w.deployed_at, c.tick_at) / 60.0 AS hours_since_deploy,
               c.evaluator, c.baseline_n AS baseline_traces, c.baseline_flags,
               c.baseline_errors, c.window_n AS window_traces, c.window_flags,
               c.window_errors, c.baseline_rate, c.upper_bound, c.window_rate, c.statistic,
               c.threshold, c.decision, c.reason, t.decision AS window_decision, t.final,
               t.new_window_traces, t.new_baseline_traces, t.ticked_at
        FROM monitoring_counts c
        JOIN monitoring_ticks t USING (window_id, tick_at)
        JOIN monitoring_windows w USING (window_id)
    """,
    # Every judge calibration (one row per judge version and measurement), newest first:
    # agreement with the majority human label and its Wilson interval, kappa (asymptotic
    # SE, BCa bootstrap interval), AC1, the human ceiling, and the status decided from them.
    "calibrations": """
        SELECT created_at, judge, prompt_version, judge_model, quarter, status, reason,
               n_items, n_ties, agreement, agreement_ci_low, agreement_ci_high, kappa,
               kappa_se, kappa_ci_low, kappa_ci_high, ac1, ac1_se, true_pass_rate,
               true_fail_rate, ceiling_n_items, ceiling_agreement, ceiling_kappa, ceiling_ac1,
               ceiling_alpha, bar, calibration_id, details
        FROM judge_calibrations
        ORDER BY created_at DESC, judge
    """,
    # One row per judge version ever scored or calibrated: its latest status (from the
    # history; `uncalibrated` when never calibrated), the evidence of its latest
    # calibration, how many scores it gave, and whether it gates today (`gating` is false
    # for the judge the `judges` table holds as retired).
    "judge_health": """
        WITH versions AS (
            SELECT evaluator AS judge, evaluator_version AS prompt_version,
                   coalesce(judge_model, '') AS judge_model, count(*) AS n_scores,
                   max(created_at) AS last_scored_at
            FROM scores WHERE judge_model IS NOT NULL AND NOT skipped
            GROUP BY ALL
        ), latest_status AS (
            SELECT * FROM judge_status_history
            QUALIFY row_number() OVER (
                PARTITION BY judge, prompt_version, judge_model ORDER BY changed_at DESC) = 1
        ), latest_cal AS (
            SELECT * FROM judge_calibrations
            QUALIFY row_number() OVER (
                PARTITION BY judge, prompt_version, judge_model ORDER BY created_at DESC) = 1
        ), keys AS (
            SELECT judge, prompt_version, judge_model FROM versions
            UNION SELECT judge, prompt_version, judge_model FROM latest_status
        )
        SELECT k.judge, k.prompt_version, k.judge_model,
               coalesce(s.status, 'uncalibrated') AS status, s.reason, s.changed_at,
               j.status = 'retired' AS judge_retired,
               coalesce(j.status, '') <> 'retired' AS gating,
               c.quarter, c.n_items, c.agreement, c.agreement_ci_low, c.agreement_ci_high,
               c.kappa, c.kappa_ci_low, c.kappa_ci_high, c.ac1, c.ceiling_agreement,
               c.ceiling_kappa, c.bar, coalesce(v.n_scores, 0) AS n_scores, v.last_scored_at
        FROM keys k
        LEFT JOIN latest_status s USING (judge, prompt_version, judge_model)
        LEFT JOIN latest_cal c USING (judge, prompt_version, judge_model)
        LEFT JOIN versions v USING (judge, prompt_version, judge_model)
        LEFT JOIN judges j ON j.judge = k.judge
    """,
    # The LLM judges' scores, each flagged with its judge version's status: a retired
    # version's scores stay in `scores` as they were, and read `retired = true` here.
    "judge_scores": """
        WITH latest_status AS (
            SELECT judge, prompt_version, judge_model, status FROM judge_status_history
            QUALIFY row_number() OVER (
                PARTITION BY judge, prompt_version, judge_model ORDER BY changed_at DESC) = 1
        )
        SELECT s.experiment_id, s.example_id, s.repetition, s.evaluator AS judge,
               s.evaluator_version AS prompt_version, s.judge_model, s.passed, s.value,
               s.comment, s.error, s.category, s.created_at,
               coalesce(l.status, 'uncalibrated') AS judge_status,
               coalesce(l.status = 'retired', false) AS retired
        FROM scores s
        LEFT JOIN latest_status l ON l.judge = s.evaluator
             AND l.prompt_version = s.evaluator_version AND l.judge_model = s.judge_model
        WHERE s.judge_model IS NOT NULL AND NOT s.skipped
    """,
}
