"""Shared fixtures: a real Prefect test harness for the session, settings on a tmp warehouse."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalkeeper import orchestration_env, registry
from evalkeeper.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
orchestration_env.configure()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# flows build Settings from the environment: pin the provenance so that a detached CI
# checkout still counts as `main` for baselines
os.environ.setdefault("EVALKEEPER_GIT_BRANCH", "main")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One ephemeral Prefect API for the whole session (starting one takes 15-25 s)."""
    import prefect.main  # noqa: F401  (sets up Prefect's logging now, see below)
    from prefect.testing.utilities import prefect_test_harness

    # Prefect binds its console log handler to `sys.stderr` when `prefect.main` is first
    # imported. Imported inside a CliRunner invocation, the handler would keep that
    # invocation's stream, closed once it returns: every later flow log would print a
    # "Logging error" traceback into the next invocation's output.
    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(autouse=True)
def _fresh_fake_target_counts() -> None:
    """`tests.fake_targets:flaky` counts calls per input for the whole process: each test
    starts from zero, whatever ran before it."""
    from tests import fake_targets

    fake_targets._calls.clear()


@pytest.fixture(autouse=True)
def _no_github_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under GitHub Actions no test appends to the job's real summary file."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """A test that registers an evaluator leaves the registry as it found it."""
    registry.load_builtin()
    before = set(registry.available())
    yield
    for name in set(registry.available()) - before:
        registry.unregister(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh warehouse in tmp_path, the bundled datasets, fast flushes."""
    return Settings(
        warehouse=tmp_path / "warehouse.duckdb",
        datasets_dir=ROOT / "data" / "datasets",
        flush_s=0.2,
        lock_wait_s=2.0,
        git_commit="0123456789abcdef",
        git_branch="main",
    )
