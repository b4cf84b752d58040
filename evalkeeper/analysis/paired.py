"""What two experiments' frames say, before any verdict: the pairing, the cells, the per-row
guard, latency, and the warnings. Pure: frames in (`evalkeeper.warehouse.pairs.load_pair`),
an `Analysis` out; no warehouse, no clock.

* ``analyse_pair(candidate, baseline, frames, *, retired, settings) -> Analysis`` — raises
  `CompareError` on an empty side, no shared evaluator, or no shared example.
* ``row_regressions(flipped, details) -> list[RowRegression]`` — the guard's flipped rows
  with their outputs and comments (`evalkeeper.warehouse.pairs.flipped_details`).

How the data is analysed (formulas in `evalkeeper.analysis.stats`, cells in
`evalkeeper.analysis.cells`):

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
  candidate's (from its score rows).
* Per-row guard: an example is guarded when the ``examples`` table (candidate's dataset
  version first, then the baseline's) marks it ``critical`` or gives it an ``incident_id``,
  or its category is literally ``critical``. A guarded example whose baseline pass rate is
  above 0.5 and candidate pass rate below 0.5 (a majority over repetitions; with one
  repetition: passed, then failed) is a regression by itself.
* Retired judges (`retired`: judge -> the note to print, read from the warehouse by
  `evalkeeper.warehouse.queries.retired_judges`): their cells are left out, with that note
  (the judge, its evidence and the date) as a warning; their skips and lost contexts too.
* Latency: p50/p95 in seconds over the non-errored runs of the shared examples, each side,
  against ``settings.analysis.latency_p95_s``. A crossing is reported (warning, markdown); the
  verdict is left to the latency evaluator's scores, which are cells like any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from evalkeeper.analysis.cells import analyse, guard_warnings, latency_summary
from evalkeeper.analysis.models import (
    OUTPUT_CHARS,
    Cell,
    CompareError,
    LatencySummary,
    RowRegression,
)
from evalkeeper.analysis.reasons import fmt_s
from evalkeeper.settings import Settings

if TYPE_CHECKING:
    from evalkeeper.warehouse.pairs import PairFrames


@dataclass(frozen=True)
class Analysis:
    """The evidence of a comparison, before the verdict (`evalkeeper.analysis.verdict`)."""

    evaluators: list[str]
    """The evaluators compared: scored on both sides, not retired."""
    paired: pl.DataFrame
    """`PairFrames.paired` without the retired judges' rows."""
    cells: list[Cell]
    """Every cell, tested; `p_adjusted`, `regressed`, `underpowered`, `status` not yet set."""
    flipped: list[dict[str, Any]]
    """The guarded rows that flipped (`RowRegression` fields, without outputs/comments)."""
    unit_scale: dict[str, bool]
    """Evaluator -> whether its scale is [0, 1] (only then is its MDE judged)."""
    skipped: list[tuple[str, int, str | None]]
    """The candidate's skipped evaluators that count: not optional, not retired."""
    one_sided: list[str]
    """The candidate's evaluators the baseline did not score that count: not optional, not
    retired. Like a skipped one, each vouches for nothing (`evalkeeper.analysis.verdict`)."""
    latency: LatencySummary
    run_errors_baseline: int
    run_errors_candidate: int
    n_shared_examples: int
    warnings: list[str]
    """In order: the sides' status and dataset, retired judges, evaluators on one side or
    changed, guarded examples not checked, lost contexts, latency."""


def analyse_pair(
    candidate: Mapping[str, Any],
    baseline: Mapping[str, Any],
    frames: PairFrames,
    *,
    retired: Mapping[str, str],
    settings: Settings,
) -> Analysis:
    """Analyse `frames` of `candidate` against `baseline` (their `experiments` rows); the
    judges in `retired` (judge -> note) are left out. See the module docstring."""
    cand, base = candidate, baseline
    experiment_id, baseline_id = str(cand["experiment_id"]), str(base["experiment_id"])
    evs = frames.evaluators
    warnings: list[str] = []
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
    # a judge retired by calibration neither passes nor fails a verdict
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

    paired = frames.paired.filter(~pl.col("evaluator").is_in(list(retired)))
    if not paired.height:
        raise CompareError(
            f"experiments {experiment_id!r} (dataset {cand['dataset']!r} version "
            f"{cand['dataset_version']}) and {baseline_id!r} (dataset {base['dataset']!r} "
            f"version {base['dataset_version']}) share no example: nothing to compare. "
            "Compare with a baseline run on the same dataset."
        )
    binary_evs = set(paired.filter(pl.col("is_binary")).get_column("evaluator").unique())
    cells, flipped, unit_scale = analyse(paired, binary_evs, frames.examples, settings=settings)

    warnings.extend(guard_warnings(paired, frames.examples))
    optional = {e["name"] for e in json.loads(cand["evaluators"] or "[]") if e.get("optional")}
    one_sided = sorted(set(by_side[True]) - set(by_side[False]) - optional - set(retired))
    skipped = [
        (name, n, comment)
        for name, n, comment in frames.skipped
        if name not in optional and name not in retired
    ]
    opted_out: dict[str, list[str]] = {}
    for name, _n, comment in frames.skipped:
        if name in optional and name not in retired:
            opted_out.setdefault(comment or "no reason given", []).append(f"`{name}`")
    for comment, names in opted_out.items():
        warnings.append(
            f"opted out (--allow-skipped or `optional = true`), so this verdict leaves them "
            f"out: {', '.join(names)} — skipped on the candidate ({comment})"
        )
    for name, n in frames.lost_context:
        if name in retired:
            continue
        warnings.append(
            f"`{name}`: {n} row(s) had no retrieved context where the baseline's run "
            "had some: counted as failures (retrieval broke?)"
        )

    runs = frames.runs.join(paired.select("example_id").unique(), on="example_id", how="semi")
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
    return Analysis(
        evaluators=shared_evs,
        paired=paired,
        cells=cells,
        flipped=flipped,
        unit_scale=unit_scale,
        skipped=skipped,
        one_sided=one_sided,
        latency=latency,
        run_errors_baseline=run_err[False],
        run_errors_candidate=run_err[True],
        n_shared_examples=int(paired.get_column("example_id").n_unique()),
        warnings=warnings,
    )


def cut(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 1] + "…"


def row_regressions(
    flipped: list[dict[str, Any]],
    details: list[tuple[bool, str, str, int, bool | None, str | None, str | None]],
) -> list[RowRegression]:
    """The flipped rows with the outputs and comments of a passing baseline repetition and
    a failing candidate repetition (the first of each in `details`, lowest-numbered first)."""
    pick: dict[tuple[bool, str, str], tuple[str | None, str | None]] = {}
    for cand, ex, ev, _rep, passed, comment, outputs in details:
        want = not cand  # a passing baseline row, a failing candidate row
        if passed is want and (cand, ex, ev) not in pick:
            pick[(cand, ex, ev)] = (outputs, comment)
    out = []
    for r in flipped:
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
