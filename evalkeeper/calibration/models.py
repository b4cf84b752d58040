"""What calibration speaks: items, labels, measurements and statuses (pydantic), and quarters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from evalkeeper.models import content_hash

Status = Literal["healthy", "at_risk", "retired", "uncalibrated"]
STATUSES: tuple[Status, ...] = ("healthy", "at_risk", "retired", "uncalibrated")
RuleStatistic = Literal["agreement", "kappa", "ac1"]

_QUARTER = re.compile(r"^(\d{4})[-_ ]?[Qq]([1-4])$")


def item_id(experiment_id: str, example_id: str, repetition: int) -> str:
    """The stable id of one judged run (the same for every judge that scored it)."""
    return "it-" + content_hash([experiment_id, example_id, int(repetition)], 12)


def quarter_of(when: datetime) -> str:
    """`2026Q4` for any time in October-December 2026 (UTC)."""
    when = when.astimezone(UTC)
    return f"{when.year}Q{(when.month - 1) // 3 + 1}"


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    """[start, end) of a quarter such as `2026Q4` (UTC); a ValueError names the fix."""
    m = _QUARTER.match(quarter.strip())
    if not m:
        raise ValueError(f"quarter {quarter!r}: not a quarter; write e.g. 2026Q4")
    year, q = int(m.group(1)), int(m.group(2))
    start = datetime(year, 3 * q - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC) if q == 4 else datetime(year, 3 * q + 1, 1, tzinfo=UTC)
    )
    return start, end


def previous_quarter(when: datetime) -> str:
    """The quarter before the one `when` falls in."""
    start, _ = quarter_bounds(quarter_of(when))
    return quarter_of(start - timedelta(days=1))


class JudgeVersion(BaseModel):
    """One version of a judge: what a status belongs to."""

    judge: str = Field(description="Judge (evaluator) name.")
    prompt_version: str = Field(description="Content hash of the judge's prompt and rubric.")
    judge_model: str = Field(description="The pinned model that answered.")

    def label(self) -> str:
        return f"{self.judge} (prompt {self.prompt_version}, model {self.judge_model})"


class SampleResult(BaseModel):
    """What `sample_items` drew and wrote."""

    sample_id: str = Field(description="Id of this draw (stored with each item).")
    judge: str = Field(description="The judge the items were drawn for.")
    n_items: int = Field(description="Items drawn.")
    n_double: int = Field(description="Items assigned to two annotators.")
    n_available: int = Field(description="Judged runs that could be drawn (not drawn before).")
    sized_by: str = Field(description="How the sample size was chosen.")
    strata: dict[str, int] = Field(description="Items per `verdict/category` stratum.")
    files: list[str] = Field(description="The annotation files written (CSV and JSONL).")


class ImportResult(BaseModel):
    """What `import_labels` stored."""

    path: str = Field(description="The file imported.")
    rows: int = Field(description="Labelled rows read.")
    inserted: int = Field(description="New labels.")
    replaced: int = Field(description="Labels that replaced an older one of the same annotator.")
    unchanged: int = Field(description="Rows identical to a stored label.")
    kept_stored: int = Field(description="Rows older than the stored label (the stored one kept).")
    unlabelled: int = Field(description="Rows without a label yet (skipped, not errors).")
    notes: list[str] = Field(default_factory=list, description="What was replaced, and why.")


class Ceiling(BaseModel):
    """Human-human agreement on the items labelled by two or more annotators."""

    n_items: int = Field(description="Items with at least two human labels.")
    agreement: float | None = Field(description="Share of those items where two annotators agree.")
    kappa: float | None = Field(description="Cohen's kappa between the first two labels.")
    ac1: float | None = Field(description="Gwet's AC1 between the first two labels.")
    alpha: float | None = Field(
        description="Krippendorff's alpha (nominal) over every label of those items."
    )


class Disagreement(BaseModel):
    """One item where the judge and the humans differ: material to revise the prompt from."""

    item_id: str = Field(description="Stable item id.")
    experiment_id: str = Field(description="Experiment of the judged run.")
    example_id: str = Field(description="Example of the judged run.")
    repetition: int = Field(description="Repetition of the judged run.")
    category: str = Field(description="The example's category.")
    judge_verdict: str = Field(description="What the judge said.")
    human_label: str = Field(description="The majority human label.")
    human_labels: dict[str, str] = Field(description="Each annotator's label.")
    reasoning: str | None = Field(description="The judge's reasoning for its verdict.")


class JudgeCalibration(BaseModel):
    """One judge version's agreement with humans in one quarter, and the status it earns."""

    judge: str = Field(description="Judge name.")
    version: str = Field(description="Prompt version (content hash).")
    model: str = Field(description="Pinned judge model.")
    quarter: str = Field(description="Quarter of the labels, e.g. 2026Q4.")
    n_items: int = Field(description="Items with a judge verdict and a majority human label.")
    n_ties: int = Field(description="Labelled items whose humans split evenly (left out).")
    labels: list[str] = Field(description="The label categories, in table order.")
    agreement: float | None = Field(description="Share of items where judge = majority human.")
    agreement_ci: list[float] | None = Field(description="95% Wilson interval [lo, hi].")
    kappa: float | None = Field(description="Cohen's kappa (None when undefined).")
    kappa_se: float | None = Field(description="Asymptotic SE (Fleiss-Cohen-Everitt).")
    kappa_ci: list[float] | None = Field(description="95% paired BCa bootstrap interval.")
    ac1: float | None = Field(description="Gwet's AC1.")
    ac1_se: float | None = Field(description="Gwet's SE of AC1.")
    confusion: list[list[int]] = Field(description="Rows: judge label; columns: human label.")
    true_pass_rate: float | None = Field(
        description="Of the items humans passed, the share the judge passed."
    )
    true_fail_rate: float | None = Field(
        description="Of the items humans failed, the share the judge failed."
    )
    ceiling: Ceiling = Field(description="The human ceiling.")
    bar: float = Field(
        description="The bar this judge was held to, on the rule's statistic (`rule`): the "
        "agreement bar under the default rule."
    )
    status: Status = Field(description="healthy, at_risk, retired or uncalibrated.")
    reason: str = Field(description="Why that status, in words.")
    disagreements: list[Disagreement] = Field(
        default_factory=list, description="Items where judge and humans differ."
    )
    baseline: float | None = Field(
        None,
        description="Constant-answer baseline: the agreement of a judge that always gives "
        "the commonest majority human label (`baseline_label`).",
    )
    baseline_label: str | None = Field(None, description="The label the constant judge gives.")
    baseline_ci: list[float] | None = Field(
        None, description="95% Wilson interval of the baseline [lo, hi]."
    )
    beats_baseline: bool | None = Field(
        None,
        description="Whether the agreement is above the constant-answer baseline on the same "
        "items (None when not measured). A judge that does not is flagged.",
    )
    rule: RuleStatistic = Field(
        "agreement", description="The statistic the retire rule held to the bar."
    )
    rule_value: float | None = Field(None, description="That statistic's value.")
    rule_ci: list[float] | None = Field(
        None, description="The 95% interval the rule used [lo, hi]."
    )
    rule_interval: str | None = Field(
        None, description="Which interval: wilson, bca, asymptotic (kappa) or se (AC1)."
    )
    rule_share: float | None = Field(
        None, description="The share of the human ceiling the bar is (None: an absolute bar)."
    )
    rule_ceiling: float | None = Field(
        None, description="The human ceiling's value of the rule's statistic (relative bars)."
    )

    @property
    def key(self) -> JudgeVersion:
        return JudgeVersion(judge=self.judge, prompt_version=self.version, judge_model=self.model)


class StatusChange(BaseModel):
    """One entry of a judge's status history."""

    judge: str = Field(description="Judge name.")
    prompt_version: str = Field(description="The version the status belongs to.")
    judge_model: str = Field(description="The model pin the status belongs to.")
    status: Status = Field(description="The status from then on.")
    reason: str = Field(description="The evidence, in words.")
    calibration_id: str = Field(description="The measurement that decided it.")
    changed_at: datetime = Field(description="When (UTC).")
