"""The counts behind flaky rows (`evalkeeper.analysis.stability`), read from the warehouse.

* ``ROW_STABILITY_VIEW`` — the body of the analyst view `row_stability`: one row per
  dataset, dataset version, target pin, example and evaluator (version, judge model) with its
  runs, observations, passes, fails, errors, pass rate, Wilson interval and class, computed
  with the default thresholds of `evalkeeper.settings.AnalysisSettings`
  (``flaky_confidence`` 0.95, ``flaky_tolerance`` 0.10). `evalkeeper flaky` and the report
  read its counts and classify them again with the settings in force (the same numbers when
  those are the defaults: tests/analysis/test_stability.py holds the two side by side).
* ``stability_rows(con, *, dataset, dataset_version, evaluator, examples)`` — the view's
  rows, filtered.
* ``guard_history(con, candidate, example_ids)`` — the same counts for the per-row guard:
  the candidate's dataset version, pin and evaluator versions, over the runs started before
  the candidate (the candidate left out).

An observation is a scored pass/fail row: not skipped, no error, ``passed`` set, of an
evaluator that gives pass/fail at all. Errored rows are counted in ``errors`` and left out
of the rate. The pin is ``(target_spec, agent_version, model)`` of the experiment (why not
the commit: `evalkeeper.analysis.stability`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import duckdb
import polars as pl

from evalkeeper.settings import AnalysisSettings

KEY = (
    "dataset", "dataset_version", "target_spec", "agent_version", "model", "example_id",
    "evaluator", "evaluator_version", "judge_model",
)  # fmt: skip
"""The columns that identify a row of `row_stability`."""

DEFAULT_CONFIDENCE = float(AnalysisSettings.model_fields["flaky_confidence"].default)
DEFAULT_TOLERANCE = float(AnalysisSettings.model_fields["flaky_tolerance"].default)


def _counts_sql(where_scores: str = "", where_runs: str = "", ctes: str = "") -> str:
    """Per KEY: runs, observations, passes, fails, errors. The rows of `scores` are summed per
    run first (cheaper than a distinct count of runs: about 1.5x on 7.7M rows), then joined
    with their experiment; `where_scores` (SQL starting with AND, on `s`) restricts the
    score rows, `where_runs` (on `e`, the experiment) the runs; `ctes` come first."""
    return f"""
    WITH {ctes} bin AS (
        SELECT DISTINCT evaluator FROM scores WHERE passed IS NOT NULL AND NOT skipped
    ), per_run AS (
        SELECT s.experiment_id, s.dataset_version, s.example_id, s.evaluator,
               s.evaluator_version, s.judge_model, any_value(s.category) AS category,
               count(*) FILTER (WHERE s.error IS NULL AND s.passed IS NOT NULL) AS n_ok,
               count(*) FILTER (WHERE s.error IS NULL AND s.passed) AS n_pass,
               count(*) FILTER (WHERE s.error IS NOT NULL OR s.passed IS NULL) AS n_err
        FROM scores s
        WHERE NOT s.skipped AND s.evaluator IN (SELECT evaluator FROM bin) {where_scores}
        GROUP BY s.experiment_id, s.dataset_version, s.example_id, s.evaluator,
                 s.evaluator_version, s.judge_model
    )
    SELECT e.dataset, r.dataset_version, e.target_spec, e.agent_version, e.model,
           r.example_id, r.evaluator, r.evaluator_version, r.judge_model,
           any_value(r.category) AS category,
           count(*) FILTER (WHERE r.n_ok > 0) AS runs,
           CAST(sum(r.n_ok) AS BIGINT) AS observations,
           CAST(sum(r.n_pass) AS BIGINT) AS passes,
           CAST(sum(r.n_ok - r.n_pass) AS BIGINT) AS fails,
           CAST(sum(r.n_err) AS BIGINT) AS errors,
           min(e.started_at) AS first_run_at, max(e.started_at) AS last_run_at
    FROM per_run r JOIN experiments e USING (experiment_id)
    WHERE true {where_runs}
    GROUP BY e.dataset, r.dataset_version, e.target_spec, e.agent_version, e.model,
             r.example_id, r.evaluator, r.evaluator_version, r.judge_model
    """


def _view_sql(confidence: float, tolerance: float) -> str:
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    # the same arithmetic, in the same order, as `evalkeeper.analysis.stability.wilson`
    return f"""
    WITH counts AS ({_counts_sql()}
    ), rated AS (
        SELECT *, CAST(passes AS DOUBLE) / nullif(observations, 0) AS p,
               CAST({z!r} AS DOUBLE) AS z
        FROM counts
    ), wilson AS (
        SELECT *, (p + z * z / (2 * observations)) / (1 + z * z / observations) AS centre,
               z * sqrt(p * (1 - p) / observations + z * z / (4.0 * observations * observations))
                 / (1 + z * z / observations) AS half
        FROM rated
    ), bounded AS (
        SELECT *, greatest(centre - half, 0.0) AS ci_low, least(centre + half, 1.0) AS ci_high
        FROM wilson
    )
    SELECT b.dataset, b.dataset_version, b.target_spec, b.agent_version, b.model,
           b.example_id, b.evaluator, b.evaluator_version, b.judge_model, b.category,
           coalesce(x.critical, false) AS critical, x.incident_id,
           b.runs, b.observations, b.passes, b.fails, b.errors, b.p AS pass_rate,
           b.ci_low, b.ci_high,
           CASE WHEN b.observations = 0 THEN 'insufficient'
                WHEN b.ci_low >= 1 - {tolerance!r} THEN 'stable_pass'
                WHEN b.ci_high <= {tolerance!r} THEN 'stable_fail'
                WHEN b.passes > 0 AND b.fails > 0 THEN 'flaky'
                ELSE 'insufficient' END AS stability,
           b.first_run_at, b.last_run_at
    FROM bounded b
    LEFT JOIN examples x ON x.dataset_version = b.dataset_version
         AND x.example_id = b.example_id
    """


ROW_STABILITY_VIEW = _view_sql(DEFAULT_CONFIDENCE, DEFAULT_TOLERANCE)
"""The `row_stability` view (`evalkeeper.warehouse.views.VIEWS`)."""


def stability_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    dataset: str | None = None,
    dataset_version: str | None = None,
    evaluator: str | None = None,
    examples: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The `row_stability` view's rows, filtered, ordered by dataset, version, pass rate."""
    where: list[str] = ["true"]
    params: list[Any] = []
    for column, value in (
        ("dataset", dataset),
        ("dataset_version", dataset_version),
        ("evaluator", evaluator),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if examples is not None:
        where.append("list_contains(?, example_id)")
        params.append(list(examples))
    sql = (
        f"SELECT * FROM row_stability WHERE {' AND '.join(where)} "
        "ORDER BY dataset, dataset_version, target_spec, pass_rate NULLS LAST, example_id, "
        "evaluator"
    )
    return con.sql(sql, params=params).pl()


_GUARD_CTES = """
    me AS (SELECT * FROM experiments WHERE experiment_id = $candidate),
    cand AS (
        SELECT DISTINCT example_id, evaluator, evaluator_version, judge_model FROM scores
        WHERE experiment_id = $candidate AND NOT skipped AND list_contains($ids, example_id)
    ),"""

# the candidate's evaluator versions of the asked examples ...
_GUARD_SCORES = """
    AND list_contains($ids, s.example_id)
    AND (s.example_id, s.evaluator, s.evaluator_version, coalesce(s.judge_model, ''))
        IN (SELECT (example_id, evaluator, evaluator_version, coalesce(judge_model, ''))
            FROM cand)
"""
# ... over the runs of the candidate's dataset version and pin started before it, the
# candidate left out
_GUARD_RUNS = """
    AND (e.dataset, e.dataset_version, e.target_spec, coalesce(e.agent_version, ''),
         coalesce(e.model, '')) IN (
        SELECT (dataset, dataset_version, target_spec, coalesce(agent_version, ''),
                coalesce(model, '')) FROM me)
    AND e.experiment_id <> $candidate
    AND e.started_at < (SELECT started_at FROM me)
"""

_GUARD_SQL = _counts_sql(_GUARD_SCORES, _GUARD_RUNS, _GUARD_CTES)


def guard_history(
    con: duckdb.DuckDBPyConnection, candidate: Mapping[str, Any], example_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(example_id, evaluator) -> (runs, passes, observations) of `example_ids` over the
    runs of the candidate's dataset version and pin started before it, for the candidate's
    evaluator versions; {} without ids. `candidate` is its `experiments` row (only its
    ``experiment_id`` is read)."""
    if not example_ids:
        return {}
    params = {"candidate": candidate["experiment_id"], "ids": sorted(set(example_ids))}
    out: dict[tuple[str, str], tuple[int, int, int]] = {}
    for row in con.sql(_GUARD_SQL, params=params).pl().iter_rows(named=True):
        key = (str(row["example_id"]), str(row["evaluator"]))
        counts = (int(row["runs"]), int(row["passes"]), int(row["observations"]))
        if key not in out or counts[2] > out[key][2]:
            out[key] = counts
    return out


def pin_of(
    con: duckdb.DuckDBPyConnection, experiment_id: str
) -> tuple[str, str | None, str | None]:
    """The target pin ``(target_spec, agent_version, model)`` of an experiment."""
    rows = con.execute(
        "SELECT target_spec, agent_version, model FROM experiments WHERE experiment_id = ?",
        [experiment_id],
    ).fetchall()
    if not rows:
        raise KeyError(f"no experiment {experiment_id!r}")
    spec, agent, model = rows[0]
    return str(spec), agent, model
