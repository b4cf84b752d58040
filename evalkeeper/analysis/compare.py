"""Compare an experiment with its baseline: load, analyse, decide.

``compare(warehouse, experiment_id, baseline="auto", settings=None, *, max_mde=None)
-> Comparison`` reads both experiments from the warehouse and analyses them; the CLI, the
gate (`evalkeeper.analysis.gate.decide_gate`) and the nightly flow use it. `baseline` is
``"auto"`` or an experiment id. ``auto`` is the latest experiment with status
``completed``, the same suite and dataset, ``git_branch == settings.analysis.baseline_branch``,
started before the candidate (and not the candidate itself), whose own latest stored
verdict is not ``regression``; to pick the baseline of another branch pass
``Settings(baseline_branch="release")``. `settings=None` means ``Settings()``; `max_mde`
defaults to ``settings.analysis.max_mde`` (0.20). Raises `CompareError` (a ValueError whose
message names the object, the problem and the fix) on an unknown id, an
empty experiment, no baseline, or no shared example. The JSON output is
``comparison.model_dump_json()``; its top-level ``verdict`` is ``pass`` | ``regression`` |
``inconclusive``.

`compare` composes these steps, each in its own place:

1. the baseline: `evalkeeper.analysis.baseline.choose_baseline` (the ``auto`` rule alone is
   `find_baseline`);
2. loading, read-only: `evalkeeper.warehouse.pairs.load_pair` (the frames) and
   `evalkeeper.warehouse.queries.retired_judges` (the judges calibration retired, passed on
   as data);
3. the analysis of those frames, pure: `evalkeeper.analysis.paired.analyse_pair` (the
   method is described there); the guarded rows that flipped are then judged against their
   history under the candidate's pin (`evalkeeper.warehouse.stability.guard_history`,
   `evalkeeper.analysis.stability.judge_flipped`: a flaky row follows the k-of-N rule);
4. the verdict, pure: `evalkeeper.analysis.verdict.decide_verdict`.
5. beside it, the judge-corrected pass rates, pure: `evalkeeper.analysis.judge_rates`
   (each judge version's calibration counts read by
   `evalkeeper.warehouse.judge_errors.load_judge_errors`); they never change the verdict.

Storing a comparison is `evalkeeper.warehouse.save_comparison`; rendering it,
`evalkeeper.report.render_markdown` and `render_table`.
"""

from __future__ import annotations

from dataclasses import replace

from evalkeeper.analysis.baseline import choose_baseline
from evalkeeper.analysis.judge_rates import correct_cells
from evalkeeper.analysis.models import ALL, Comparison
from evalkeeper.analysis.paired import analyse_pair, row_regressions
from evalkeeper.analysis.stability import judge_flipped
from evalkeeper.analysis.verdict import decide_verdict
from evalkeeper.models import content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.judge_errors import load_judge_errors
from evalkeeper.warehouse.pairs import flipped_details, load_pair
from evalkeeper.warehouse.queries import retired_judges
from evalkeeper.warehouse.stability import guard_history


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
    # the spool is ingested first when the file is free; while an analyst holds it, the
    # rows waiting in the spool are read with the stored ones (`Warehouse.reading`)
    with warehouse.reading() as con:
        choice = choose_baseline(con, warehouse, experiment_id, baseline, settings)
        cand, base, baseline_id = choice.candidate, choice.baseline, choice.baseline_id
        frames = load_pair(con, cand, base)
        retired = retired_judges(con, experiment_id)
        found = analyse_pair(cand, base, frames, retired=retired, settings=settings)
        # a guarded row known to flip under this pin is judged by the k-of-N rule
        history = guard_history(con, cand, [r["example_id"] for r in found.flipped])
        found = replace(found, flipped=judge_flipped(found.flipped, history, settings.analysis))
        ruling = decide_verdict(found, settings=settings, max_mde=max_mde)
        ids = [r["example_id"] for r in found.flipped]
        details = flipped_details(con, ids, experiment_id, baseline_id)
        judge_errors = load_judge_errors(con, experiment_id, baseline_id)
    cells = ruling.cells
    created = utcnow()
    return Comparison(
        comparison_id=content_hash([experiment_id, baseline_id, created.isoformat()]),
        created_at=created,
        verdict=ruling.verdict,
        reasons=ruling.reasons,
        warnings=[*choice.warnings, *found.warnings, *ruling.warnings],
        experiment_id=experiment_id,
        baseline_id=baseline_id,
        baseline_mode=choice.mode,
        baseline_branch=settings.analysis.baseline_branch if choice.mode == "auto" else None,
        suite=str(cand["suite"]),
        dataset=str(cand["dataset"]),
        dataset_version=str(cand["dataset_version"]),
        baseline_dataset_version=str(base["dataset_version"]),
        n_shared_examples=found.n_shared_examples,
        evaluators=found.evaluators,
        alpha=settings.analysis.alpha,
        tolerance=settings.analysis.tolerance,
        max_error_rate=settings.analysis.max_error_rate,
        max_mde=max_mde,
        errors_baseline=sum(c.errors_baseline for c in cells if c.category == ALL),
        errors_candidate=sum(c.errors_candidate for c in cells if c.category == ALL),
        run_errors_baseline=found.run_errors_baseline,
        run_errors_candidate=found.run_errors_candidate,
        underpowered=any(c.underpowered for c in cells),
        cells=cells,
        row_regressions=row_regressions(found.flipped, details),
        latency=found.latency,
        error_groups=frames.error_groups,
        skipped_evaluators=[name for name, _, _ in found.skipped],
        baseline_problems=choice.baseline_problems,
        corrected_rates=correct_cells(
            cells, experiment_id, baseline_id, judge_errors, min_j=settings.analysis.corrected_min_j
        ),
    )
