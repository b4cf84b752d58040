"""What a judge-corrected pass rate reads from the warehouse: which judge version scored
each evaluator of an experiment, and each judge version's latest calibration counts.

* ``load_judge_errors(con, candidate_id, baseline_id) -> JudgeErrorFacts`` — read-only.

The counts come from the confusion table calibration stores with each measurement
(`judge_calibrations.details.confusion`: rows the judge's label, columns the majority human
label, the pass label first): ``n_pass`` items humans passed (column 0), ``tp`` of them the
judge passed (cell [0][0]), ``n_fail`` items humans failed (the other columns) and ``tn``
of them the judge failed (``n_fail`` minus the judge's passes among them). The same SQL
(`CALIBRATION_COUNTS_SQL`) feeds the `corrected_pass_rates` view. The statistics are
`evalkeeper.analysis.corrected`'s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

CALIBRATION_COUNTS_SQL = """
    SELECT judge, prompt_version, judge_model, quarter, n_items, status, calibration_id,
           created_at, n_pass, tp, n_total - n_pass AS n_fail,
           (n_total - n_pass) - (judge_pass - tp) AS tn
    FROM (
        SELECT *, CAST(coalesce(list_sum(list_transform(m, lambda x: x[1])), 0) AS BIGINT) AS n_pass,
               coalesce(m[1][1], 0) AS tp,
               CAST(coalesce(list_sum(list_transform(m, lambda x: list_sum(x))), 0) AS BIGINT) AS n_total,
               CAST(coalesce(list_sum(m[1]), 0) AS BIGINT) AS judge_pass
        FROM (
            SELECT judge, prompt_version, judge_model, quarter, n_items, status,
                   calibration_id, created_at,
                   CAST(json_extract(details, '$.confusion') AS BIGINT[][]) AS m
            FROM judge_calibrations
            QUALIFY row_number() OVER (
                PARTITION BY judge, prompt_version, judge_model ORDER BY created_at DESC) = 1
        )
    )
"""
"""The latest calibration of each judge version, with its counts (one row per version)."""

_VERSIONS_SQL = """
    SELECT DISTINCT experiment_id, evaluator, evaluator_version, judge_model FROM scores
    WHERE experiment_id IN ($1, $2) AND judge_model IS NOT NULL AND NOT skipped
    ORDER BY ALL
"""


@dataclass(frozen=True)
class CalibrationCounts:
    """One judge version's latest calibration: the counts and where they come from."""

    n_pass: int
    tp: int
    n_fail: int
    tn: int
    quarter: str
    n_items: int
    status: str
    """The status the measurement earned (`uncalibrated`: fewer labels than the minimum)."""
    calibration_id: str
    calibrated_at: datetime


JudgeKey = tuple[str, str, str]
"""(judge, prompt_version, judge_model)."""


@dataclass(frozen=True)
class JudgeErrorFacts:
    """What `load_judge_errors` read."""

    versions: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    """(experiment_id, evaluator) -> the (prompt_version, judge_model) pairs that scored it."""
    calibrations: dict[JudgeKey, CalibrationCounts] = field(default_factory=dict)
    """Each judge version's latest calibration."""


def load_judge_errors(
    con: duckdb.DuckDBPyConnection, candidate_id: str, baseline_id: str
) -> JudgeErrorFacts:
    """The judge versions that scored the two experiments (the same filter as the pair's
    other reads, so DuckDB prunes by experiment), and the latest calibration of every judge
    version."""
    versions: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    rows = con.execute(_VERSIONS_SQL, [candidate_id, baseline_id]).fetchall()
    for eid, ev, version, model in rows:
        versions[(eid, ev)].append((version, model))
    cals: dict[JudgeKey, CalibrationCounts] = {}
    for row in con.execute(CALIBRATION_COUNTS_SQL).fetchall():
        judge, version, model, quarter, n_items, status, cal_id, at, n_pass, tp, n_fail, tn = row
        cals[(judge, version, model)] = CalibrationCounts(
            n_pass=int(n_pass),
            tp=int(tp),
            n_fail=int(n_fail),
            tn=int(tn),
            quarter=quarter,
            n_items=int(n_items),
            status=status,
            calibration_id=cal_id,
            calibrated_at=at,
        )
    return JudgeErrorFacts(versions=dict(versions), calibrations=cals)
