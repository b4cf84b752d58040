"""The analyst views, (re)created by `migrate` whenever a definition changes (its hash is
kept in `schema_views`), so a view can change without a migration."""

from __future__ import annotations

from evalkeeper.warehouse.judge_errors import CALIBRATION_COUNTS_SQL
from evalkeeper.warehouse.stability import ROW_STABILITY_VIEW

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
    # (experiment, baseline) pair, with its incident id and both outputs. A flaky row the
    # guard did not gate on (verdict 'flaky' or 'inconclusive' on its row) is left out.
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
        WHERE c.kind = 'row' AND c.verdict = 'regression'
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
                   max(window_n + window_errors) AS window_traces,
                   max(baseline_n + baseline_errors) AS baseline_traces
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
               c.evaluator, c.baseline_n + c.baseline_errors AS baseline_traces, c.baseline_flags,
               c.baseline_errors, c.window_n + c.window_errors AS window_traces, c.window_flags,
               c.window_errors, c.baseline_rate, c.upper_bound, c.window_rate, c.statistic,
               c.threshold, c.decision, c.reason, t.decision AS window_decision, t.final,
               t.new_window_traces, t.new_baseline_traces, t.ticked_at
        FROM monitoring_counts c
        JOIN monitoring_ticks t USING (window_id, tick_at)
        JOIN monitoring_windows w USING (window_id)
    """,
    # Every judge calibration (one row per judge version and measurement), newest first:
    # agreement with the majority human label and its Wilson interval, kappa (asymptotic
    # SE, BCa bootstrap interval), AC1, the human ceiling, and the status decided from them;
    # the constant-answer baseline (`beats_baseline` false: the judge does no better than
    # always giving the commonest human label) and the retire rule that decided (`rule`:
    # agreement, kappa or ac1; `rule_share`: the bar's share of `rule_ceiling`, or NULL for an
    # absolute bar; rows recorded before the rule was stored: agreement).
    "calibrations": """
        SELECT created_at, judge, prompt_version, judge_model, quarter, status, reason,
               n_items, n_ties, agreement, agreement_ci_low, agreement_ci_high, kappa,
               kappa_se, kappa_ci_low, kappa_ci_high, ac1, ac1_se, true_pass_rate,
               true_fail_rate, ceiling_n_items, ceiling_agreement, ceiling_kappa, ceiling_ac1,
               ceiling_alpha, bar, calibration_id, details, baseline, baseline_label,
               baseline_ci_low, baseline_ci_high, beats_baseline,
               coalesce(rule, 'agreement') AS rule, rule_value, rule_ci_low, rule_ci_high,
               rule_interval, rule_share, rule_ceiling
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
    # Judge-corrected pass rates: one row per experiment and LLM judge version, the raw pass
    # rate beside the Rogan-Gladen estimate (p + TNR - 1) / (TPR + TNR - 1), clipped to
    # [0, 1], from that version's latest calibration (counts from its confusion table). The
    # 95% interval is the delta method with Var(p) = p (1 - p) / n: rows are treated as
    # independent here (the cluster-robust SE by example that `compare` uses with
    # repetitions is left out, so with repetitions this interval is narrower than
    # compare's); the calibration's binomial error of TPR and TNR is included. `correction`
    # is `corrected`, `uninformative` (J = TPR + TNR - 1 has a 95% lower bound at or below
    # 0.1, the default of EVALKEEPER_CORRECTED_MIN_J: no corrected number) or
    # `uncalibrated` (no calibration of the version, too few labels, or no human-pass or
    # human-fail item). A level is biased by the judge's errors; a paired difference of two
    # runs scored by the same version is not.
    "corrected_pass_rates": f"""
        WITH rates AS (
            SELECT experiment_id, evaluator AS judge, evaluator_version AS prompt_version,
                   judge_model, count(passed) FILTER (WHERE error IS NULL) AS n,
                   sum(CAST(passed AS INTEGER)) FILTER (WHERE error IS NULL) AS n_passed,
                   count(*) FILTER (WHERE error IS NOT NULL) AS n_errors
            FROM scores
            WHERE NOT skipped AND judge_model IS NOT NULL
            GROUP BY ALL
        ), cal AS ({CALIBRATION_COUNTS_SQL}
        ), joined AS (
            SELECT r.*, c.quarter, c.n_items AS calibration_items,
                   c.status AS calibration_status, c.calibration_id, c.created_at AS calibrated_at,
                   c.n_pass AS n_human_pass, c.tp, c.n_fail AS n_human_fail, c.tn,
                   CAST(r.n_passed AS DOUBLE) / nullif(r.n, 0) AS p,
                   CAST(c.tp AS DOUBLE) / nullif(c.n_pass, 0) AS tpr,
                   CAST(c.tn AS DOUBLE) / nullif(c.n_fail, 0) AS tnr,
                   1.959963984540054 AS z
            FROM rates r
            LEFT JOIN cal c USING (judge, prompt_version, judge_model)
        ), est AS (
            SELECT *, tpr + tnr - 1 AS j,
                   tpr + tnr - 1 - z * sqrt(tpr * (1 - tpr) / n_human_pass
                                            + tnr * (1 - tnr) / n_human_fail) AS j_ci_low,
                   (p + tnr - 1) / nullif(tpr + tnr - 1, 0) AS theta
            FROM joined
        ), graded AS (
            SELECT *,
                   CASE WHEN calibration_id IS NULL OR calibration_status = 'uncalibrated'
                             OR coalesce(n_human_pass, 0) = 0
                             OR coalesce(n_human_fail, 0) = 0 OR p IS NULL
                        THEN 'uncalibrated'
                        WHEN j_ci_low <= 0.1 THEN 'uninformative'
                        ELSE 'corrected' END AS correction,
                   sqrt(p * (1 - p) / n + theta * theta * tpr * (1 - tpr) / n_human_pass
                        + (1 - theta) * (1 - theta) * tnr * (1 - tnr) / n_human_fail)
                     / abs(j) AS se
            FROM est
        )
        SELECT e.suite, e.dataset, e.started_at, g.experiment_id, e.git_branch, e.git_commit,
               g.judge, g.prompt_version, g.judge_model, g.n, g.n_passed, g.n_errors,
               g.p AS pass_rate, g.correction,
               CASE WHEN g.correction = 'corrected' THEN greatest(least(g.theta, 1), 0) END
                 AS corrected_pass_rate,
               CASE WHEN g.correction = 'corrected'
                    THEN greatest(least(g.theta - g.z * g.se, 1), 0) END AS ci_low,
               CASE WHEN g.correction = 'corrected'
                    THEN greatest(least(g.theta + g.z * g.se, 1), 0) END AS ci_high,
               CASE WHEN g.correction = 'corrected' THEN g.se END AS se,
               g.tpr AS true_pass_rate, g.tnr AS true_fail_rate, g.n_human_pass,
               g.n_human_fail, g.j AS youden_j, g.j_ci_low AS youden_j_ci_low, g.quarter,
               g.calibration_items, g.calibration_status, g.calibration_id, g.calibrated_at
        FROM graded g JOIN experiments e USING (experiment_id)
    """,
    # One row per dataset, dataset version, target pin (target_spec, agent_version, model),
    # example and evaluator (version, judge model): runs, scored observations, passes,
    # fails, errors, the pass rate with its 95% Wilson interval, and its class (stable_pass,
    # stable_fail, flaky, insufficient) with the default thresholds
    # (`evalkeeper.warehouse.stability`; the method: `evalkeeper.analysis.stability`).
    "row_stability": ROW_STABILITY_VIEW,
}
