"""The pydantic models every part of evalkeeper speaks: examples, pins, experiments, scores."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

Suite = Literal["full", "smoke"]


def utcnow() -> datetime:
    """Timezone-aware now, in UTC (the warehouse stores UTC only)."""
    return datetime.now(UTC)


# One encoder, built once: `json.dumps` with these options builds a new JSONEncoder on every
# call, a third of the cost of hashing a dataset's examples. The text is the same.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace; the basis of every content hash."""
    return _CANONICAL(value)


def json_text(value: Any) -> str:
    """Compact JSON text for storage (outputs, details): orjson, about 5x faster than the
    standard library. Keys keep their order: use `canonical_json` for anything hashed."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (an integer past 64 bits …): the slow path
        return canonical_json(value)


def content_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


class ExampleMetadata(BaseModel):
    """What we know about an example beyond its data. Free keys are kept."""

    model_config = ConfigDict(extra="allow")

    category: str = Field("uncategorized", description="Stratum for smoke selection and analysis.")
    critical: bool = Field(False, description="A critical example that fails is a regression.")
    incident_id: str | None = Field(None, description="Incident this example was promoted from.")
    promoted_from_run: str | None = Field(None, description="Trace/run id it was promoted from.")


class Example(BaseModel):
    """One regression example: inputs, what a good answer looks like, and metadata."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="Stable id, unique within its dataset.")
    inputs: dict[str, Any] = Field(description="What the target receives.")
    reference_outputs: dict[str, Any] = Field(
        default_factory=dict, description="What a correct answer contains."
    )
    metadata: ExampleMetadata = Field(default_factory=ExampleMetadata)

    @functools.cached_property
    def canonical(self) -> tuple[str, str, str]:
        """Canonical JSON of (inputs, reference_outputs, metadata), computed once."""
        return (
            canonical_json(self.inputs),
            canonical_json(self.reference_outputs),
            canonical_json(self.metadata.model_dump(mode="json")),
        )

    @functools.cached_property
    def content_hash(self) -> str:
        """Hash of the whole example's canonical JSON (keys sorted: id, inputs, metadata,
        reference_outputs), assembled from the cached parts."""
        inputs, reference, metadata = self.canonical
        text = (
            f'{{"id":{canonical_json(self.id)},"inputs":{inputs},'
            f'"metadata":{metadata},"reference_outputs":{reference}}}'
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class EvaluatorRef(BaseModel):
    """An evaluator by registry name, with the arguments it is built with."""

    name: str = Field(description="Registry name.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Factory arguments (recorded and hashed)."
    )
    optional: bool = Field(
        False,
        description="May be skipped without making the verdict inconclusive "
        "(`optional = true` in the dataset's TOML, or `--allow-skipped NAME`).",
    )


class DatasetConfig(BaseModel):
    """Sidecar `NAME.toml` beside `NAME.jsonl`: description and default evaluators."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    evaluators: list[EvaluatorRef] = Field(default_factory=list)


class Dataset(BaseModel):
    """A named, versioned list of examples."""

    name: str
    path: str
    examples: list[Example]
    config: DatasetConfig = Field(default_factory=DatasetConfig)

    @functools.cached_property
    def version(self) -> str:
        """Content hash over the examples' hashes, in file order."""
        return content_hash([e.content_hash for e in self.examples])


class TargetPin(BaseModel):
    """Exactly which system was under test."""

    spec: str = Field(description="The target spec as given (`module:function`, URL, replay:…).")
    kind: Literal["callable", "http", "replay"]
    agent_version: str | None = None
    model: str | None = Field(None, description="Model with its date stamp, when known.")
    git_commit: str | None = None
    git_branch: str | None = None


class Experiment(BaseModel):
    """One run of a suite against a target, with everything needed to reproduce it."""

    experiment_id: str
    suite: Suite
    dataset: str
    dataset_version: str
    target: TargetPin
    evaluators: list[EvaluatorRef]
    evaluator_versions: dict[str, str] = Field(default_factory=dict)
    repetitions: int = Field(1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    n_examples: int = 0
    status: Literal["running", "completed", "failed"] = "running"
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class RunRecord(BaseModel):
    """One call of the target on one example (one repetition). `run` for evaluators."""

    experiment_id: str
    example_id: str
    repetition: int = 0
    outputs: dict[str, Any] | None = None
    latency_ms: float | None = None
    error: str | None = None
    attempts: int = Field(1, description="Target calls made for this row, resumes included.")
    started_at: datetime = Field(default_factory=utcnow)


class Score(BaseModel):
    """The result of one evaluator on one run. An error is an error, never a pass or a zero."""

    name: str = Field("", description="Evaluator name (filled in by the registry).")
    version: str = Field("", description="Evaluator version (filled in by the registry).")
    value: float | None = Field(None, description="Numeric score; None when errored/skipped.")
    passed: bool | None = Field(None, description="Pass/fail; None when errored/skipped.")
    comment: str | None = Field(None, description="Why: the evidence, in words.")
    error: str | None = Field(None, description="Set when the evaluator could not score.")
    skipped: bool = Field(False, description="The evaluator is not configured for this run.")
    details: dict[str, Any] | None = Field(None, description="Structured extras (vote split …).")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("score value must be finite; record an error instead")
        return v

    @classmethod
    def failure(cls, error: str) -> Score:
        return cls(error=error)


class ErrorGroup(BaseModel):
    """Errors of one experiment that share a cause: where, the first line, how many."""

    where: str = Field(description='"target", or the evaluator\'s name.')
    error: str = Field(description="The error's first line (the cause).")
    count: int = Field(description="Rows with this error.")
    example_id: str = Field(description="One example that had it, to reproduce.")
