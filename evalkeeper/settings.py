"""One `Settings` object, read once from the environment (`EVALKEEPER_` prefix) and `.env`.

`Settings` keeps the few values every part needs (the warehouse file, the datasets, the spool,
the lock wait, the seed, the git overrides) and one sub-model per concern, each read from its
own environment variables and `.env` (Prefect's nested settings: each part of the code needs
only its slice):

| slice | variables | e.g. |
|---|---|---|
| `settings.runner` | `EVALKEEPER_CONCURRENCY`, `_TIMEOUT_S`, `_RETRIES`, `_BACKOFF_S`, `_FLUSH_*` | `.concurrency` |
| `settings.smoke` | `EVALKEEPER_SMOKE_*` | `.share` |
| `settings.analysis` | `EVALKEEPER_ALPHA`, `_TOLERANCE`, `_BASELINE_BRANCH`, `_MAX_*`, … | `.alpha` |
| `settings.judge` | `EVALKEEPER_JUDGE_*` | `.model` |
| `settings.langsmith` | `EVALKEEPER_LANGSMITH_*` | `.api_key` |
| `settings.redaction` | `EVALKEEPER_REDACTION_*`, `EVALKEEPER_TRACE_SAMPLE_RATE` | `.key` |
| `settings.otlp` | `EVALKEEPER_OTLP_*` | `.settle_s` |
| `settings.monitor` | `EVALKEEPER_TRACES`, `_MONITORS_DIR`, `_WEBHOOK_*`, `_ROLLBACK_*` | `.webhook_secret` |
| `settings.calibration` | `EVALKEEPER_CALIBRATION_*` | `.bar` |
| `settings.results` | `EVALKEEPER_RESULTS_*` | `.url` |

Every setting also has a flat name, its variable without the prefix (`judge_model`,
`concurrency`): `Settings(judge_model=…, warehouse=…)` and the command line's overrides use
it, `settings.setting("judge_model")` reads by it, and `SETTINGS` maps it to where it lives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "EVALKEEPER_"

# The largest markets across the Americas, Europe and Asia-Pacific: a number written in a
# national format (no country code) is found when its region is listed.
DEFAULT_REDACTION_REGIONS = (
    "US", "CA", "MX", "BR", "AR", "CO", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "CH",
    "AT", "SE", "PL", "IE", "PT", "JP", "KR", "CN", "IN", "AU", "NZ", "SG", "ID", "PH",
)  # fmt: skip

# `Settings(_env_file=…)` is handed down to the sub-models, which read `.env` themselves.
_NO_ENV_FILE_GIVEN: Any = object()
_ENV_FILE: ContextVar[Any] = ContextVar("evalkeeper_settings_env_file", default=_NO_ENV_FILE_GIVEN)


class SettingsGroup(BaseSettings):
    """One slice of the settings: a BaseSettings of its own, reading its variables (its
    `env_prefix` + the field's name, or the field's upper-case alias) and `.env`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    def __init__(self, **values: Any) -> None:
        env_file = _ENV_FILE.get()
        if env_file is not _NO_ENV_FILE_GIVEN:
            values.setdefault("_env_file", env_file)
        super().__init__(**values)


class RunnerSettings(SettingsGroup):
    """How a suite runs: examples in flight, target deadlines and retries, warehouse flushes."""

    concurrency: int = Field(8, ge=1, description="Examples in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-example target timeout (seconds).")
    retries: int = Field(2, ge=0, description="Retries for transient target errors.")
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles each retry.")
    flush_rows: int = Field(1000, ge=1, description="Rows buffered before a warehouse write.")
    flush_s: float = Field(2.0, gt=0, description="Seconds between warehouse writes at most.")
    shards: int = Field(
        0, ge=0, description="Shards of a suite in the flows; 0: one per 2,000 rows, at most 8."
    )
    shard_deployment: str | None = Field(
        None,
        description="The deployment the flows run each shard as (`suite-shard/suite-shard`, "
        "on its work pool); unset: the shards run in the flow's own process.",
    )
    shard_attempts: int = Field(
        3, ge=1, description="Flow runs of one shard at most (a failed or lost one is resubmitted)."
    )
    shard_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="How long the flow waits for one shard's flow run before it counts it as "
        "lost (its worker died), marks it crashed and submits it again.",
    )
    shard_poll_s: float = Field(
        5.0,
        gt=0,
        description="How often the flow asks the Prefect API whether a shard's flow run has "
        "ended (each ask is a request the server answers while the shards compute).",
    )


class SmokeSettings(SettingsGroup):
    """The smoke suite: a stratified share of each category (`EVALKEEPER_SMOKE_*`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "SMOKE_")

    share: float = Field(0.25, gt=0, le=1, description="Share of each category in smoke.")
    min_per_category: int = Field(2, ge=0, description="Smoke floor per category.")


class AnalysisSettings(SettingsGroup):
    """Comparing an experiment with its baseline, and the gate's decision."""

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
    corrected_min_j: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="A judge whose Youden J (true-pass + true-fail rate - 1) has a 95% "
        "lower bound at or below this is uninformative: its judge-corrected pass rates "
        "are not shown as numbers.",
    )
    flaky_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence of the Wilson interval on a row's pass rate (flaky rows).",
    )
    flaky_tolerance: float = Field(
        0.10,
        gt=0,
        lt=0.5,
        description="A row is stable when its other outcome's rate is at most this "
        "(interval's bound); a row seen both passing and failing above it is flaky.",
    )
    flaky_gate_of: int = Field(
        3,
        ge=1,
        description="A flaky guarded row gates when at least k of every N candidate "
        "repetitions fail: this is N (fewer repetitions cannot decide: inconclusive).",
    )
    flaky_gate_fails: int = Field(3, ge=1, description="... and this is k (at most N).")

    @field_validator("flaky_gate_fails")
    @classmethod
    def _k_of_n(cls, k: int, info: ValidationInfo) -> int:
        n = info.data.get("flaky_gate_of")
        if n is not None and k > n:
            raise ValueError(f"must be at most EVALKEEPER_FLAKY_GATE_OF ({n}): k of N")
        return k


class JudgeSettings(SettingsGroup):
    """LLM judges: one OpenAI-compatible endpoint and its limits (`EVALKEEPER_JUDGE_*`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "JUDGE_")

    base_url: str | None = Field(None, description="OpenAI-compatible base URL (…/v1).")
    api_key: SecretStr | None = Field(
        None, description="API key for the judge endpoint (never printed or logged)."
    )
    model: str | None = Field(None, description="Pinned judge model, e.g. gpt-4o-2024-08-06.")
    allow_unpinned: bool = Field(False, description="Accept a judge model without a pin.")
    votes: int = Field(3, ge=1, description="Votes per judged example (odd).")
    concurrency: int = Field(8, ge=1, description="Judge calls in flight per endpoint.")
    rpm: float = Field(600.0, gt=0, description="Judge requests per minute per endpoint.")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one judge call.")
    shared_limits: bool | None = Field(
        None,
        description="Share `rpm` and `concurrency` with every worker through Prefect's global "
        "concurrency limits (docs/scale.md). Unset: shared when the flows run against a "
        "Prefect server (PREFECT_API_URL set); true: required (a judge call fails without "
        "one); false: each process keeps its own limits.",
    )


class LangSmithSettings(SettingsGroup):
    """LangSmith (optional): the account, and the nightly experiment upload."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "LANGSMITH_")

    api_key: SecretStr | None = Field(
        None, description="LangSmith API key (optional; never printed or logged)."
    )
    endpoint: str | None = Field(None, description="LangSmith API URL (optional).")
    upload: bool = Field(
        False,
        description="The nightly flow also uploads its experiment to LangSmith "
        "(EVALKEEPER_LANGSMITH_UPLOAD=true; needs the LangSmith key or endpoint).",
    )


class RedactionSettings(SettingsGroup):
    """Traces: redaction and keyed sampling (issue 9)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "REDACTION_")

    key: SecretStr | None = Field(
        None,
        description="HMAC key of the redaction tokens and of trace sampling (never printed or "
        "logged). Unset: a key is generated on first use and kept beside the warehouse.",
    )
    regions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REDACTION_REGIONS),
        description="Regions (ISO 3166) whose national phone formats are recognised.",
    )
    names: list[str] = Field(
        default_factory=list, description="Names (people, customers) always redacted."
    )
    patterns: list[str] = Field(
        default_factory=list, description="Extra regular expressions whose matches are redacted."
    )
    # read from EVALKEEPER_TRACE_SAMPLE_RATE (the only name): `_sample_rate_by_name` lets
    # `RedactionSettings(sample_rate=…)` through
    sample_rate: float = Field(
        1.0,
        ge=0,
        le=1,
        validation_alias="EVALKEEPER_TRACE_SAMPLE_RATE",
        description="Share of traces kept, by a keyed hash of the trace id.",
    )
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that redact ingested trace batches: 0 = one per CPU core this "
        "process may use, 1 = in the ingesting process itself. The workers start once an "
        "ingest has spent a second redacting batches of 200 traces or more; smaller batches "
        "are always redacted in the ingesting process.",
    )

    @model_validator(mode="before")
    @classmethod
    def _sample_rate_by_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sample_rate" in data:
            data = dict(data)
            data["EVALKEEPER_TRACE_SAMPLE_RATE"] = data.pop("sample_rate")
        return data

    @field_validator("regions", mode="before")
    @classmethod
    def _regions_list(cls, value: Any) -> Any:
        """`US,DE,JP` as well as `["US", "DE", "JP"]`; codes upper-cased."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple):
            return [str(v).strip().upper() for v in value if str(v).strip()]
        return value


class OtlpSettings(SettingsGroup):
    """The OTLP/HTTP trace receiver (`evalkeeper listen`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "OTLP_")

    max_body_bytes: int = Field(
        16 * 2**20, ge=1, description="Largest OTLP export body, after decompression (bytes)."
    )
    settle_s: float = Field(
        3.0, ge=0, description="A trace is complete this long after its last span (root seen)."
    )
    root_wait_s: float = Field(
        60.0, ge=0, description="A trace whose root span never came is completed after this."
    )
    max_open_traces: int = Field(
        10_000, ge=1, description="Traces kept open at once; the least recent is evicted."
    )
    max_spans_per_trace: int = Field(
        1_000, ge=1, description="Spans kept per trace; more are rejected (partial success)."
    )
    tokens: SecretStr | None = Field(
        None,
        description="Bearer tokens the OTLP paths accept (`Authorization: Bearer <token>`), "
        "comma-separated for rotation; never printed or logged. Unset: no token is asked "
        "for (`listen` then binds to loopback only, unless --insecure-no-otlp-auth).",
    )
    max_buffer_bytes: int = Field(
        256 * 2**20,
        ge=1,
        description="Memory (estimated bytes) held for request bodies being read and traces "
        "not yet stored; when full, exports get 429 with Retry-After.",
    )


class MonitorSettings(SettingsGroup):
    """Post-deploy monitoring: windows, ticks, deploy webhooks, rollback delivery."""

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
    rollback_claim_s: float = Field(
        300.0,
        gt=0,
        description="How long a tick's claim on a rollback's delivery lasts: no other tick "
        "delivers it meanwhile, and the claimer starts no attempt that could end after it; "
        "a crashed claimer's delivery is taken over once it expires.",
    )
    prefect_api_url: str | None = Field(
        None,
        validation_alias=AliasChoices("prefect_api_url", "PREFECT_API_URL"),
        description="Prefect's API (`PREFECT_API_URL`): when set, the HTTP app emits "
        "`evalkeeper.deploy.completed` and rollbacks emit `evalkeeper.rollback.triggered`.",
    )


class CalibrationSettings(SettingsGroup):
    """Judge calibration: labels, agreement, retirement (`EVALKEEPER_CALIBRATION_*`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "CALIBRATION_")

    bar: float = Field(
        0.80,
        gt=0,
        le=1,
        description="A judge whose agreement's upper 95% bound is below this is retired.",
    )
    ceiling_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="If set, the bar is this share of the human ceiling (human-human "
        "agreement) when the ceiling is measured, instead of `EVALKEEPER_CALIBRATION_BAR`.",
    )
    min_labels: int = Field(
        50, ge=1, description="Fewer labelled items than this: the judge is `uncalibrated`."
    )
    kappa_floor: float = Field(
        0.40, ge=-1, le=1, description="A judge whose kappa is below this is `at_risk`."
    )
    double_share: float = Field(
        0.20, ge=0, le=1, description="Share of sampled items given to two annotators."
    )
    half_width: float = Field(
        0.05, gt=0, lt=0.5, description="Sample sizing: target half-width of the agreement CI."
    )
    expected_agreement: float = Field(
        0.85, gt=0, lt=1, description="Sample sizing: the agreement expected of a judge."
    )
    bootstrap_resamples: int = Field(
        2000, ge=100, description="Bootstrap resamples of the kappa interval."
    )
    dir: Path | None = Field(
        None,
        description="Where annotation files are written (default `annotations/` beside "
        "the warehouse file).",
    )
    rule: Literal["agreement", "kappa", "ac1"] = Field(
        "agreement",
        description="The statistic whose 95% interval retires a judge: `agreement` (its "
        "Wilson interval against `EVALKEEPER_CALIBRATION_BAR`), `kappa` (its BCa interval "
        "against `EVALKEEPER_CALIBRATION_KAPPA_BAR`) or `ac1` (± 1.96 SE against "
        "`EVALKEEPER_CALIBRATION_AC1_BAR`); with `EVALKEEPER_CALIBRATION_CEILING_SHARE` set, "
        "the bar is that share of the humans' own value of the same statistic.",
    )
    kappa_bar: float = Field(
        0.60,
        gt=-1,
        le=1,
        description="With the `kappa` rule: a judge whose kappa's upper 95% bound is below "
        "this is retired.",
    )
    ac1_bar: float = Field(
        0.60,
        gt=-1,
        le=1,
        description="With the `ac1` rule: a judge whose AC1's upper 95% bound is below this "
        "is retired.",
    )


class ResultsSettings(SettingsGroup):
    """Where shards write their rows when they must not open the warehouse file (shards on
    other machines): a directory or an object-storage URL (`EVALKEEPER_RESULTS_*`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX + "RESULTS_")

    url: str | None = Field(
        None,
        description="Results location of sharded suites: a local or shared directory, or "
        "`s3://bucket/prefix`. Unset: shards write to the warehouse themselves.",
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of the results location (MinIO, moto, another "
        "S3-compatible store); unset: AWS. Credentials come from the usual AWS variables.",
    )
    storage_options: SecretStr | None = Field(
        None,
        description="fsspec storage options of the results location, a JSON object (e.g. "
        '`{"anon": false}`); may hold keys, so it is never printed.',
    )


class Settings(BaseSettings):
    """Everything evalkeeper can be configured with. Passed in, never read ad hoc.

    `Settings(**flat)` takes every setting by its flat name (`judge_model=…` is
    `judge=JudgeSettings(model=…)`, the judge's other fields still read from the
    environment); a sub-model may also be given whole (`judge=JudgeSettings(…)` or a dict)."""

    # only_existing: `.env`'s other lines (`EVALKEEPER_JUDGE_VOTES`) are the sub-models' to
    # read, never handed to Settings as if they were given (`judge_votes=`)
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", dotenv_filtering="only_existing"
    )

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
    seed: int = Field(20261125, description="Seed for smoke selection, bootstrap, sampling.")

    # provenance overrides (CI sets these; otherwise read from git)
    git_commit: str | None = Field(None, description="Commit recorded in the target pin.")
    git_branch: str | None = Field(None, description="Branch recorded in the target pin.")

    # CI: GitHub Actions names its job-summary file here (no EVALKEEPER_ prefix)
    github_step_summary: Path | None = Field(
        None,
        validation_alias=AliasChoices("github_step_summary", "GITHUB_STEP_SUMMARY"),
        description="GitHub Actions' job summary file (`GITHUB_STEP_SUMMARY`): `gate` appends "
        "its markdown summary there.",
    )

    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    langsmith: LangSmithSettings = Field(default_factory=LangSmithSettings)
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            super().__init__(**values)
            return
        token = _ENV_FILE.set(values["_env_file"])  # the sub-models read the same file
        try:
            super().__init__(**values)
        finally:
            _ENV_FILE.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """Route flat names (`judge_model`) to their sub-model, and give every sub-model that
        was not given an empty dict: pydantic then builds it (reading its variables and
        `.env`) and reports its errors together with everyone else's."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for group in GROUPS:
            given = data.get(group)
            if isinstance(given, BaseModel):
                data[group] = {name: getattr(given, name) for name in type(given).model_fields}
            else:
                data[group] = dict(given) if isinstance(given, dict) else given or {}
        for key in [k for k in data if k in SETTINGS and SETTINGS[k].group is not None]:
            where = SETTINGS[key]
            if isinstance(data[where.group], dict):
                data[where.group][where.field] = data.pop(key)
        return data

    def setting(self, name: str) -> Any:
        """The value of a setting by its flat name (`judge_model`, `latency_p95_s`)."""
        where = SETTINGS[name]
        return getattr(getattr(self, where.group) if where.group else self, where.field)

    @property
    def annotations_path(self) -> Path:
        return self.calibration.dir or self.warehouse.parent / "annotations"

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.warehouse.with_name(self.warehouse.name + ".spool")


@dataclass(frozen=True)
class SettingName:
    """Where one setting lives: `judge_model` is `settings.judge.model`, read from
    `EVALKEEPER_JUDGE_MODEL`."""

    flat: str
    group: str | None  # the sub-model's attribute on Settings; None: a top-level field
    field: str
    env: str
    info: FieldInfo

    @property
    def path(self) -> str:
        """`judge.model`, `warehouse`: the attribute path from a Settings."""
        return f"{self.group}.{self.field}" if self.group else self.field

    @property
    def aliases(self) -> tuple[str, ...]:
        """The names this setting may have in an error's location: its field name and its
        validation aliases."""
        alias = self.info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        return (self.field, *(c for c in choices if isinstance(c, str)))


def _env_of(model: type[BaseSettings], field: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    upper = [c for c in choices if isinstance(c, str) and c.isupper()]
    if upper:
        return upper[0]
    return (str(model.model_config.get("env_prefix", "")) + field).upper()


def _setting_names() -> Iterator[SettingName]:
    for name, info in Settings.model_fields.items():
        if name not in GROUPS:
            env = _env_of(Settings, name, info)
            yield SettingName(env.removeprefix(ENV_PREFIX).lower(), None, name, env, info)
            continue
        for field, sub in GROUPS[name].model_fields.items():
            env = _env_of(GROUPS[name], field, sub)
            yield SettingName(env.removeprefix(ENV_PREFIX).lower(), name, field, env, sub)


GROUPS: dict[str, type[SettingsGroup]] = {
    name: info.annotation
    for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, SettingsGroup)
}
"""The sub-models by their attribute on Settings (`judge`: JudgeSettings)."""

SETTINGS: dict[str, SettingName] = {s.flat: s for s in _setting_names()}
"""Every setting by its flat name (`judge_model`), top-level and nested."""
