"""Tasks that judge an experiment against its baseline and publish the verdict."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from evalkeeper import analysis as cmp
from evalkeeper.report import render_markdown
from evalkeeper.run import warehouse_for
from evalkeeper.settings import Settings
from evalkeeper.warehouse import save_comparison
from tasks.suite import artifact_key


@task(name="compare-with-baseline", cache_policy=NO_CACHE)
def compare_with_baseline(
    settings: Settings, experiment_id: str, baseline: str = "auto"
) -> cmp.Comparison | None:
    """Compare and store the verdict; None when there is no baseline yet (first run)."""
    wh = warehouse_for(settings)
    if (
        baseline == "auto"
        and cmp.find_baseline(wh, experiment_id, settings.baseline_branch) is None
    ):
        get_run_logger().warning(
            "no completed baseline on %s for %s yet: this run becomes the baseline",
            settings.baseline_branch,
            experiment_id,
        )
        return None
    c = cmp.compare(wh, experiment_id, baseline, settings)
    save_comparison(wh, c)
    return c


@task(name="publish-verdict", cache_policy=NO_CACHE)
def publish_verdict(c: cmp.Comparison) -> None:
    key = artifact_key(f"{c.dataset}-{c.suite}")
    create_markdown_artifact(
        markdown=render_markdown(c),
        key=f"{key}-verdict",
        description=f"{c.verdict}: {c.experiment_id} vs {c.baseline_id}",
    )
    table: list[dict[str, Any]] = [
        {
            "evaluator": cell.evaluator,
            "category": cell.category,
            "status": cell.status,
            "n": cell.n_examples,
            "baseline": cell.baseline.mean,
            "candidate": cell.candidate.mean,
            "diff": cell.diff,
            "p_adjusted": cell.p_adjusted,
            "mde": cell.mde,
        }
        for cell in c.cells
    ]
    create_table_artifact(table=table, key=f"{key}-cells", description="cells vs baseline")
