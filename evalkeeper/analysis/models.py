"""What a comparison found: cells, row regressions, latency, and the verdict (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from evalkeeper.analysis import stats
from evalkeeper.analysis.judge_rates import CorrectedRate
from evalkeeper.analysis.stats import Verdict
from evalkeeper.errors import InputError
from evalkeeper.models import ErrorGroup

ALL = "__all__"


OUTPUT_CHARS = 400


Metric = Literal["pass_rate", "mean_value"]


CellStatus = Literal["regression", "improved", "changed", "unchanged", "underpowered", "no_data"]


class CompareError(InputError, ValueError):
    """A comparison that cannot be made as asked; the message names the problem and the fix."""


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


class RowHistory(BaseModel):
    """A guarded row's history under the candidate's pin, before the candidate
    (`evalkeeper.analysis.stability`)."""

    runs: int = Field(description="Earlier runs of the same dataset version and pin.")
    observations: int = Field(description="Their scored pass/fail rows of this example.")
    passes: int
    pass_rate: float | None
    ci_low: float | None = Field(description="Wilson interval on the pass rate.")
    ci_high: float | None = None
    stability: Literal["stable_pass", "stable_fail", "flaky", "insufficient"]


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
    candidate_repetitions: int = Field(1, description="The candidate's scored repetitions.")
    candidate_fails: int = Field(1, description="... of which failed.")
    history: RowHistory | None = Field(
        None, description="The row's history before the candidate, under its pin."
    )
    guard: Literal["regression", "flaky_regression", "flaky_tolerated", "flaky_undecided"] = Field(
        "regression",
        description="regression / flaky_regression: gates; flaky_tolerated: a flaky row "
        "that failed fewer than k of every N repetitions (a warning); flaky_undecided: a "
        "flaky row with fewer than N repetitions (inconclusive).",
    )

    @property
    def gates(self) -> bool:
        """Whether this row makes the verdict a regression by itself."""
        return self.guard in ("regression", "flaky_regression")


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
    error_groups: list[ErrorGroup] = Field(
        default_factory=list, description="The candidate's errors grouped by cause."
    )
    skipped_evaluators: list[str] = Field(
        default_factory=list,
        description="Candidate evaluators skipped without being allowed to (not optional).",
    )
    baseline_problems: list[str] = Field(
        default_factory=list,
        description="Why a named baseline would not have been chosen automatically.",
    )
    corrected_rates: list[CorrectedRate] = Field(
        default_factory=list,
        description="Each judge pass rate beside the rate corrected for the judge's "
        "calibrated errors (`evalkeeper.analysis.judge_rates`).",
    )

    def cell(self, evaluator: str, category: str = ALL) -> Cell:
        for c in self.cells:
            if c.evaluator == evaluator and c.category == category:
                return c
        raise KeyError(f"no cell {evaluator!r} x {category!r}")
