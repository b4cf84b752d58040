"""Compare an experiment with its baseline: paired statistics, the per-row guard, a verdict.

Public API (stable; the CLI, the gate flow and the nightly flow use it):

* ``compare(warehouse, experiment_id, baseline="auto", settings=None, *, max_mde=None)
  -> Comparison`` — reads both experiments from the warehouse and analyses them. `baseline`
  is ``"auto"`` or an experiment id. ``auto`` is the latest experiment with status
  ``completed``, the same suite and dataset, ``git_branch == settings.baseline_branch``,
  started before the candidate (and not the candidate itself), whose own latest stored
  verdict is not ``regression``; to pick the baseline of
  another branch pass ``settings.model_copy(update={"baseline_branch": "release"})``.
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
  BH-adjusted p < alpha and a drop larger than ``settings.tolerance``); inconclusive (an
  evaluator's ``__all__`` cell has an error rate above ``settings.max_error_rate`` on either
  side, no paired example, or an MDE above `max_mde`, 0.20 by default); else pass.
* Latency: p50/p95 in seconds over the non-errored runs of the shared examples, each side,
  against ``settings.latency_p95_s``. A crossing is reported (warning, markdown); the
  verdict is left to the latency evaluator's scores, which are cells like any other.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from evalkeeper import stats
from evalkeeper.models import content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.stats import CellEvidence, Verdict
from evalkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from rich.table import Table

ALL = "__all__"
VERDICT_KEY = "__verdict__"
OUTPUT_CHARS = 400

Metric = Literal["pass_rate", "mean_value"]
CellStatus = Literal["regression", "improved", "changed", "unchanged", "underpowered", "no_data"]


class CompareError(ValueError):
    """A comparison that cannot be made as asked; the message names the problem and the fix."""


# -- models ---------------------------------------------------------------------------------


class SideEstimate(BaseModel):
    """One side of a cell: pass rate (or mean value) of its scored rows, with a 95% CI."""

    n_rows: int = Field(description="Scored rows (examples x repetitions) behind the mean.")
    mean: float | None = Field(description="Pass rate or mean value.")
    se: float | None = Field(description="CLT standard error (rows treated as independent).")
    se_cluster: float | None = Field(
        None, description="Cluster-robust (CR1) SE by example; set when examples repeat."
    )
    se_category: float | None = Field(
        None,
        description="Cluster-robust (CR1) SE by category; `__all__` cells with several "
        "categories. Reported, not used for the CI (see module docstring).",
    )
    n_categories: int | None = None
    ci_low: float | None = Field(description="95% CI, from `se_cluster` when set, else `se`.")
    ci_high: float | None = None


class Cell(BaseModel):
    """One evaluator x category (``__all__`` = every category) of the paired comparison."""

    evaluator: str
    category: str
    metric: Metric
    n_examples: int = Field(description="Examples scored on both sides (the paired sample).")
    rows_baseline: int = Field(description="Non-skipped score rows, baseline (incl. errors).")
    rows_candidate: int
    errors_baseline: int = Field(description="Errored/unscored rows, baseline (not tested).")
    errors_candidate: int
    error_rate_baseline: float
    error_rate_candidate: float
    baseline: SideEstimate
    candidate: SideEstimate
    diff: float | None = Field(description="Candidate minus baseline, per-example means.")
    diff_se: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    test: stats.PairedTest = "none"
    statistic: float | None = None
    p_value: float | None = Field(None, description="Two-sided paired test p-value.")
    p_adjusted: float | None = Field(None, description="Benjamini-Hochberg over all cells.")
    n_worse: int = Field(0, description="Examples whose score went down.")
    n_better: int = Field(0, description="Examples whose score went up.")
    mde: float | None = Field(None, description="Minimum detectable effect, 80% power.")
    regressed: bool = False
    underpowered: bool = False
    status: CellStatus = "unchanged"


class RowRegression(BaseModel):
    """A critical or incident example that passed in the baseline and fails now."""

    example_id: str
    incident_id: str | None
    critical: bool
    category: str
    evaluator: str
    baseline_pass_rate: float
    candidate_pass_rate: float
    baseline_output: str | None = Field(None, description="Baseline output (JSON text, cut).")
    candidate_output: str | None = None
    baseline_comment: str | None = None
    candidate_comment: str | None = None


class LatencySide(BaseModel):
    n: int
    p50_s: float | None
    p95_s: float | None


class LatencySummary(BaseModel):
    """Target latency over the non-errored runs of the shared examples."""

    threshold_p95_s: float
    baseline: LatencySide
    candidate: LatencySide
    crossed: bool = Field(description="Candidate p95 is above the threshold.")
    newly_crossed: bool = Field(description="... and the baseline's was not.")


class Comparison(BaseModel):
    """Everything `compare` found, and the verdict. Serialised as the JSON output."""

    comparison_id: str
    created_at: datetime
    verdict: Verdict
    reasons: list[str]
    warnings: list[str]
    experiment_id: str
    baseline_id: str
    baseline_mode: Literal["auto", "explicit"]
    baseline_branch: str | None = Field(description="The branch `auto` searched, if auto.")
    suite: str
    dataset: str
    dataset_version: str
    baseline_dataset_version: str
    n_shared_examples: int
    evaluators: list[str]
    alpha: float
    tolerance: float
    max_error_rate: float
    max_mde: float
    errors_baseline: int = Field(description="Errored score rows on the shared examples.")
    errors_candidate: int
    run_errors_baseline: int = Field(description="Target errors on the shared examples.")
    run_errors_candidate: int
    underpowered: bool
    cells: list[Cell]
    row_regressions: list[RowRegression]
    latency: LatencySummary

    def cell(self, evaluator: str, category: str = ALL) -> Cell:
        for c in self.cells:
            if c.evaluator == evaluator and c.category == category:
                return c
        raise KeyError(f"no cell {evaluator!r} x {category!r}")


# -- loading --------------------------------------------------------------------------------


def _experiment(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, Any] | None:
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


def _unknown(experiment_id: str, warehouse: Warehouse, role: str) -> CompareError:
    return CompareError(
        f"unknown {role} experiment {experiment_id!r}: it is not in {warehouse.path}. "
        "List the experiments with `evalkeeper experiments`."
    )


def _find_baseline(con: duckdb.DuckDBPyConnection, cand: dict[str, Any], branch: str) -> str | None:
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
        cand = _experiment(con, experiment_id)
        if cand is None:
            raise _unknown(experiment_id, warehouse, "candidate")
        return _find_baseline(con, cand, branch)


# Per (evaluator, example) with rows on both sides: scored rows, sums, sums of squares and
# errors of the candidate ($1) and the baseline ($2), side by side. The metric is the pass
# rate for evaluators with any pass/fail row, else the value. Aggregating here (not in
# Python) keeps `compare` fast on large experiments.
_PAIRED_SQL = """
    WITH s AS (
        SELECT experiment_id = $1 AS cand, evaluator, example_id, category, passed, value,
               error IS NOT NULL AS has_error
        FROM scores
        WHERE experiment_id IN ($1, $2) AND NOT skipped
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

_EVALUATORS_SQL = """
    SELECT experiment_id = $1 AS cand, evaluator,
           list(DISTINCT evaluator_version ORDER BY evaluator_version) AS versions
    FROM scores
    WHERE experiment_id IN ($1, $2) AND NOT skipped
    GROUP BY ALL
"""


# -- analysis -------------------------------------------------------------------------------


def _side(
    n_ok: np.ndarray,
    s: np.ndarray,
    ss: np.ndarray,
    cat_codes: np.ndarray,
    *,
    binary: bool,
    overall: bool,
) -> SideEstimate:
    """Estimate for one side of one cell from per-example sums (see `stats`)."""
    if n_ok.size and n_ok.max() > 1:  # repetitions: cluster by example
        est = stats.estimate_from_groups(n_ok, s, ss, binary=binary, clustered=True)
    else:
        est = stats.estimate_from_groups(
            [n_ok.sum()], [s.sum()], [ss.sum()], binary=binary, clustered=False
        )
    se_category, n_categories = None, None
    n_cat = len(np.unique(cat_codes)) if cat_codes.size else 0
    if overall and n_cat > 1:
        by_cat = stats.estimate_from_groups(
            np.bincount(cat_codes, weights=n_ok),
            np.bincount(cat_codes, weights=s),
            np.bincount(cat_codes, weights=ss),
            binary=binary,
            clustered=True,
        )
        se_category, n_categories = _num(by_cat.se_cluster), by_cat.n_clusters
    return SideEstimate(
        n_rows=est.n,
        mean=_num(est.mean),
        se=_num(est.se),
        se_cluster=_num(est.se_cluster),
        se_category=se_category,
        n_categories=n_categories,
        ci_low=_num(est.ci_low),
        ci_high=_num(est.ci_high),
    )


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _cut(text: str | None) -> str | None:
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

    `max_mde` defaults to `settings.max_mde` (EVALKEEPER_MAX_MDE, 0.20)."""
    settings = settings or Settings()
    if max_mde is None:
        max_mde = settings.max_mde
    if warehouse.spooled_batches():
        warehouse.ingest_spool()  # rows waiting in the spool belong to these experiments
    warnings: list[str] = []
    with warehouse.connect() as con:
        cand = _experiment(con, experiment_id)
        if cand is None:
            raise _unknown(experiment_id, warehouse, "candidate")
        if baseline == "auto":
            mode: Literal["auto", "explicit"] = "auto"
            baseline_id = _find_baseline(con, cand, settings.baseline_branch)
            if baseline_id is None:
                raise CompareError(
                    f"no baseline for {experiment_id!r}: no completed experiment of suite "
                    f"{cand['suite']!r} and dataset {cand['dataset']!r} on branch "
                    f"{settings.baseline_branch!r} started before it. Run the suite on "
                    f"{settings.baseline_branch!r} first, or name one with --baseline EXP."
                )
        else:
            mode, baseline_id = "explicit", baseline
        if baseline_id == experiment_id:
            raise CompareError(
                f"baseline and candidate are the same experiment {experiment_id!r}: "
                "name another one with --baseline EXP, or use --baseline auto."
            )
        base = _experiment(con, baseline_id)
        if base is None:
            raise _unknown(baseline_id, warehouse, "baseline")
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
        if not paired.height:
            raise CompareError(
                f"experiments {experiment_id!r} (dataset {cand['dataset']!r} version "
                f"{cand['dataset_version']}) and {baseline_id!r} (dataset {base['dataset']!r} "
                f"version {base['dataset_version']}) share no example: nothing to compare. "
                "Compare with a baseline run on the same dataset."
            )
        binary_evs = set(paired.filter(pl.col("is_binary")).get_column("evaluator").unique())

        cells, guarded_rows, unit_scale = _analyse(paired, binary_evs, examples, settings=settings)
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
            alpha=settings.alpha,
            tolerance=settings.tolerance,
            max_error_rate=settings.max_error_rate,
            max_mde=max_mde,
            critical_regressions=len(guarded_rows),
        )
        for c, p_adj, reg, under in zip(
            cells, decision.p_adjusted, decision.regressed, decision.underpowered, strict=True
        ):
            c.p_adjusted, c.regressed, c.underpowered = p_adj, reg, under
            c.status = _status(c, settings.alpha)

        row_regressions = _row_details(con, guarded_rows, experiment_id, baseline_id)
        warnings.extend(_guard_warnings(paired, examples))

    runs = runs.join(paired.select("example_id").unique(), on="example_id", how="semi")
    latency = _latency(runs, settings.latency_p95_s)
    if latency.crossed:
        warnings.append(
            f"latency p95 {latency.candidate.p95_s:.2f} s on the candidate is above the "
            f"{settings.latency_p95_s:g} s threshold (baseline "
            f"{_fmt_s(latency.baseline.p95_s)})"
        )
    run_err = {
        side: int(runs.filter(pl.col("cand") == side).get_column("has_error").sum())
        for side in (True, False)
    }
    reasons = _reasons(cells, row_regressions, decision.verdict, settings, max_mde)
    if decision.verdict == "regression":  # what would have made it inconclusive, as notes
        warnings.extend(
            r
            for r in _reasons(cells, [], "inconclusive", settings, max_mde)
            if "underpowered" in r or "error rate" in r
        )
    created = utcnow()
    return Comparison(
        comparison_id=content_hash([experiment_id, baseline_id, created.isoformat()]),
        created_at=created,
        verdict=decision.verdict,
        reasons=reasons,
        warnings=warnings,
        experiment_id=experiment_id,
        baseline_id=baseline_id,
        baseline_mode=mode,
        baseline_branch=settings.baseline_branch if mode == "auto" else None,
        suite=str(cand["suite"]),
        dataset=str(cand["dataset"]),
        dataset_version=str(cand["dataset_version"]),
        baseline_dataset_version=str(base["dataset_version"]),
        n_shared_examples=int(paired.get_column("example_id").n_unique()),
        evaluators=shared_evs,
        alpha=settings.alpha,
        tolerance=settings.tolerance,
        max_error_rate=settings.max_error_rate,
        max_mde=max_mde,
        errors_baseline=sum(c.errors_baseline for c in cells if c.category == ALL),
        errors_candidate=sum(c.errors_candidate for c in cells if c.category == ALL),
        run_errors_baseline=run_err[False],
        run_errors_candidate=run_err[True],
        underpowered=any(c.underpowered for c in cells),
        cells=cells,
        row_regressions=row_regressions,
        latency=latency,
    )


def _status(c: Cell, alpha: float) -> CellStatus:
    if c.regressed:
        return "regression"
    if c.n_examples == 0:
        return "no_data"
    if c.p_adjusted is not None and c.p_adjusted < alpha and (c.diff or 0) > 0:
        return "improved"
    if c.underpowered:
        return "underpowered"
    if c.diff:
        return "changed"
    return "unchanged"


def _analyse(
    paired: pl.DataFrame,
    binary_evs: set[str],
    examples: pl.DataFrame,
    *,
    settings: Settings,
) -> tuple[list[Cell], list[dict[str, Any]], dict[str, bool]]:
    """Cells for every evaluator x category (+ __all__), the guarded rows that flipped, and
    per evaluator whether its scale is [0, 1] (pass rates, or values inside it): only then is
    its MDE judged against `max_mde`."""
    guarded = _guarded(examples)
    cells: list[Cell] = []
    flipped: list[dict[str, Any]] = []
    unit_scale: dict[str, bool] = {}
    for (evaluator,), part in paired.partition_by(
        "evaluator", as_dict=True, maintain_order=True
    ).items():
        ev = str(evaluator)
        binary = ev in binary_evs
        cats = part.get_column("category").fill_null("uncategorized")
        cat_names = sorted(cats.unique().to_list())
        codes = cats.cast(pl.Enum(cat_names)).to_physical().to_numpy().astype(np.int64)
        arr = {
            k: part.get_column(k).to_numpy().astype(np.float64)
            for k in ("n_ok", "n_err", "s", "ss", "n_ok_b", "n_err_b", "s_b", "ss_b")
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_c = arr["s"] / arr["n_ok"]
            rate_b = arr["s_b"] / arr["n_ok_b"]
        seen = np.concatenate([rate_c[arr["n_ok"] > 0], rate_b[arr["n_ok_b"] > 0]])
        unit_scale[ev] = binary or bool(np.all((seen >= 0) & (seen <= 1)))
        for cat in [ALL, *cat_names]:
            mask = np.ones(part.height, dtype=bool) if cat == ALL else codes == cat_names.index(cat)
            cells.append(_cell(ev, cat, binary, arr, codes, mask, settings.alpha))
        if binary:
            both = (arr["n_ok"] > 0) & (arr["n_ok_b"] > 0)
            flip = both & (rate_b > 0.5) & (rate_c < 0.5)
            ids = part.get_column("example_id").to_numpy()
            cat_of = cats.to_list()
            for i in np.flatnonzero(flip):
                ex = str(ids[i])
                info = guarded.get(ex)
                if info is None and cat_of[i] != "critical":
                    continue
                flipped.append(
                    {
                        "example_id": ex,
                        "incident_id": info[1] if info else None,
                        "critical": bool(info[0]) if info else True,
                        "category": str(cat_of[i]),
                        "evaluator": ev,
                        "baseline_pass_rate": float(rate_b[i]),
                        "candidate_pass_rate": float(rate_c[i]),
                    }
                )
    return cells, flipped, unit_scale


def _guarded(examples: pl.DataFrame) -> dict[str, tuple[bool, str | None]]:
    """example_id -> (critical, incident_id); the candidate's dataset version wins."""
    out: dict[str, tuple[bool, str | None]] = {}
    for row in examples.sort("is_cand_version").iter_rows(named=True):
        out[row["example_id"]] = (bool(row["critical"]), row["incident_id"])
    return out


def _cell(
    ev: str,
    cat: str,
    binary: bool,
    arr: dict[str, np.ndarray],
    codes: np.ndarray,
    mask: np.ndarray,
    alpha: float,
) -> Cell:
    n_ok_c, n_ok_b = arr["n_ok"][mask], arr["n_ok_b"][mask]
    err_c, err_b = int(arr["n_err"][mask].sum()), int(arr["n_err_b"][mask].sum())
    rows_c, rows_b = int(n_ok_c.sum()) + err_c, int(n_ok_b.sum()) + err_b
    both = (n_ok_c > 0) & (n_ok_b > 0)
    sub = {k: v[mask][both] for k, v in arr.items()}
    sub_codes = codes[mask][both]
    overall = cat == ALL
    side_c = _side(sub["n_ok"], sub["s"], sub["ss"], sub_codes, binary=binary, overall=overall)
    side_b = _side(
        sub["n_ok_b"], sub["s_b"], sub["ss_b"], sub_codes, binary=binary, overall=overall
    )
    n = int(both.sum())
    cell = Cell(
        evaluator=ev,
        category=cat,
        metric="pass_rate" if binary else "mean_value",
        n_examples=n,
        rows_baseline=rows_b,
        rows_candidate=rows_c,
        errors_baseline=err_b,
        errors_candidate=err_c,
        error_rate_baseline=err_b / rows_b if rows_b else 0.0,
        error_rate_candidate=err_c / rows_c if rows_c else 0.0,
        baseline=side_b,
        candidate=side_c,
        diff=None,
    )
    if n == 0:
        return cell
    res = stats.paired_comparison(
        sub["s_b"] / sub["n_ok_b"], sub["s"] / sub["n_ok"], binary=binary, alpha=alpha
    )
    cell.diff = _num(res.diff)
    cell.diff_se = _num(res.se)
    cell.diff_ci_low = _num(res.ci_low)
    cell.diff_ci_high = _num(res.ci_high)
    cell.test = res.test
    cell.statistic = _num(res.statistic)
    cell.p_value = res.p_value
    cell.n_worse, cell.n_better = res.n_worse, res.n_better
    cell.mde = _num(res.mde)
    return cell


def _guard_warnings(paired: pl.DataFrame, examples: pl.DataFrame) -> list[str]:
    """Guarded examples the candidate could not score at all: not a regression, but said."""
    guarded = _guarded(examples)
    if not guarded:
        return []
    lost = paired.filter(
        pl.col("example_id").is_in(list(guarded)) & (pl.col("n_ok") == 0) & (pl.col("n_err") > 0)
    )
    return [
        f"critical example {r['example_id']}"
        + (f" ({guarded[r['example_id']][1]})" if guarded[r["example_id"]][1] else "")
        + f" errored on every candidate row of {r['evaluator']!r}: not checked"
        for r in lost.iter_rows(named=True)
    ]


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
                baseline_output=_cut(b_out),
                candidate_output=_cut(c_out),
                baseline_comment=_cut(b_com),
                candidate_comment=_cut(c_com),
            )
        )
    return out


def _latency(runs: pl.DataFrame, threshold_s: float) -> LatencySummary:
    sides = {}
    for side in (True, False):
        lat = (
            runs.filter((pl.col("cand") == side) & ~pl.col("has_error"))
            .get_column("latency_ms")
            .drop_nulls()
            .to_numpy()
        )
        p50, p95 = stats.percentiles(lat / 1000.0)
        sides[side] = LatencySide(n=int(lat.size), p50_s=p50, p95_s=p95)
    c95, b95 = sides[True].p95_s, sides[False].p95_s
    crossed = c95 is not None and c95 > threshold_s
    base_crossed = b95 is not None and b95 > threshold_s
    return LatencySummary(
        threshold_p95_s=threshold_s,
        baseline=sides[False],
        candidate=sides[True],
        crossed=crossed,
        newly_crossed=crossed and not base_crossed,
    )


# -- words ----------------------------------------------------------------------------------


def _fmt(x: float | None, metric: Metric) -> str:
    if x is None:
        return "–"
    return f"{x:.1%}" if metric == "pass_rate" else f"{x:.3f}"


def _fmt_diff(x: float | None, metric: Metric) -> str:
    if x is None:
        return "–"
    return f"{x * 100:+.1f} pt" if metric == "pass_rate" else f"{x:+.3f}"


def _fmt_p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def _fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def _where(c: Cell) -> str:
    return f"`{c.evaluator}`" + ("" if c.category == ALL else f" / {c.category}")


def _reasons(
    cells: list[Cell],
    rows: list[RowRegression] | list[dict[str, Any]],
    verdict: Verdict,
    settings: Settings,
    max_mde: float,
) -> list[str]:
    out: list[str] = []
    for r in rows:
        d = r if isinstance(r, dict) else r.model_dump()
        inc = f" (incident {d['incident_id']})" if d["incident_id"] else ""
        out.append(
            f"critical example {d['example_id']}{inc} passed in the baseline and fails now "
            f"on `{d['evaluator']}`"
        )
    for c in cells:
        if c.regressed:
            out.append(
                f"{_where(c)}: {_fmt(c.baseline.mean, c.metric)} → "
                f"{_fmt(c.candidate.mean, c.metric)} ({_fmt_diff(c.diff, c.metric)}, "
                f"{c.n_worse} worse / {c.n_better} better, p_adj = {_fmt_p(c.p_adjusted)} "
                f"< {settings.alpha:g})"
            )
    if verdict == "inconclusive":
        for c in cells:
            if c.category != ALL:
                continue
            for side, rate in (
                ("baseline", c.error_rate_baseline),
                ("candidate", c.error_rate_candidate),
            ):
                if rate > settings.max_error_rate:
                    out.append(
                        f"{_where(c)}: error rate {rate:.0%} on the {side} is above "
                        f"{settings.max_error_rate:.0%}"
                    )
            if c.n_examples == 0:
                out.append(f"{_where(c)}: no example scored on both sides")
            elif c.underpowered:
                out.append(
                    f"{_where(c)}: underpowered — with {c.n_examples} paired examples the "
                    f"smallest drop detectable (80% power) is {_fmt_diff(c.mde, c.metric)[1:]}"
                    f", above {max_mde * 100:.0f} pt; no significant change is not evidence "
                    "of no change"
                )
    if verdict == "pass":
        overall = [c for c in cells if c.category == ALL and c.mde is not None]
        worst = max((c.mde or 0.0) for c in overall) if overall else None
        out.append(
            f"no significant drop in any of {len(cells)} cells (BH, alpha {settings.alpha:g}, "
            f"tolerance {settings.tolerance:g}) and no critical row regressed"
            + (f"; detectable drop ≤ {worst * 100:.1f} pt" if worst is not None else "")
        )
    return out


_ICON = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}


def render_markdown(c: Comparison, *, max_cells: int = 25) -> str:
    """A PR-comment-ready summary: verdict, reasons, changed cells, regressed critical rows
    (with incident ids), latency, errors, power and warnings."""
    lines = [
        f"## {_ICON[c.verdict]} evalkeeper verdict: **{c.verdict.upper()}**",
        "",
        f"Candidate `{c.experiment_id}` vs baseline `{c.baseline_id}`"
        f" ({f'auto: latest completed run on `{c.baseline_branch}`' if c.baseline_mode == 'auto' else 'named'})"
        f" · suite `{c.suite}` · dataset `{c.dataset}` · {c.n_shared_examples} shared examples"
        f" · alpha {c.alpha:g} after Benjamini-Hochberg · tolerance {c.tolerance:g}",
        "",
    ]
    lines += [f"- {r}" for r in c.reasons]
    changed = [x for x in c.cells if x.regressed or x.status == "improved" or x.diff]
    changed.sort(key=lambda x: (not x.regressed, x.p_adjusted if x.p_adjusted is not None else 2))
    lines += ["", "### Cells that changed", ""]
    if changed:
        lines += [
            "| | evaluator | category | n | baseline | candidate | Δ (95% CI) | p (BH) | MDE |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for x in changed[:max_cells]:
            icon = {"regression": "❌", "improved": "⬆️", "underpowered": "⚠️"}.get(x.status, "")
            ci = (
                f" ({_fmt_diff(x.diff_ci_low, x.metric)}, {_fmt_diff(x.diff_ci_high, x.metric)})"
                if x.diff_ci_low is not None
                else ""
            )
            lines.append(
                f"| {icon} | `{x.evaluator}` | {x.category} | {x.n_examples} | "
                f"{_fmt(x.baseline.mean, x.metric)} | {_fmt(x.candidate.mean, x.metric)} | "
                f"{_fmt_diff(x.diff, x.metric)}{ci} | {_fmt_p(x.p_adjusted)} | "
                f"{_fmt_diff(x.mde, x.metric)[1:] if x.mde is not None else '–'} |"
            )
        if len(changed) > max_cells:
            lines.append(f"\n…and {len(changed) - max_cells} more changed cells (see the JSON).")
    else:
        lines.append("No cell changed.")
    if c.row_regressions:
        lines += [
            "",
            "### Critical rows that passed before and fail now",
            "",
            "| example | incident | evaluator | baseline output | candidate output | why |",
            "|---|---|---|---|---|---|",
        ]
        for r in c.row_regressions:
            lines.append(
                f"| `{r.example_id}` | {r.incident_id or '–'} | `{r.evaluator}` | "
                f"{_md_cell(r.baseline_output)} | {_md_cell(r.candidate_output)} | "
                f"{_md_cell(r.candidate_comment)} |"
            )
    lat = c.latency
    mark = " ❌ above threshold" if lat.crossed else ""
    lines += [
        "",
        "### Latency",
        "",
        f"p50 {_fmt_s(lat.baseline.p50_s)} → {_fmt_s(lat.candidate.p50_s)} · "
        f"p95 {_fmt_s(lat.baseline.p95_s)} → {_fmt_s(lat.candidate.p95_s)} "
        f"(threshold {lat.threshold_p95_s:g} s){mark}",
        "",
        "### Errors",
        "",
        f"score errors: baseline {c.errors_baseline}, candidate {c.errors_candidate} · "
        f"target errors: baseline {c.run_errors_baseline}, candidate {c.run_errors_candidate}"
        " (errored rows are left out of the tests)",
    ]
    if c.underpowered:
        lines += [
            "",
            "> **Underpowered:** some cells cannot detect a drop of "
            f"{c.max_mde * 100:.0f} points at 80% power; a non-significant result there "
            "is not evidence of no change. Add examples or repetitions.",
        ]
    if c.warnings:
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in c.warnings]
    return "\n".join(lines) + "\n"


def _md_cell(text: str | None, limit: int = 120) -> str:
    if not text:
        return "–"
    text = text.replace("|", "\\|").replace("\n", " ")
    return "`" + (text if len(text) <= limit else text[: limit - 1] + "…") + "`"


def render_table(c: Comparison) -> Table:
    """Every cell as a rich table; the verdict is the title and the reasons the caption."""
    from rich.table import Table

    colour = {"pass": "green", "regression": "red", "inconclusive": "yellow"}[c.verdict]
    table = Table(
        title=f"[bold {colour}]{c.verdict.upper()}[/]  {c.experiment_id} vs {c.baseline_id}",
        caption="\n".join(c.reasons + [f"warning: {w}" for w in c.warnings]),
        caption_justify="left",
    )
    for name, justify in [
        ("evaluator", "left"),
        ("category", "left"),
        ("n", "right"),
        ("baseline (95% CI)", "right"),
        ("candidate (95% CI)", "right"),
        ("Δ (95% CI)", "right"),
        ("test", "left"),
        ("p", "right"),
        ("p BH", "right"),
        ("MDE", "right"),
        ("errors b/c", "right"),
        ("status", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    style = {"regression": "red", "improved": "green", "underpowered": "yellow"}
    for x in c.cells:
        m = x.metric
        table.add_row(
            x.evaluator,
            x.category,
            str(x.n_examples),
            f"{_fmt(x.baseline.mean, m)} ({_fmt(x.baseline.ci_low, m)}, {_fmt(x.baseline.ci_high, m)})",
            f"{_fmt(x.candidate.mean, m)} ({_fmt(x.candidate.ci_low, m)}, {_fmt(x.candidate.ci_high, m)})",
            f"{_fmt_diff(x.diff, m)} ({_fmt_diff(x.diff_ci_low, m)}, {_fmt_diff(x.diff_ci_high, m)})",
            x.test,
            _fmt_p(x.p_value),
            _fmt_p(x.p_adjusted),
            _fmt_diff(x.mde, m)[1:] if x.mde is not None else "–",
            f"{x.errors_baseline}/{x.errors_candidate}",
            x.status,
            style=style.get(x.status),
        )
    lat = c.latency
    table.add_section()
    table.add_row(
        "latency",
        "p50 / p95",
        str(lat.candidate.n),
        f"{_fmt_s(lat.baseline.p50_s)} / {_fmt_s(lat.baseline.p95_s)}",
        f"{_fmt_s(lat.candidate.p50_s)} / {_fmt_s(lat.candidate.p95_s)}",
        "",
        f"p95 ≤ {lat.threshold_p95_s:g} s",
        "",
        "",
        "",
        f"{c.run_errors_baseline}/{c.run_errors_candidate}",
        "above threshold" if lat.crossed else "ok",
        style="red" if lat.crossed else None,
    )
    return table


# -- persistence ----------------------------------------------------------------------------

_COMPARISON_SCHEMA: dict[str, Any] = {
    "comparison_id": pl.String,
    "kind": pl.String,
    "experiment_id": pl.String,
    "baseline_id": pl.String,
    "suite": pl.String,
    "dataset": pl.String,
    "evaluator": pl.String,
    "category": pl.String,
    "example_id": pl.String,
    "incident_id": pl.String,
    "verdict": pl.String,
    "metric": pl.String,
    "n_examples": pl.Int32,
    "baseline_rate": pl.Float64,
    "baseline_ci_low": pl.Float64,
    "baseline_ci_high": pl.Float64,
    "candidate_rate": pl.Float64,
    "candidate_ci_low": pl.Float64,
    "candidate_ci_high": pl.Float64,
    "diff": pl.Float64,
    "diff_ci_low": pl.Float64,
    "diff_ci_high": pl.Float64,
    "test": pl.String,
    "p_value": pl.Float64,
    "p_adjusted": pl.Float64,
    "mde": pl.Float64,
    "errors_baseline": pl.Int32,
    "errors_candidate": pl.Int32,
    "baseline_output": pl.String,
    "candidate_output": pl.String,
    "details": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
}


def comparison_frame(c: Comparison) -> pl.DataFrame:
    """The rows `save_comparison` writes: verdict, one per cell, one per row regression."""
    common = {
        "comparison_id": c.comparison_id,
        "experiment_id": c.experiment_id,
        "baseline_id": c.baseline_id,
        "suite": c.suite,
        "dataset": c.dataset,
        "created_at": c.created_at,
    }
    rows: list[dict[str, Any]] = [
        {
            **common,
            "kind": "verdict",
            "evaluator": VERDICT_KEY,
            "category": VERDICT_KEY,
            "example_id": "",
            "verdict": c.verdict,
            "n_examples": c.n_shared_examples,
            "errors_baseline": c.errors_baseline,
            "errors_candidate": c.errors_candidate,
            "details": json.dumps(
                c.model_dump(mode="json", exclude={"cells", "row_regressions"}),
                sort_keys=True,
            ),
        }
    ]
    for x in c.cells:
        rows.append(
            {
                **common,
                "kind": "cell",
                "evaluator": x.evaluator,
                "category": x.category,
                "example_id": "",
                "verdict": x.status,
                "metric": x.metric,
                "n_examples": x.n_examples,
                "baseline_rate": x.baseline.mean,
                "baseline_ci_low": x.baseline.ci_low,
                "baseline_ci_high": x.baseline.ci_high,
                "candidate_rate": x.candidate.mean,
                "candidate_ci_low": x.candidate.ci_low,
                "candidate_ci_high": x.candidate.ci_high,
                "diff": x.diff,
                "diff_ci_low": x.diff_ci_low,
                "diff_ci_high": x.diff_ci_high,
                "test": x.test,
                "p_value": x.p_value,
                "p_adjusted": x.p_adjusted,
                "mde": x.mde,
                "errors_baseline": x.errors_baseline,
                "errors_candidate": x.errors_candidate,
                "details": x.model_dump_json(),
            }
        )
    for r in c.row_regressions:
        rows.append(
            {
                **common,
                "kind": "row",
                "evaluator": r.evaluator,
                "category": r.category,
                "example_id": r.example_id,
                "incident_id": r.incident_id,
                "verdict": "regression",
                "metric": "pass_rate",
                "n_examples": 1,
                "baseline_rate": r.baseline_pass_rate,
                "candidate_rate": r.candidate_pass_rate,
                "diff": r.candidate_pass_rate - r.baseline_pass_rate,
                "baseline_output": r.baseline_output,
                "candidate_output": r.candidate_output,
                "details": r.model_dump_json(),
            }
        )
    return pl.DataFrame(rows, schema=_COMPARISON_SCHEMA)


def save_comparison(warehouse: Warehouse, c: Comparison) -> str:
    """Store the comparison (verdict row, cells, row regressions) in one batch, folded into
    the file (a comparison ends a unit of work, as an experiment's last write does)."""
    return warehouse.write({"comparisons": comparison_frame(c)}, checkpoint=True)
