"""Baseline selection: which earlier experiment a new one is compared with."""

from __future__ import annotations

from typing import Any

import duckdb

from evalkeeper.analysis.models import CompareError
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse


def experiment_row(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, Any] | None:
    cur = con.execute(
        "SELECT experiment_id, suite, dataset, dataset_version, git_branch, status, "
        "started_at, repetitions FROM experiments WHERE experiment_id = ?",
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


def auto_baseline(con: duckdb.DuckDBPyConnection, cand: dict[str, Any], branch: str) -> str | None:
    rows = con.execute(
        """
        SELECT experiment_id FROM experiments e
        WHERE suite = ? AND dataset = ? AND git_branch = ? AND status = 'completed'
          AND experiment_id <> ? AND started_at < ?
          -- a run whose own latest verdict was a regression never becomes a baseline
          AND coalesce((
              SELECT c.verdict FROM comparisons c
              WHERE c.kind = 'verdict' AND c.experiment_id = e.experiment_id
              ORDER BY c.created_at DESC LIMIT 1
          ), 'pass') <> 'regression'
        ORDER BY started_at DESC, experiment_id DESC
        LIMIT 1
        """,
        [cand["suite"], cand["dataset"], branch, cand["experiment_id"], cand["started_at"]],
    ).fetchall()
    return str(rows[0][0]) if rows else None


def baseline_ref(warehouse: Warehouse, baseline: str, settings: Settings) -> tuple[str, Settings]:
    """Read a gate's `--baseline`: an experiment id as is, else a branch whose latest
    completed, non-regressed run is the baseline. Returns what `compare` takes as
    `baseline` ("auto" or the id) and the settings to pass with it."""
    if warehouse.rows("SELECT 1 FROM experiments WHERE experiment_id = ?", [baseline]):
        return baseline, settings
    return "auto", settings.model_copy(update={"baseline_branch": baseline})


def find_baseline(warehouse: Warehouse, experiment_id: str, branch: str) -> str | None:
    """The ``auto`` baseline of `experiment_id` on `branch`, or None (see module docstring)."""
    with warehouse.connect() as con:
        cand = experiment_row(con, experiment_id)
        if cand is None:
            raise unknown_experiment(experiment_id, warehouse, "candidate")
        return auto_baseline(con, cand, branch)
