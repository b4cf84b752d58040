"""`evalkeeper demo` (v1 then v2 of the demo agent through the nightly flow) and `serve`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from evalkeeper import experiment as core
from evalkeeper import orchestration_env
from evalkeeper.cli.app import app, console, load_settings
from evalkeeper.cli.run import WarehouseOpt, print_summary
from evalkeeper.models import Suite
from evalkeeper.settings import Settings

DEMO_DATASET = "appointments"
DEMO_TARGETS = ("evalkeeper.demo_agent:v1", "evalkeeper.demo_agent:v2")


def _run_nightly(settings: Settings, **params: Any) -> core.Summary:
    orchestration_env.configure()
    from flows.nightly import nightly  # the faces import flows lazily

    result = nightly(warehouse=str(settings.warehouse), **params)
    return core.Summary.model_validate(result)


def what_changed(settings: Settings, baseline: str, candidate: str) -> Table:
    """Pass rate per evaluator and category, baseline vs candidate, largest drops first."""
    frame = core.warehouse_for(settings).query(
        """
        WITH r AS (
            SELECT experiment_id, evaluator, category, avg(CAST(passed AS DOUBLE)) AS rate,
                   count(passed) AS n
            FROM scores
            WHERE experiment_id IN (?, ?) AND NOT skipped AND error IS NULL
            GROUP BY ALL
        )
        SELECT b.evaluator, b.category, b.n, b.rate AS before, c.rate AS after,
               c.rate - b.rate AS delta
        FROM r b JOIN r c USING (evaluator, category)
        WHERE b.experiment_id = ? AND c.experiment_id = ? AND c.rate <> b.rate
        ORDER BY delta, evaluator, category
        """,
        [baseline, candidate, baseline, candidate],
    )
    t = Table(title=f"what changed: {candidate} vs {baseline}")
    for col in ("evaluator", "category", "n", "before", "after", "delta"):
        t.add_column(col, justify="left" if col in ("evaluator", "category") else "right")
    for r in frame.iter_rows(named=True):
        colour = "red" if r["delta"] < 0 else "green"
        t.add_row(
            r["evaluator"],
            r["category"],
            str(r["n"]),
            f"{r['before']:.0%}",
            f"{r['after']:.0%}",
            f"[{colour}]{r['delta']:+.0%}[/]",
        )
    return t


@app.command()
def demo(
    suite: Annotated[Suite, typer.Option(help="full or smoke.")] = "full",
    warehouse: WarehouseOpt = None,
) -> None:
    """Run the bundled sample through the nightly flow: demo agent v1, then v2; show the change."""
    settings = load_settings(warehouse=warehouse)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    console.print(
        f"[bold]evalkeeper demo[/]: dataset {DEMO_DATASET}, warehouse {settings.warehouse}\n"
        "Starting Prefect (ephemeral API; the first start on a machine takes ~25 s) …"
    )
    ids = []
    for target in DEMO_TARGETS:
        version = target.rsplit(":", 1)[1]
        t0 = time.perf_counter()
        summary = _run_nightly(
            settings,
            suite=suite,
            dataset=DEMO_DATASET,
            target=target,
            experiment=f"demo-{version}-{stamp}",
        )
        console.rule(f"demo agent {version}  ({time.perf_counter() - t0:.1f} s)")
        print_summary(summary)
        ids.append(summary.experiment.experiment_id)
    console.rule("v2 against v1")
    console.print(what_changed(settings, ids[0], ids[1]))
    console.print(
        f"Both experiments are in {settings.warehouse}. Try:\n"
        "  uv run evalkeeper experiments\n"
        '  uv run evalkeeper sql "SELECT * FROM score_history ORDER BY started_at DESC LIMIT 10"'
    )


@app.command()
def serve(
    dataset: Annotated[str, typer.Option(help="Dataset the nightly runs use.")] = DEMO_DATASET,
    target: Annotated[str, typer.Option(help="Target the nightly runs use.")] = DEMO_TARGETS[0],
) -> None:
    """Serve the scheduled deployments (nightly-full, nightly-smoke) from this process."""
    orchestration_env.configure()
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron

    from deployments.schedules import NIGHTLY, TIMEZONE
    from flows.nightly import nightly

    deployments: list[Any] = [
        nightly.to_deployment(
            name=name,
            schedule=Cron(spec["cron"], timezone=TIMEZONE),
            description=spec["description"],
            parameters={**spec["parameters"], "dataset": dataset, "target": target},
        )
        for name, spec in NIGHTLY.items()
    ]
    prefect_serve(*deployments)
