"""Baseline selection: which earlier experiment a new one is compared with."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from evalkeeper.analysis.models import CompareError
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import error_counts


def experiment_row(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, Any] | None:
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


def unknown_experiment(experiment_id: str, warehouse: Warehouse, role: str) -> CompareError:
    return CompareError(
        f"unknown {role} experiment {experiment_id!r}: it is not in {warehouse.path}. "
        "List the experiments with `evalkeeper experiments`."
    )


# What decides whether an experiment can be a baseline, besides its error counts
# (`warehouse.queries.error_counts`): its status, missing rows, the evaluators it was asked
# to run, and its own latest verdict.
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


def eligibility(
    con: duckdb.DuckDBPyConnection,
    experiment_ids: list[str],
    settings: Settings,
    spooled: set[str] | None = None,
) -> dict[str, list[str]]:
    """experiment id -> why it cannot serve as an automatic baseline ([] when it can).

    A baseline completed with all its rows in the warehouse (none waiting in the spool),
    every error share at or under `max_error_rate`, every evaluator it was asked to run
    scored (or allowed to be skipped: `optional`), and its own verdict not `regression`."""
    if not experiment_ids:
        return {}
    limit = settings.analysis.max_error_rate
    out: dict[str, list[str]] = {}
    rows = con.execute(_ELIGIBILITY_SQL, {"ids": experiment_ids}).fetchall()
    counts = error_counts(con, experiment_ids)
    for eid, status, evaluators, params, verdict in rows:
        by_name = counts[eid]
        n_runs, run_errors, _ = by_name.pop("target", (0, 0, 0))
        why = []
        missing = int(json.loads(params or "{}").get("missing_rows") or 0)
        if status != "completed":
            why.append(f"status {status}")
        if missing:
            why.append(f"{missing} row(s) missing")
        if spooled and eid in spooled:
            why.append("rows still waiting in the spool")
        if not n_runs:
            why.append("no runs")
        elif run_errors / n_runs > limit:
            why.append(f"target error rate {run_errors / n_runs:.0%} > {limit:.0%}")
        asked = {e["name"]: bool(e.get("optional")) for e in json.loads(evaluators or "[]")}
        skipped = []
        for name, optional in asked.items():
            if name not in by_name:
                if n_runs > run_errors:
                    why.append(f"evaluator {name} has no scores")
                continue
            n, errors, n_skipped = by_name[name]
            if n and errors / n > limit:
                why.append(f"{name} error rate {errors / n:.0%} > {limit:.0%}")
            if n_skipped and not optional:
                skipped.append(name)
        if skipped:
            why.append(f"skipped {', '.join(skipped)} (not allowed)")
        if verdict == "regression":
            why.append("its own verdict was regression")
        out[eid] = why
    return out


def auto_baseline(
    con: duckdb.DuckDBPyConnection,
    cand: dict[str, Any],
    branch: str,
    settings: Settings,
    spooled: set[str] | None = None,
) -> tuple[str | None, dict[str, list[str]]]:
    """The latest eligible experiment of the candidate's suite and dataset on `branch`,
    started before it; and the newer ones passed over, with why."""
    passed_over: dict[str, list[str]] = {}
    offset, page = 0, 25
    while True:
        ids = [
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
                    page,
                    offset,
                ],
            ).fetchall()
        ]
        if not ids:
            return None, passed_over
        why = eligibility(con, ids, settings, spooled)
        for eid in ids:
            if not why.get(eid):
                return eid, passed_over
            passed_over[eid] = why[eid]
        offset += page


def spooled_experiments(warehouse: Warehouse) -> set[str]:
    """Experiments with rows still waiting in the spool."""
    frame = warehouse.spooled_frame("runs")
    return set() if frame is None else set(frame.get_column("experiment_id").unique())


def baseline_ref(warehouse: Warehouse, baseline: str, settings: Settings) -> tuple[str, Settings]:
    """Read a gate's `--baseline`: an experiment id as is, else a branch whose latest
    completed, non-regressed run is the baseline. Returns what `compare` takes as
    `baseline` ("auto" or the id) and the settings to pass with it."""
    if baseline == "auto":
        return "auto", settings
    if warehouse.rows("SELECT 1 FROM experiments WHERE experiment_id = ?", [baseline]):
        return baseline, settings
    return "auto", settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"baseline_branch": baseline})}
    )


def find_baseline(
    warehouse: Warehouse, experiment_id: str, branch: str, settings: Settings | None = None
) -> str | None:
    """The ``auto`` baseline of `experiment_id` on `branch`, or None (see `eligibility`)."""
    settings = settings or Settings()
    spooled = spooled_experiments(warehouse)
    with warehouse.connect() as con:
        cand = experiment_row(con, experiment_id)
        if cand is None:
            raise unknown_experiment(experiment_id, warehouse, "candidate")
        return auto_baseline(con, cand, branch, settings, spooled)[0]
