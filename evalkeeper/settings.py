"""One `Settings` object, read once from the environment (`EVALKEEPER_` prefix) and `.env`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The largest markets across the Americas, Europe and Asia-Pacific: a number written in a
# national format (no country code) is found when its region is listed.
DEFAULT_REDACTION_REGIONS = (
    "US", "CA", "MX", "BR", "AR", "CO", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "CH",
    "AT", "SE", "PL", "IE", "PT", "JP", "KR", "CN", "IN", "AU", "NZ", "SG", "ID", "PH",
)  # fmt: skip


class Settings(BaseSettings):
    """Everything evalkeeper can be configured with. Passed in, never read ad hoc."""

    model_config = SettingsConfigDict(env_prefix="EVALKEEPER_", env_file=".env", extra="ignore")

    warehouse: Path = Field(Path("data/warehouse.duckdb"), description="DuckDB warehouse file.")
    datasets_dir: Path = Field(Path("data/datasets"), description="Where named datasets live.")
    spool_dir: Path | None = Field(
        None,
        description="Durable spool for rows written while the warehouse is locked "
        "(default: `<warehouse>.spool/` beside the warehouse file).",
    )
    lock_wait_s: float = Field(
        10.0, description="How long a write waits for the warehouse lock before spooling."
    )

    # runner
    concurrency: int = Field(8, ge=1, description="Examples in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-example target timeout (seconds).")
    retries: int = Field(2, ge=0, description="Retries for transient target errors.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry.")
    flush_rows: int = Field(1000, ge=1, description="Rows buffered before a warehouse write.")
    flush_s: float = Field(2.0, gt=0, description="Seconds between warehouse writes at most.")

    # smoke suite
    smoke_share: float = Field(0.25, gt=0, le=1, description="Share of each category in smoke.")
    smoke_min_per_category: int = Field(2, ge=0, description="Smoke floor per category.")
    seed: int = Field(20261125, description="Seed for smoke selection, bootstrap, sampling.")

    # provenance overrides (CI sets these; otherwise read from git)
    git_commit: str | None = Field(None, description="Commit recorded in the target pin.")
    git_branch: str | None = Field(None, description="Branch recorded in the target pin.")

    # analysis
    baseline_branch: str = Field("main", description="Branch whose runs are baselines.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level (after FDR).")
    tolerance: float = Field(
        0.0, ge=0, description="Drops in pass rate up to this size are not regressions."
    )
    max_error_rate: float = Field(
        0.2, ge=0, le=1, description="Above this share of errored rows a verdict is inconclusive."
    )
    max_mde: float = Field(
        0.20,
        gt=0,
        le=1,
        description="A cell whose minimum detectable effect (80% power) is larger than this "
        "cannot vouch for 'no change': the verdict is inconclusive.",
    )
    inconclusive_fails: bool = Field(True, description="`gate` exits non-zero on inconclusive.")
    latency_p95_s: float = Field(1.2, gt=0, description="p95 latency threshold (seconds).")

    # LLM judges (OpenAI-compatible endpoint)
    judge_base_url: str | None = Field(None, description="OpenAI-compatible base URL (…/v1).")
    judge_api_key: SecretStr | None = Field(
        None, description="API key for the judge endpoint (never printed or logged)."
    )
    judge_model: str | None = Field(None, description="Pinned judge model, e.g. gpt-4o-2024-08-06.")
    judge_allow_unpinned: bool = Field(False, description="Accept a judge model without a pin.")
    judge_votes: int = Field(3, ge=1, description="Votes per judged example (odd).")
    judge_concurrency: int = Field(8, ge=1, description="Judge calls in flight per endpoint.")
    judge_rpm: float = Field(600.0, gt=0, description="Judge requests per minute per endpoint.")
    judge_max_retries: int = Field(4, ge=0, description="Retries on 429/5xx.")
    judge_timeout_s: float = Field(60.0, gt=0, description="Timeout of one judge call.")

    # LangSmith (optional)
    langsmith_api_key: SecretStr | None = Field(
        None, description="LangSmith API key (optional; never printed or logged)."
    )
    langsmith_endpoint: str | None = Field(None, description="LangSmith API URL (optional).")

    # traces: redaction and sampling (issue 9)
    redaction_key: SecretStr | None = Field(
        None,
        description="HMAC key of the redaction tokens and of trace sampling (never printed or "
        "logged). Unset: a key is generated on first use and kept beside the warehouse.",
    )
    redaction_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REDACTION_REGIONS),
        description="Regions (ISO 3166) whose national phone formats are recognised.",
    )
    redaction_names: list[str] = Field(
        default_factory=list, description="Names (people, customers) always redacted."
    )
    redaction_patterns: list[str] = Field(
        default_factory=list, description="Extra regular expressions whose matches are redacted."
    )
    trace_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of traces kept, by a keyed hash of the trace id."
    )
    redaction_workers: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that redact ingested trace batches: 0 = one per CPU core this "
        "process may use, 1 = in the ingesting process itself. The workers start once an "
        "ingest has spent a second redacting batches of 200 traces or more; smaller batches "
        "are always redacted in the ingesting process.",
    )

    # CI: GitHub Actions names its job-summary file here (no EVALKEEPER_ prefix)
    github_step_summary: Path | None = Field(
        None,
        validation_alias=AliasChoices("github_step_summary", "GITHUB_STEP_SUMMARY"),
        description="GitHub Actions' job summary file (`GITHUB_STEP_SUMMARY`): `gate` appends "
        "its markdown summary there.",
    )

    # OTLP/HTTP trace receiver (`evalkeeper listen`)
    otlp_max_body_bytes: int = Field(
        16 * 2**20, ge=1, description="Largest OTLP export body, after decompression (bytes)."
    )
    otlp_settle_s: float = Field(
        3.0, ge=0, description="A trace is complete this long after its last span (root seen)."
    )
    otlp_root_wait_s: float = Field(
        60.0, ge=0, description="A trace whose root span never came is completed after this."
    )
    otlp_max_open_traces: int = Field(
        10_000, ge=1, description="Traces kept open at once; the least recent is evicted."
    )
    otlp_max_spans_per_trace: int = Field(
        1_000, ge=1, description="Spans kept per trace; more are rejected (partial success)."
    )

    # LangSmith experiment upload (issue 12)
    langsmith_upload: bool = Field(
        False,
        description="The nightly flow also uploads its experiment to LangSmith "
        "(EVALKEEPER_LANGSMITH_UPLOAD=true; needs the LangSmith key or endpoint).",
    )

    # post-deploy monitoring: windows, ticks, deploy webhooks, rollback delivery
    traces: str | None = Field(
        None,
        description="The trace source a monitoring tick ingests from (`jsonl:PATH`); unset: "
        "ticks score the traces already in the warehouse.",
    )
    monitors_dir: Path = Field(
        Path("data/monitors"), description="Per-service monitor configs (`SERVICE.toml`)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret of the deploy webhooks (never printed or logged): `whsec_<base64>` "
        "for Standard Webhooks (any other text is used as raw bytes), the same text as "
        "GitHub's webhook secret.",
    )
    webhook_max_body_bytes: int = Field(
        256 * 1024, ge=1, description="Largest deploy webhook body (bytes); larger is 413."
    )
    webhook_tolerance_s: float = Field(
        300.0, gt=0, description="How far a signed webhook's timestamp may be from now (s)."
    )
    rollback_url: str | None = Field(
        None, description="Where a rollback decision is POSTed (signed like the webhooks)."
    )
    rollback_secret: SecretStr | None = Field(
        None, description="Signing secret of the rollback call (never printed or logged)."
    )
    rollback_command: str | None = Field(
        None,
        description="A command run on a rollback decision (the payload on stdin); a "
        "service's monitor config may set its own.",
    )
    rollback_attempts: int = Field(
        4, ge=1, description="Attempts of one rollback delivery per tick (then the next tick)."
    )
    rollback_backoff_s: float = Field(
        0.5, ge=0, description="First delay between rollback attempts; doubles each attempt."
    )
    rollback_timeout_s: float = Field(10.0, gt=0, description="Timeout of one rollback call.")
    prefect_api_url: str | None = Field(
        None,
        validation_alias=AliasChoices("prefect_api_url", "PREFECT_API_URL"),
        description="Prefect's API (`PREFECT_API_URL`): when set, the HTTP app emits "
        "`evalkeeper.deploy.completed` and rollbacks emit `evalkeeper.rollback.triggered`.",
    )

    # judge calibration: labels, agreement, retirement (evalkeeper.calibration)
    calibration_bar: float = Field(
        0.80,
        gt=0,
        le=1,
        description="A judge whose agreement's upper 95% bound is below this is retired.",
    )
    calibration_ceiling_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="If set, the bar is this share of the human ceiling (human-human "
        "agreement) when the ceiling is measured, instead of `calibration_bar`.",
    )
    calibration_min_labels: int = Field(
        50, ge=1, description="Fewer labelled items than this: the judge is `uncalibrated`."
    )
    calibration_kappa_floor: float = Field(
        0.40, ge=-1, le=1, description="A judge whose kappa is below this is `at_risk`."
    )
    calibration_double_share: float = Field(
        0.20, ge=0, le=1, description="Share of sampled items given to two annotators."
    )
    calibration_half_width: float = Field(
        0.05, gt=0, lt=0.5, description="Sample sizing: target half-width of the agreement CI."
    )
    calibration_expected_agreement: float = Field(
        0.85, gt=0, lt=1, description="Sample sizing: the agreement expected of a judge."
    )
    calibration_bootstrap_resamples: int = Field(
        2000, ge=100, description="Bootstrap resamples of the kappa interval."
    )
    calibration_dir: Path | None = Field(
        None,
        description="Where annotation files are written (default `annotations/` beside "
        "the warehouse file).",
    )

    @field_validator("redaction_regions", mode="before")
    @classmethod
    def _regions_list(cls, value: Any) -> Any:
        """`US,DE,JP` as well as `["US", "DE", "JP"]`; codes upper-cased."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple):
            return [str(v).strip().upper() for v in value if str(v).strip()]
        return value

    @property
    def annotations_path(self) -> Path:
        return self.calibration_dir or self.warehouse.parent / "annotations"

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.warehouse.with_name(self.warehouse.name + ".spool")
