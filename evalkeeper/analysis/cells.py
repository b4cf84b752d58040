"""Pure analysis of paired per-example sums: cells, the per-row guard, latency.

No I/O: frames in (from `evalkeeper.warehouse.pairs.load_pair`), models out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from evalkeeper.analysis import stats
from evalkeeper.analysis.models import (
    ALL,
    Cell,
    CellStatus,
    LatencySide,
    LatencySummary,
    SideEstimate,
)
from evalkeeper.settings import Settings


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
        se_category, n_categories = finite(by_cat.se_cluster), by_cat.n_clusters
    return SideEstimate(
        n_rows=est.n,
        mean=finite(est.mean),
        se=finite(est.se),
        se_cluster=finite(est.se_cluster),
        se_category=se_category,
        n_categories=n_categories,
        ci_low=finite(est.ci_low),
        ci_high=finite(est.ci_high),
    )


def finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def cell_status(c: Cell, alpha: float) -> CellStatus:
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


def analyse(
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
            cells.append(_cell(ev, cat, binary, arr, codes, mask, settings.analysis.alpha))
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
                        "candidate_repetitions": int(arr["n_ok"][i]),
                        "candidate_fails": int(arr["n_ok"][i] - arr["s"][i]),
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
    cell.diff = finite(res.diff)
    cell.diff_se = finite(res.se)
    cell.diff_ci_low = finite(res.ci_low)
    cell.diff_ci_high = finite(res.ci_high)
    cell.test = res.test
    cell.statistic = finite(res.statistic)
    cell.p_value = res.p_value
    cell.n_worse, cell.n_better = res.n_worse, res.n_better
    cell.mde = finite(res.mde)
    return cell


def guard_warnings(paired: pl.DataFrame, examples: pl.DataFrame) -> list[str]:
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


def latency_summary(runs: pl.DataFrame, threshold_s: float) -> LatencySummary:
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
