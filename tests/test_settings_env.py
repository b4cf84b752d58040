"""Every documented variable is read, into its own nested field and no other; every setting
is documented; `.env` is read by every sub-model."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from evalkeeper.settings import SETTINGS, Settings
from evalkeeper.settings_errors import settings_or_error

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_TEXT = "\n".join(p.read_text() for p in DOCS)
ALIASES = ("GITHUB_STEP_SUMMARY", "PREFECT_API_URL")  # read without the prefix

# Documented variables that are not settings, and what they are.
NOT_SETTINGS = {
    "EVALKEEPER_HOME": "the deployments' working directory (prefect.yaml), not a setting",
    "EVALKEEPER_LIVE_TESTS": "the test suite's switch for live LLM / LangSmith tests",
    "EVALKEEPER_ROLLBACK_WINDOW": "set by evalkeeper for the rollback command it runs (its window)",
}

# variable -> (where it lands on a Settings, a valid value that is not the default, what it
# reads as)
EXPECTED: dict[str, tuple[str, str, Any]] = {
    "EVALKEEPER_WAREHOUSE": ("warehouse", "/tmp/ek/w.duckdb", Path("/tmp/ek/w.duckdb")),
    "EVALKEEPER_DATASETS_DIR": ("datasets_dir", "/tmp/ek/datasets", Path("/tmp/ek/datasets")),
    "EVALKEEPER_SPOOL_DIR": ("spool_dir", "/tmp/ek/spool", Path("/tmp/ek/spool")),
    "EVALKEEPER_LOCK_WAIT_S": ("lock_wait_s", "2.5", 2.5),
    "EVALKEEPER_SEED": ("seed", "7", 7),
    "EVALKEEPER_GIT_COMMIT": ("git_commit", "abc123", "abc123"),
    "EVALKEEPER_GIT_BRANCH": ("git_branch", "feature/x", "feature/x"),
    "GITHUB_STEP_SUMMARY": ("github_step_summary", "/tmp/ek/summary.md", Path("/tmp/ek/summary.md")),
    "EVALKEEPER_CONCURRENCY": ("runner.concurrency", "3", 3),
    "EVALKEEPER_TIMEOUT_S": ("runner.timeout_s", "12.5", 12.5),
    "EVALKEEPER_RETRIES": ("runner.retries", "5", 5),
    "EVALKEEPER_BACKOFF_S": ("runner.backoff_s", "0.25", 0.25),
    "EVALKEEPER_FLUSH_ROWS": ("runner.flush_rows", "50", 50),
    "EVALKEEPER_FLUSH_S": ("runner.flush_s", "0.5", 0.5),
    "EVALKEEPER_SHARDS": ("runner.shards", "4", 4),
    "EVALKEEPER_SHARD_DEPLOYMENT": ("runner.shard_deployment", "suite-shard/suite-shard", "suite-shard/suite-shard"),
    "EVALKEEPER_SHARD_ATTEMPTS": ("runner.shard_attempts", "2", 2),
    "EVALKEEPER_SHARD_TIMEOUT_S": ("runner.shard_timeout_s", "90", 90.0),
    "EVALKEEPER_SHARD_POLL_S": ("runner.shard_poll_s", "2.5", 2.5),
    "EVALKEEPER_SMOKE_SHARE": ("smoke.share", "0.5", 0.5),
    "EVALKEEPER_SMOKE_MIN_PER_CATEGORY": ("smoke.min_per_category", "4", 4),
    "EVALKEEPER_BASELINE_BRANCH": ("analysis.baseline_branch", "release", "release"),
    "EVALKEEPER_ALPHA": ("analysis.alpha", "0.01", 0.01),
    "EVALKEEPER_TOLERANCE": ("analysis.tolerance", "0.03", 0.03),
    "EVALKEEPER_MAX_ERROR_RATE": ("analysis.max_error_rate", "0.4", 0.4),
    "EVALKEEPER_MAX_MDE": ("analysis.max_mde", "0.3", 0.3),
    "EVALKEEPER_CORRECTED_MIN_J": ("analysis.corrected_min_j", "0.2", 0.2),
    "EVALKEEPER_INCONCLUSIVE_FAILS": ("analysis.inconclusive_fails", "false", False),
    "EVALKEEPER_LATENCY_P95_S": ("analysis.latency_p95_s", "2.5", 2.5),
    "EVALKEEPER_FLAKY_CONFIDENCE": ("analysis.flaky_confidence", "0.9", 0.9),
    "EVALKEEPER_FLAKY_TOLERANCE": ("analysis.flaky_tolerance", "0.2", 0.2),
    "EVALKEEPER_FLAKY_GATE_FAILS": ("analysis.flaky_gate_fails", "2", 2),
    "EVALKEEPER_FLAKY_GATE_OF": ("analysis.flaky_gate_of", "4", 4),
    "EVALKEEPER_JUDGE_BASE_URL": ("judge.base_url", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "EVALKEEPER_JUDGE_API_KEY": ("judge.api_key", "sk-judge", SecretStr("sk-judge")),
    "EVALKEEPER_JUDGE_MODEL": ("judge.model", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
    "EVALKEEPER_JUDGE_ALLOW_UNPINNED": ("judge.allow_unpinned", "true", True),
    "EVALKEEPER_JUDGE_VOTES": ("judge.votes", "5", 5),
    "EVALKEEPER_JUDGE_CONCURRENCY": ("judge.concurrency", "2", 2),
    "EVALKEEPER_JUDGE_RPM": ("judge.rpm", "120", 120.0),
    "EVALKEEPER_JUDGE_MAX_RETRIES": ("judge.max_retries", "1", 1),
    "EVALKEEPER_JUDGE_TIMEOUT_S": ("judge.timeout_s", "9", 9.0),
    "EVALKEEPER_JUDGE_SHARED_LIMITS": ("judge.shared_limits", "true", True),
    "EVALKEEPER_LANGSMITH_API_KEY": ("langsmith.api_key", "ls-key", SecretStr("ls-key")),
    "EVALKEEPER_LANGSMITH_ENDPOINT": ("langsmith.endpoint", "http://127.0.0.1:9", "http://127.0.0.1:9"),
    "EVALKEEPER_LANGSMITH_UPLOAD": ("langsmith.upload", "true", True),
    "EVALKEEPER_REDACTION_KEY": ("redaction.key", "a-redaction-key", SecretStr("a-redaction-key")),
    "EVALKEEPER_REDACTION_REGIONS": ("redaction.regions", "gb,FR", ["GB", "FR"]),
    "EVALKEEPER_REDACTION_NAMES": ("redaction.names", '["Ada Lovelace"]', ["Ada Lovelace"]),
    "EVALKEEPER_REDACTION_PATTERNS": ("redaction.patterns", '["ACCT-[0-9]+"]', ["ACCT-[0-9]+"]),
    "EVALKEEPER_TRACE_SAMPLE_RATE": ("redaction.sample_rate", "0.25", 0.25),
    "EVALKEEPER_REDACTION_WORKERS": ("redaction.workers", "2", 2),
    "EVALKEEPER_OTLP_MAX_BODY_BYTES": ("otlp.max_body_bytes", "1024", 1024),
    "EVALKEEPER_OTLP_SETTLE_S": ("otlp.settle_s", "0.5", 0.5),
    "EVALKEEPER_OTLP_ROOT_WAIT_S": ("otlp.root_wait_s", "5", 5.0),
    "EVALKEEPER_OTLP_MAX_OPEN_TRACES": ("otlp.max_open_traces", "10", 10),
    "EVALKEEPER_OTLP_MAX_SPANS_PER_TRACE": ("otlp.max_spans_per_trace", "20", 20),
    "EVALKEEPER_OTLP_TOKENS": ("otlp.tokens", "tok-a,tok-b", SecretStr("tok-a,tok-b")),
    "EVALKEEPER_OTLP_MAX_BUFFER_BYTES": ("otlp.max_buffer_bytes", "4096", 4096),
    "EVALKEEPER_TRACES": ("monitor.traces", "jsonl:/tmp/ek/traces", "jsonl:/tmp/ek/traces"),
    "EVALKEEPER_MONITORS_DIR": ("monitor.monitors_dir", "/tmp/ek/monitors", Path("/tmp/ek/monitors")),
    "EVALKEEPER_WEBHOOK_SECRET": ("monitor.webhook_secret", "whsec_dGVzdA==", SecretStr("whsec_dGVzdA==")),
    "EVALKEEPER_WEBHOOK_MAX_BODY_BYTES": ("monitor.webhook_max_body_bytes", "4096", 4096),
    "EVALKEEPER_WEBHOOK_TOLERANCE_S": ("monitor.webhook_tolerance_s", "60", 60.0),
    "EVALKEEPER_ROLLBACK_URL": ("monitor.rollback_url", "http://127.0.0.1:9/rb", "http://127.0.0.1:9/rb"),
    "EVALKEEPER_ROLLBACK_SECRET": ("monitor.rollback_secret", "rb-secret", SecretStr("rb-secret")),
    "EVALKEEPER_ROLLBACK_COMMAND": ("monitor.rollback_command", "kubectl rollout undo", "kubectl rollout undo"),
    "EVALKEEPER_ROLLBACK_ATTEMPTS": ("monitor.rollback_attempts", "2", 2),
    "EVALKEEPER_ROLLBACK_BACKOFF_S": ("monitor.rollback_backoff_s", "0.1", 0.1),
    "EVALKEEPER_ROLLBACK_TIMEOUT_S": ("monitor.rollback_timeout_s", "3", 3.0),
    "EVALKEEPER_ROLLBACK_CLAIM_S": ("monitor.rollback_claim_s", "60", 60.0),
    "PREFECT_API_URL": ("monitor.prefect_api_url", "http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
    "EVALKEEPER_CALIBRATION_BAR": ("calibration.bar", "0.7", 0.7),
    "EVALKEEPER_CALIBRATION_CEILING_SHARE": ("calibration.ceiling_share", "0.9", 0.9),
    "EVALKEEPER_CALIBRATION_MIN_LABELS": ("calibration.min_labels", "20", 20),
    "EVALKEEPER_CALIBRATION_KAPPA_FLOOR": ("calibration.kappa_floor", "0.3", 0.3),
    "EVALKEEPER_CALIBRATION_DOUBLE_SHARE": ("calibration.double_share", "0.1", 0.1),
    "EVALKEEPER_CALIBRATION_HALF_WIDTH": ("calibration.half_width", "0.1", 0.1),
    "EVALKEEPER_CALIBRATION_EXPECTED_AGREEMENT": ("calibration.expected_agreement", "0.9", 0.9),
    "EVALKEEPER_CALIBRATION_BOOTSTRAP_RESAMPLES": ("calibration.bootstrap_resamples", "500", 500),
    "EVALKEEPER_CALIBRATION_DIR": ("calibration.dir", "/tmp/ek/annotations", Path("/tmp/ek/annotations")),
    "EVALKEEPER_CALIBRATION_RULE": ("calibration.rule", "kappa", "kappa"),
    "EVALKEEPER_CALIBRATION_KAPPA_BAR": ("calibration.kappa_bar", "0.5", 0.5),
    "EVALKEEPER_CALIBRATION_AC1_BAR": ("calibration.ac1_bar", "0.7", 0.7),
    "EVALKEEPER_RESULTS_URL": ("results.url", "s3://bucket/evals", "s3://bucket/evals"),
    "EVALKEEPER_RESULTS_ENDPOINT_URL": ("results.endpoint_url", "http://127.0.0.1:9", "http://127.0.0.1:9"),
    "EVALKEEPER_RESULTS_STORAGE_OPTIONS": ("results.storage_options", '{"anon": false}', SecretStr('{"anon": false}')),
}  # fmt: skip

# a name ending in `_` is a family (`EVALKEEPER_JUDGE_*`), not a variable
DOCUMENTED = sorted(set(re.findall(r"EVALKEEPER_[A-Z0-9_]*[A-Z0-9]\b", DOC_TEXT)) | set(ALIASES))


def _at(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _plain(value: Any) -> Any:
    """A value as compared: a secret by its text (and it must still be a SecretStr)."""
    return ("secret", value.get_secret_value()) if isinstance(value, SecretStr) else value


def _every_value(settings: Settings) -> dict[str, Any]:
    return {s.path: _plain(_at(settings, s.path)) for s in SETTINGS.values()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No evalkeeper variable set, and a working directory without a `.env`."""
    for name in list(os.environ):
        if name.upper().startswith("EVALKEEPER_") or name.upper() in ALIASES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_every_setting_has_its_variable_and_place() -> None:
    assert {s.env: s.path for s in SETTINGS.values()} == {
        env: path for env, (path, _, _) in EXPECTED.items()
    }


def test_every_setting_is_documented() -> None:
    missing = [s.env for s in SETTINGS.values() if not re.search(rf"\b{s.env}\b", DOC_TEXT)]
    assert missing == [], f"document these in README.md's settings: {missing}"


@pytest.mark.parametrize("name", DOCUMENTED)
def test_a_documented_variable_is_read_into_its_field(
    name: str, clean_env: pytest.MonkeyPatch
) -> None:
    if name in NOT_SETTINGS:
        assert name not in EXPECTED
        return
    assert name in EXPECTED, f"{name} is documented but no setting reads it"
    path, raw, expected = EXPECTED[name]
    default = _every_value(Settings())
    clean_env.setenv(name, raw)
    settings = Settings()
    value = _at(settings, path)
    assert type(value) is type(expected)  # a secret stays a SecretStr
    assert _plain(value) == _plain(expected) != default[path]
    changed = {p for p, v in _every_value(settings).items() if v != default[p]}
    assert changed == {path}  # and nothing else moved


def test_flat_names_still_build_settings(clean_env: pytest.MonkeyPatch) -> None:
    """`Settings(judge_model=…)`: the flat name lands in the sub-model, whose other fields
    are still read from the environment."""
    clean_env.setenv("EVALKEEPER_JUDGE_VOTES", "5")
    s = Settings(judge_model="m-2026-01-01", trace_sample_rate=0.5, warehouse=Path("w.duckdb"))
    assert (s.judge.model, s.judge.votes) == ("m-2026-01-01", 5)
    assert s.redaction.sample_rate == 0.5 and s.warehouse == Path("w.duckdb")
    assert s.setting("judge_model") == "m-2026-01-01" and s.setting("judge_votes") == 5
    assert s.spool_path == Path("w.duckdb.spool")
    assert s.annotations_path == Path("annotations")


def test_dot_env_is_read_by_every_part(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "EVALKEEPER_WAREHOUSE=/tmp/ek/env.duckdb\n"
        "EVALKEEPER_CONCURRENCY=3\n"
        "EVALKEEPER_JUDGE_MODEL=judge-2026-01-01\n"
        "EVALKEEPER_JUDGE_VOTES=5\n"
        "EVALKEEPER_JUDGE_API_KEY=sk-from-dotenv\n"
        "EVALKEEPER_TRACE_SAMPLE_RATE=0.5\n"
        "EVALKEEPER_REDACTION_REGIONS=gb,fr\n"
        "EVALKEEPER_CALIBRATION_BAR=0.7\n"
        "PREFECT_API_URL=http://127.0.0.1:4200/api\n"
    )
    s = Settings()
    assert s.warehouse == Path("/tmp/ek/env.duckdb")
    assert s.runner.concurrency == 3
    assert (s.judge.model, s.judge.votes) == ("judge-2026-01-01", 5)
    assert isinstance(s.judge.api_key, SecretStr)
    assert s.judge.api_key.get_secret_value() == "sk-from-dotenv"
    assert s.redaction.sample_rate == 0.5 and s.redaction.regions == ["GB", "FR"]
    assert s.calibration.bar == 0.7
    assert s.monitor.prefect_api_url == "http://127.0.0.1:4200/api"

    # the environment wins over `.env`, an explicit value over both; the sub-model's other
    # fields still come from `.env`
    clean_env.setenv("EVALKEEPER_JUDGE_VOTES", "7")
    s = Settings(judge_model="explicit-2026-02-02")
    assert (s.judge.model, s.judge.votes) == ("explicit-2026-02-02", 7)
    assert s.judge.api_key is not None and s.redaction.sample_rate == 0.5

    # `_env_file=None` leaves `.env` out everywhere, the sub-models included
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.warehouse == Path("data/warehouse.duckdb") and s.judge.model is None
    assert s.judge.votes == 7 and s.redaction.sample_rate == 1.0 and s.calibration.bar == 0.8


def test_a_bad_value_in_dot_env_names_its_variable(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("EVALKEEPER_JUDGE_VOTES=0\nEVALKEEPER_OTLP_SETTLE_S=soon\n")
    with pytest.raises(ValueError) as caught:
        settings_or_error()
    assert str(caught.value).splitlines() == [
        "EVALKEEPER_JUDGE_VOTES=0: must be at least 1 (input should be greater than or equal to 1)",
        "EVALKEEPER_OTLP_SETTLE_S=soon: must be a number, at least 0 (input should be a valid "
        "number, unable to parse string as a number)",
    ]
