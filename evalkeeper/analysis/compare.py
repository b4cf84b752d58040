"""Compare an experiment with its baseline: paired statistics, the per-row guard, a verdict.

Public API (stable; the CLI, the gate flow and the nightly flow use it):

* ``compare(warehouse, experiment_id, baseline="auto", settings=None, *, max_mde=None)
  -> Comparison`` — reads both experiments from the warehouse and analyses them. `baseline`
  is ``"auto"`` or an experiment id. ``auto`` is the latest experiment with status
  ``completed``, the same suite and dataset, ``git_branch == settings.analysis.baseline_branch``,
  started before the candidate (and not the candidate itself), whose own latest stored
  verdict is not ``regression``; to pick the baseline of
  another branch pass settings whose ``analysis.baseline_branch`` is ``"release"``.
  `settings=None` means ``Settings()``. Raises `CompareError` (a ValueError whose message
  names the object, the problem and the fix) on an unknown id, an empty experiment, no
  baseline, or no shared example.
* ``find_baseline(warehouse, experiment_id, branch) -> str | None`` — the ``auto`` rule alone.
* ``save_comparison(warehouse, comparison) -> str`` — one batch into the ``comparisons``
  table (the verdict row, one row per cell, one per row regression); returns what
  `Warehouse.write` returns ("written" or "spooled").
* ``render_markdown(comparison) -> str`` — a PR-comment-ready summary.
* ``render_table(comparison) -> rich.table.Table`` — every cell, for a terminal.
* ``comparison.model_dump_json()`` — the JSON output; its top-level ``verdict`` is
  ``pass`` | ``regression`` | ``inconclusive``.

How the data is analysed (formulas in `evalkeeper.stats`):

* Scores with ``skipped = true`` are ignored. A score row is *scored* when it has no error
  and has the metric's value; otherwise it is counted as an error of its cell (shown,
  excluded from the tests). An evaluator's metric is its pass rate when any of its rows
  carries pass/fail, else its mean ``value``.
* Each side's 95% CI uses the CLT SE, or the cluster-robust SE by example when examples
  repeat. The ``__all__`` cell also reports the cluster-robust SE by category
  (``se_category``) but does not build its CI on it: categories are fixed strata of the
  dataset, not a sample of categories, and with the usual handful of them CR1 is unstable
  (G - 1 degrees of freedom).
* The two experiments are paired on the example ids both have scores for (different
  dataset versions are allowed, with a warning: the intersection is compared). Within each
  cell, repetitions are averaged per example and only examples scored on both sides enter
  the paired difference and tests.
* Cells: every evaluator x category, plus ``__all__`` per evaluator. The category is the
  candidate's (from its score rows). Benjamini-Hochberg runs over all cells that have a test.
* Per-row guard: an example is guarded when the ``examples`` table (candidate's dataset
  version first, then the baseline's) marks it ``critical`` or gives it an ``incident_id``,
  or its category is literally ``critical``. A guarded example whose baseline pass rate is
  above 0.5 and candidate pass rate below 0.5 (a majority over repetitions; with one
  repetition: passed, then failed) is a regression by itself.
* Verdict: `evalkeeper.stats.decide` — regression (guarded row regressed, or a cell with
  BH-adjusted p < alpha and a drop larger than ``settings.analysis.tolerance``); inconclusive (an
  evaluator's ``__all__`` cell has an error rate above ``settings.analysis.max_error_rate`` on either
  side, no paired example, or an MDE above `max_mde`, 0.20 by default); else pass.
* Retired judges (`evalkeeper.calibration.retired_judges`): their cells are left out of
  the verdict, with a warning that names the judge, its evidence and the date.
* Latency: p50/p95 in seconds over the non-errored runs of the shared examples, each side,
  against ``settings.analysis.latency_p95_s``. A crossing is reported (warning, markdown); the
  verdict is left to the latency evaluator's scores, which are cells like any other.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import duckdb
import polars as pl

from evalkeeper.analysis import stats
from evalkeeper.analysis.baseline import (
    auto_baseline,
    eligibility,
    experiment_row,
    unknown_experiment,
)
from evalkeeper.analysis.cells import analyse, cell_status, guard_warnings, latency_summary
from evalkeeper.analysis.models import (
    ALL,
    OUTPUT_CHARS,
    CompareError,
    Comparison,
    RowRegression,
)
from evalkeeper.analysis.reasons import fmt_s, verdict_reasons
from evalkeeper.analysis.stats import CellEvidence
from evalkeeper.calibration.status import retired_judges
from evalkeeper.models import content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import error_groups

# Per (evaluator, example) with rows on both sides: scored rows, sums, sums of squares and
# errors of the candidate ($1) and the baseline ($2), side by side. The metric is the pass
# rate for evaluators with any pass/fail row, else the value. Aggregating here (not in
# Python) keeps `compare` fast on large experiments.
#
# A candidate row skipped for lack of retrieved context (`details.reason = 'no_context'`,
# the groundedness judge) where the baseline's run of the same example was scored counts
# as a failure: retrieval broke, and a quiet skip would hide it.
_PAIRED_SQL = """
    WITH raw AS (
        SELECT experiment_id = $1 AS cand, evaluator, example_id, category, passed, value,
               error IS NOT NULL AS has_error, skipped,
               skipped AND CASE WHEN skipped
                   THEN json_extract_string(details, '$.reason') = 'no_context' END
                   AS lost_context
        FROM scores
        WHERE experiment_id IN ($1, $2)
    ), based AS (
        SELECT DISTINCT evaluator, example_id, true AS had FROM raw WHERE NOT cand AND NOT skipped
    ), s AS (
        SELECT cand, evaluator, example_id, category,
               CASE WHEN skipped THEN false ELSE passed END AS passed,
               CASE WHEN skipped THEN 0.0 ELSE value END AS value, has_error
        FROM raw LEFT JOIN based USING (evaluator, example_id)
        WHERE NOT skipped OR (cand AND lost_context AND based.had)
    ), bin AS (
        SELECT DISTINCT evaluator FROM s WHERE passed IS NOT NULL
    ), y AS (
        SELECT s.*, bin.evaluator IS NOT NULL AS is_binary,
               CASE WHEN bin.evaluator IS NOT NULL THEN CAST(s.passed AS DOUBLE)
                    ELSE s.value END AS y
        FROM s LEFT JOIN bin USING (evaluator)
    ), r AS (
        SELECT *, NOT has_error AND y IS NOT NULL AS ok FROM y
    )
    SELECT evaluator, example_id, bool_or(is_binary) AS is_binary,
           coalesce(any_value(category) FILTER (WHERE cand), any_value(category)) AS category,
           count(*) FILTER (WHERE cand AND ok) AS n_ok,
           count(*) FILTER (WHERE cand AND NOT ok) AS n_err,
           coalesce(sum(y) FILTER (WHERE cand AND ok), 0) AS s,
           coalesce(sum(y * y) FILTER (WHERE cand AND ok), 0) AS ss,
           count(*) FILTER (WHERE NOT cand AND ok) AS n_ok_b,
           count(*) FILTER (WHERE NOT cand AND NOT ok) AS n_err_b,
           coalesce(sum(y) FILTER (WHERE NOT cand AND ok), 0) AS s_b,
           coalesce(sum(y * y) FILTER (WHERE NOT cand AND ok), 0) AS ss_b
    FROM r
    GROUP BY evaluator, example_id
    HAVING count(*) FILTER (WHERE cand) > 0 AND count(*) FILTER (WHERE NOT cand) > 0
    ORDER BY evaluator, example_id
"""


# The candidate's evaluators that skipped rows for another reason than a missing context
# (a judge with no endpoint), with the first reason given.
_SKIPPED_SQL = """
    SELECT evaluator, count(*) AS n, any_value(comment) AS comment FROM scores
    WHERE experiment_id = $1 AND skipped
      AND coalesce(json_extract_string(details, '$.reason'), '') <> 'no_context'
    GROUP BY evaluator ORDER BY evaluator
"""

# Candidate rows that lost their context where the baseline had it (counted as failures).
_LOST_CONTEXT_SQL = """
    SELECT c.evaluator, count(*) FROM scores c
    WHERE c.experiment_id = $1 AND c.skipped
      AND json_extract_string(c.details, '$.reason') = 'no_context'
      AND EXISTS (SELECT 1 FROM scores b WHERE b.experiment_id = $2 AND NOT b.skipped
                  AND b.evaluator = c.evaluator AND b.example_id = c.example_id)
    GROUP BY c.evaluator ORDER BY c.evaluator
"""

_EVALUATORS_SQL = """
    SELECT experiment_id = $1 AS cand, evaluator,
           list(DISTINCT evaluator_version ORDER BY evaluator_version) AS versions
    FROM scores
    WHERE experiment_id IN ($1, $2) AND NOT skipped
    GROUP BY ALL
"""


def cut(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 1] + "…"


def compare(
    warehouse: Warehouse,
    experiment_id: str,
    baseline: str = "auto",
    settings: Settings | None = None,
    *,
    max_mde: float | None = None,
) -> Comparison:
    """Compare `experiment_id` with `baseline` ("auto" or an experiment id). See module doc.

    `max_mde` defaults to `settings.analysis.max_mde` (EVALKEEPER_MAX_MDE, 0.20)."""
    settings = settings or Settings()
    if max_mde is None:
        max_mde = settings.analysis.max_mde
    if warehouse.spooled_batches():
        warehouse.ingest_spool()  # rows waiting in the spool belong to these experiments
    warnings: list[str] = []
    baseline_problems: list[str] = []
    with warehouse.connect() as con:
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
                baseline_problems = eligibility(con, [baseline_id], settings).get(baseline_id, [])
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
        evs = con.sql(_EVALUATORS_SQL, params=[experiment_id, baseline_id]).pl()
        runs = con.sql(
            "SELECT experiment_id = ? AS cand, example_id, latency_ms, error IS NOT NULL AS "
            "has_error FROM runs WHERE experiment_id IN (?, ?)",
            params=[experiment_id, experiment_id, baseline_id],
        ).pl()
        examples = con.sql(
            "SELECT example_id, dataset_version = ? AS is_cand_version, critical, incident_id "
            "FROM examples WHERE dataset_version IN (?, ?) AND (critical OR incident_id IS "
            "NOT NULL)",
            params=[cand["dataset_version"], cand["dataset_version"], base["dataset_version"]],
        ).pl()

        for exp, role in ((cand, "candidate"), (base, "baseline")):
            if not evs.filter(pl.col("cand") == (role == "candidate")).height:
                raise CompareError(
                    f"{role} experiment {exp['experiment_id']!r} is empty: it has no "
                    f"(non-skipped) scores (status {exp['status']!r}). Run or resume it with "
                    f"`evalkeeper run --experiment {exp['experiment_id']}` first."
                )
        if base["status"] != "completed":
            warnings.append(f"baseline {baseline_id!r} has status {base['status']!r}")
        if cand["status"] != "completed":
            warnings.append(f"candidate {experiment_id!r} has status {cand['status']!r}")
        for key in ("suite", "dataset"):
            if cand[key] != base[key]:
                warnings.append(
                    f"{key} differs: candidate {cand[key]!r}, baseline {base[key]!r}; "
                    "compared on the shared examples only"
                )
        if cand["dataset_version"] != base["dataset_version"]:
            warnings.append(
                f"dataset versions differ (candidate {cand['dataset_version']}, baseline "
                f"{base['dataset_version']}): compared on the examples both have"
            )

        # evaluators present on both sides; versions
        by_side: dict[bool, dict[str, list[str]]] = {True: {}, False: {}}
        for row in evs.iter_rows(named=True):
            by_side[row["cand"]][row["evaluator"]] = row["versions"]
        shared_evs = sorted(set(by_side[True]) & set(by_side[False]))
        # a retired judge (evalkeeper.calibration) neither passes nor fails a verdict
        retired = retired_judges(con, experiment_id)
        warnings.extend(retired[ev] for ev in sorted(set(by_side[True]) & set(retired)))
        shared_evs = [ev for ev in shared_evs if ev not in retired]
        for side, other, label in ((True, False, "candidate"), (False, True, "baseline")):
            for ev in sorted(set(by_side[side]) - set(by_side[other])):
                warnings.append(f"evaluator {ev!r} scored only the {label}: not compared")
        for ev in shared_evs:
            if by_side[True][ev] != by_side[False][ev]:
                warnings.append(
                    f"evaluator {ev!r} changed version ({', '.join(by_side[False][ev])} → "
                    f"{', '.join(by_side[True][ev])}): differences may come from the evaluator"
                )
        if not shared_evs:
            raise CompareError(
                f"experiments {experiment_id!r} and {baseline_id!r} share no evaluator: "
                "nothing to compare. Run the candidate with the baseline's evaluators."
            )

        paired = con.sql(_PAIRED_SQL, params=[experiment_id, baseline_id]).pl()
        paired = paired.filter(~pl.col("evaluator").is_in(list(retired)))
        if not paired.height:
            raise CompareError(
                f"experiments {experiment_id!r} (dataset {cand['dataset']!r} version "
                f"{cand['dataset_version']}) and {baseline_id!r} (dataset {base['dataset']!r} "
                f"version {base['dataset_version']}) share no example: nothing to compare. "
                "Compare with a baseline run on the same dataset."
            )
        binary_evs = set(paired.filter(pl.col("is_binary")).get_column("evaluator").unique())

        cells, guarded_rows, unit_scale = analyse(paired, binary_evs, examples, settings=settings)
        decision = stats.decide(
            [
                CellEvidence(
                    diff=c.diff if c.diff is not None else math.nan,
                    p_value=c.p_value,
                    mde=c.mde,
                    overall=c.category == ALL,
                    power_checked=unit_scale[c.evaluator],
                    error_rate=max(c.error_rate_baseline, c.error_rate_candidate),
                )
                for c in cells
            ],
            alpha=settings.analysis.alpha,
            tolerance=settings.analysis.tolerance,
            max_error_rate=settings.analysis.max_error_rate,
            max_mde=max_mde,
            critical_regressions=len(guarded_rows),
        )
        for c, p_adj, reg, under in zip(
            cells, decision.p_adjusted, decision.regressed, decision.underpowered, strict=True
        ):
            c.p_adjusted, c.regressed, c.underpowered = p_adj, reg, under
            c.status = cell_status(c, settings.analysis.alpha)

        row_regressions = _row_details(con, guarded_rows, experiment_id, baseline_id)
        warnings.extend(guard_warnings(paired, examples))
        optional = {e["name"] for e in json.loads(cand["evaluators"] or "[]") if e.get("optional")}
        skipped = [
            (name, n, comment)
            for name, n, comment in con.execute(_SKIPPED_SQL, [experiment_id]).fetchall()
            if name not in optional and name not in retired
        ]
        for name, n in con.execute(_LOST_CONTEXT_SQL, [experiment_id, baseline_id]).fetchall():
            if name in retired:
                continue
            warnings.append(
                f"`{name}`: {n} row(s) had no retrieved context where the baseline's run "
                "had some: counted as failures (retrieval broke?)"
            )
        groups = error_groups(con, experiment_id)

    runs = runs.join(paired.select("example_id").unique(), on="example_id", how="semi")
    latency = latency_summary(runs, settings.analysis.latency_p95_s)
    if latency.crossed:
        warnings.append(
            f"latency p95 {latency.candidate.p95_s:.2f} s on the candidate is above the "
            f"{settings.analysis.latency_p95_s:g} s threshold (baseline "
            f"{fmt_s(latency.baseline.p95_s)})"
        )
    run_err = {
        side: int(runs.filter(pl.col("cand") == side).get_column("has_error").sum())
        for side in (True, False)
    }
    verdict = decision.verdict
    reasons = verdict_reasons(cells, row_regressions, verdict, settings, max_mde)
    if skipped:
        skip_reason = _skipped_reason(skipped)
        if verdict == "regression":
            warnings.append(skip_reason)
        else:
            if verdict == "pass":
                reasons = []
            verdict = "inconclusive"
            reasons.insert(0, skip_reason)
    if decision.verdict == "regression":  # what would have made it inconclusive, as notes
        warnings.extend(
            r
            for r in verdict_reasons(cells, [], "inconclusive", settings, max_mde)
            if "underpowered" in r or "error rate" in r
        )
    created = utcnow()
    return Comparison(
        comparison_id=content_hash([experiment_id, baseline_id, created.isoformat()]),
        created_at=created,
        verdict=verdict,
        reasons=reasons,
        warnings=warnings,
        experiment_id=experiment_id,
        baseline_id=baseline_id,
        baseline_mode=mode,
        baseline_branch=settings.analysis.baseline_branch if mode == "auto" else None,
        suite=str(cand["suite"]),
        dataset=str(cand["dataset"]),
        dataset_version=str(cand["dataset_version"]),
        baseline_dataset_version=str(base["dataset_version"]),
        n_shared_examples=int(paired.get_column("example_id").n_unique()),
        evaluators=shared_evs,
        alpha=settings.analysis.alpha,
        tolerance=settings.analysis.tolerance,
        max_error_rate=settings.analysis.max_error_rate,
        max_mde=max_mde,
        errors_baseline=sum(c.errors_baseline for c in cells if c.category == ALL),
        errors_candidate=sum(c.errors_candidate for c in cells if c.category == ALL),
        run_errors_baseline=run_err[False],
        run_errors_candidate=run_err[True],
        underpowered=any(c.underpowered for c in cells),
        cells=cells,
        row_regressions=row_regressions,
        latency=latency,
        error_groups=groups,
        skipped_evaluators=[name for name, _, _ in skipped],
        baseline_problems=baseline_problems,
    )


def _first(passed_over: dict[str, list[str]]) -> str:
    eid, why = next(iter(passed_over.items()))
    return f"the latest, {eid}: {'; '.join(why)}"


def _skipped_reason(skipped: list[tuple[str, int, str | None]]) -> str:
    """One reason naming the skipped evaluators, why (grouped), and the way out."""
    by_comment: dict[str, list[str]] = {}
    for name, _n, comment in skipped:
        by_comment.setdefault(comment or "no reason given", []).append(name)
    names = ",".join(name for name, _, _ in skipped)
    causes = "; ".join(f"{', '.join(f'`{n}`' for n in v)}: {k}" for k, v in by_comment.items())
    return (
        f"evaluators skipped, so they vouch for nothing — {causes}. Enable them, or accept "
        f"the gap explicitly with --allow-skipped {names} (or `optional = true` on them in "
        "the dataset's TOML)"
    )


def _row_details(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict[str, Any]],
    experiment_id: str,
    baseline_id: str,
) -> list[RowRegression]:
    """Outputs and comments of the flipped rows: a passing baseline repetition and a failing
    candidate repetition (the lowest-numbered of each)."""
    if not rows:
        return []
    ids = sorted({r["example_id"] for r in rows})
    detail = con.execute(
        """
        SELECT s.experiment_id = ? AS cand, s.example_id, s.evaluator, s.repetition, s.passed,
               s.comment, r.outputs
        FROM scores s
        LEFT JOIN runs r USING (experiment_id, example_id, repetition)
        WHERE s.experiment_id IN (?, ?) AND list_contains(?, s.example_id) AND NOT s.skipped
        ORDER BY s.repetition
        """,
        [experiment_id, experiment_id, baseline_id, ids],
    ).fetchall()
    pick: dict[tuple[bool, str, str], tuple[str | None, str | None]] = {}
    for cand, ex, ev, _rep, passed, comment, outputs in detail:
        want = not cand  # a passing baseline row, a failing candidate row
        if passed is want and (cand, ex, ev) not in pick:
            pick[(cand, ex, ev)] = (None if outputs is None else str(outputs), comment)
    out = []
    for r in rows:
        b_out, b_com = pick.get((False, r["example_id"], r["evaluator"]), (None, None))
        c_out, c_com = pick.get((True, r["example_id"], r["evaluator"]), (None, None))
        out.append(
            RowRegression(
                **r,
                baseline_output=cut(b_out),
                candidate_output=cut(c_out),
                baseline_comment=cut(b_com),
                candidate_comment=cut(c_com),
            )
        )
    return out
