"""Baseline selection: which earlier experiment a new one is compared with.

* ``choose_baseline(con, warehouse, experiment_id, baseline, settings) -> BaselineChoice`` —
  both `experiments` rows of a comparison, the baseline named or chosen (``"auto"``).
* ``find_baseline(warehouse, experiment_id, branch, settings=None) -> str | None`` — the
  ``auto`` rule alone (`auto_baseline`, `eligibility`).
* ``baseline_ref(warehouse, baseline, settings)`` — a gate's `--baseline` (a branch or an id).

The rule is here (`eligibility`); the facts it weighs are read by
`evalkeeper.warehouse.queries` (`baseline_facts`, `error_counts`, `earlier_experiments`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import polars as pl

from evalkeeper.analysis.models import CompareError
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import (
    baseline_facts,
    earlier_experiments,
    error_counts,
    experiment_row,
    retired_judges,
    scored_evaluators,
)


def unknown_experiment(experiment_id: str, warehouse: Warehouse, role: str) -> CompareError:
    return CompareError(
        f"unknown {role} experiment {experiment_id!r}: it is not in {warehouse.path}. "
        "List the experiments with `evalkeeper experiments`."
    )


def eligibility(
    con: duckdb.DuckDBPyConnection,
    experiment_ids: list[str],
    settings: Settings,
    spooled: set[str] | None = None,
    gating: set[str] | None = None,
) -> dict[str, list[str]]:
    """experiment id -> why it cannot serve as an automatic baseline ([] when it can).

    A baseline completed with all its rows in the warehouse (none waiting in the spool),
    every error share at or under `max_error_rate`, every evaluator it was asked to run
    scored (or allowed to be skipped: `optional`), every evaluator in `gating` (those that
    gate the candidate: `gating_evaluators`) scored, and its own verdict not `regression`."""
    if not experiment_ids:
        return {}
    limit = settings.analysis.max_error_rate
    out: dict[str, list[str]] = {}
    rows = baseline_facts(con, experiment_ids)
    counts = error_counts(con, experiment_ids)
    scored = scored_evaluators(con, experiment_ids) if gating else {}
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
        unscored = sorted((gating or set()) - scored.get(eid, set()))
        if unscored:
            why.append(f"did not score {', '.join(unscored)}, which the candidate is gated on")
        if verdict == "regression":
            why.append("its own verdict was regression")
        out[eid] = why
    return out


def gating_evaluators(con: duckdb.DuckDBPyConnection, cand: dict[str, Any]) -> set[str]:
    """The evaluators that gate the candidate (`cand` is its `experiments` row): those it
    scored (non-skipped rows), less the ones allowed to be missing (`optional`, i.e.
    ``--allow-skipped``) and the judges calibration retired (their cells are left out)."""
    eid = str(cand["experiment_id"])
    optional = {e["name"] for e in json.loads(cand["evaluators"] or "[]") if e.get("optional")}
    return scored_evaluators(con, [eid])[eid] - optional - set(retired_judges(con, eid))


def auto_baseline(
    con: duckdb.DuckDBPyConnection,
    cand: dict[str, Any],
    branch: str,
    settings: Settings,
    spooled: set[str] | None = None,
) -> tuple[str | None, dict[str, list[str]]]:
    """The latest eligible experiment of the candidate's suite and dataset on `branch`,
    started before it, that scored every evaluator gating the candidate; and the newer ones
    passed over, with why."""
    gating = gating_evaluators(con, cand)
    passed_over: dict[str, list[str]] = {}
    offset, page = 0, 25
    while True:
        ids = earlier_experiments(con, cand, branch, limit=page, offset=offset)
        if not ids:
            return None, passed_over
        why = eligibility(con, ids, settings, spooled, gating)
        for eid in ids:
            if not why.get(eid):
                return eid, passed_over
            passed_over[eid] = why[eid]
        offset += page


def spooled_experiments(warehouse: Warehouse) -> set[str]:
    """Experiments with rows still waiting in the spool: its experiment row (a start or a
    finish), runs, scores, summary scores or judge votes."""
    out: set[str] = set()
    for batch in warehouse.spooled_batches():
        for table in ("experiments", "runs", "scores", "summary_scores", "judge_votes"):
            file = batch / f"{table}.parquet"
            if file.exists():
                ids = pl.scan_parquet(file).select("experiment_id").unique().collect()
                out |= set(ids.get_column("experiment_id"))
    return out


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
    with warehouse.reading() as con:
        spooled = spooled_experiments(warehouse)
        cand = experiment_row(con, experiment_id)
        if cand is None:
            raise unknown_experiment(experiment_id, warehouse, "candidate")
        return auto_baseline(con, cand, branch, settings, spooled)[0]


@dataclass(frozen=True)
class BaselineChoice:
    """The two sides of a comparison, as `choose_baseline` found them."""

    candidate: dict[str, Any]
    """The candidate's `experiments` row."""
    baseline: dict[str, Any]
    """The baseline's `experiments` row."""
    mode: Literal["auto", "explicit"]
    baseline_problems: list[str]
    """Why a named baseline would not have been chosen automatically ([] for ``auto``)."""
    warnings: list[str]
    """The runs passed over (``auto``), or the named baseline's problems."""

    @property
    def baseline_id(self) -> str:
        return str(self.baseline["experiment_id"])


def choose_baseline(
    con: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    experiment_id: str,
    baseline: str,
    settings: Settings,
) -> BaselineChoice:
    """The candidate `experiment_id` and its baseline: `baseline` is ``"auto"`` (the latest
    eligible experiment of the same suite and dataset on ``settings.analysis.baseline_branch``
    started before the candidate: `auto_baseline`) or an experiment id, used as named.
    Raises `CompareError` on an unknown id, no baseline, or the candidate as its own."""
    warnings: list[str] = []
    baseline_problems: list[str] = []
    cand = experiment_row(con, experiment_id)
    if cand is None:
        raise unknown_experiment(experiment_id, warehouse, "candidate")
    if baseline == "auto":
        mode: Literal["auto", "explicit"] = "auto"
        baseline_id, passed_over = auto_baseline(
            con, cand, settings.analysis.baseline_branch, settings
        )
        for eid, why in list(passed_over.items())[:5]:
            warnings.append(f"passed over {eid} as a baseline: {'; '.join(why)}")
        if len(passed_over) > 5:
            warnings.append(f"…and {len(passed_over) - 5} more runs that cannot be baselines")
        if baseline_id is None:
            raise CompareError(
                f"no baseline for {experiment_id!r}: no experiment of suite "
                f"{cand['suite']!r} and dataset {cand['dataset']!r} on branch "
                f"{settings.analysis.baseline_branch!r} started before it can be one"
                + (
                    f" ({len(passed_over)} passed over: {_first(passed_over)})"
                    if passed_over
                    else ""
                )
                + f". Run the suite on {settings.analysis.baseline_branch!r} first (a healthy run: "
                "see `evalkeeper experiments`), or name one with --baseline EXP."
            )
    else:
        mode, baseline_id = "explicit", baseline
        if experiment_row(con, baseline_id) is not None:
            gating = gating_evaluators(con, cand)
            baseline_problems = eligibility(con, [baseline_id], settings, gating=gating).get(
                baseline_id, []
            )
            if baseline_problems:
                warnings.append(
                    f"baseline {baseline_id} would not be chosen automatically "
                    f"({'; '.join(baseline_problems)}): used because it was named"
                )
    if baseline_id == experiment_id:
        raise CompareError(
            f"baseline and candidate are the same experiment {experiment_id!r}: "
            "name another one with --baseline EXP, or use --baseline auto."
        )
    base = experiment_row(con, baseline_id)
    if base is None:
        raise unknown_experiment(baseline_id, warehouse, "baseline")
    return BaselineChoice(
        candidate=cand,
        baseline=base,
        mode=mode,
        baseline_problems=baseline_problems,
        warnings=warnings,
    )


def _first(passed_over: dict[str, list[str]]) -> str:
    eid, why = next(iter(passed_over.items()))
    return f"the latest, {eid}: {'; '.join(why)}"
