"""The task that uploads an experiment to LangSmith (optional; see EVALKEEPER_LANGSMITH_UPLOAD)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from evalkeeper.integrations.langsmith import LangSmithError, upload
from evalkeeper.settings import Settings


@task(name="langsmith-upload", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
async def upload_experiment(settings: Settings, experiment_id: str) -> dict[str, Any]:
    """Upload the experiment (idempotent: a retry sends only what is missing). Raises
    LangSmithError when it fails; the local experiment is unchanged."""
    summary = await upload(settings, experiment_id)
    get_run_logger().info(
        "LangSmith experiment %s: %d run(s) and %d feedback entries sent (%d and %d held)",
        summary.project,
        summary.runs_created,
        summary.feedback_created,
        summary.runs_existing,
        summary.feedback_existing,
    )
    return summary.model_dump(mode="json")


__all__ = ["LangSmithError", "upload_experiment"]
