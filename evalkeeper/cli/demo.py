"""`evalkeeper demo`: v1 then v2 of the demo agent through the nightly flow."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkeeper import orchestration_env, registry
from evalkeeper import run as core
from evalkeeper.cli.app import WarehouseOpt, app, console, fail, load_settings
from evalkeeper.cli.run import print_summary
from evalkeeper.demo.data import demo_settings
from evalkeeper.models import Suite
from evalkeeper.settings import Settings

if TYPE_CHECKING:
    from evalkeeper.analysis import Comparison

DEMO_DATASET = "appointments"
DEMO_TARGETS = ("evalkeeper.demo.agent:v1", "evalkeeper.demo.agent:v2")


def _run_nightly(settings: Settings, **params: Any) -> tuple[core.Summary, Comparison | None]:
    orchestration_env.configure()
    from evalkeeper.analysis import Comparison
    from flows.nightly import VerdictNotPass, nightly  # the faces import flows lazily

    try:
        result = asyncio.run(
            nightly(
                warehouse=str(settings.warehouse), datasets_dir=str(settings.datasets_dir), **params
            )
        )
    except VerdictNotPass as exc:  # the run ended Inconclusive or Regression: its result is shown
        result = dict(exc.result)
    comparison = result.pop("comparison", None)
    return (
        core.Summary.model_validate(result),
        Comparison.model_validate(comparison) if comparison else None,
    )


@app.command()
def demo(
    suite: Annotated[Suite, typer.Option(help="full or smoke.")] = "full",
    warehouse: WarehouseOpt = None,
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring/--no-monitoring", help="Then watch the sample traffic's v2 deploy."
        ),
    ] = True,
    calibration: Annotated[
        bool,
        typer.Option(
            "--calibration/--no-calibration",
            help="Then calibrate two judges against bundled human labels (~5 s).",
        ),
    ] = True,
) -> None:
    """Run the bundled sample through the nightly flow: demo agent v1, then v2; show the change."""
    settings = load_settings(warehouse=warehouse)
    sample = settings.datasets_dir / f"{DEMO_DATASET}.jsonl"
    if not sample.is_file():
        fail(
            f"the demo's sample data is not here: no {sample} (from {Path.cwd()}); run the "
            "demo from the evalkeeper checkout (the folder holding data/), or set "
            "EVALKEEPER_DATASETS_DIR to its data/datasets"
        )
    # its own copy of its data: a user's promote into data/datasets changes nothing here
    settings = demo_settings(settings)
    # the demo is read for its tables: Prefect's per-task lines only if asked for
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    console.print(
        f"[bold]evalkeeper demo[/]: dataset {DEMO_DATASET} (its own copy: "
        f"{settings.datasets_dir}), warehouse {settings.warehouse}\n"
        "Starting Prefect (ephemeral API; the first start on a machine takes ~25 s) …"
    )
    judges = [n for n, r in registry.available().items() if r.kind in ("judge", "groundedness")]
    allow = [] if settings.judge.base_url and settings.judge.model else sorted(judges)
    if allow:
        console.print(
            f"No judge endpoint configured: the LLM judges ({', '.join(allow)}) are skipped, "
            "and the demo allows that (--allow-skipped). Without that allowance a skipped "
            "judge makes a verdict inconclusive. To run them, set EVALKEEPER_JUDGE_BASE_URL "
            "and EVALKEEPER_JUDGE_MODEL.",
            soft_wrap=True,
            highlight=False,
        )
    ids: list[str] = []
    comparison = None
    for target in DEMO_TARGETS:
        version = target.rsplit(":", 1)[1]
        t0 = time.perf_counter()
        summary, comparison = _run_nightly(
            settings,
            suite=suite,
            dataset=DEMO_DATASET,
            target=target,
            experiment=f"demo-{version}-{stamp}",
            baseline=ids[0] if ids else "auto",
            allow_skipped=allow or None,
        )
        console.rule(f"demo agent {version}  ({time.perf_counter() - t0:.1f} s)")
        print_summary(summary)
        ids.append(summary.experiment.experiment_id)
    console.rule("verdict: v2 against v1")
    if comparison is not None:
        from evalkeeper.report import render_markdown

        console.print(render_markdown(comparison), markup=False, highlight=False)
    window = None
    if monitoring:
        from evalkeeper.demo.monitor import monitoring_act

        window = asyncio.run(monitoring_act(settings, console))
    act = None
    if calibration:
        from evalkeeper.demo.calibration import calibration_act

        console.rule("calibration: two judges against human labels")
        act = asyncio.run(calibration_act(settings, console))
    console.print(
        f"\nBoth experiments are in {settings.warehouse}. Try:\n"
        "  uv run evalkeeper experiments\n"
        f"  uv run evalkeeper compare {ids[1]} --baseline {ids[0]} --format markdown\n"
        '  uv run evalkeeper sql "SELECT * FROM score_history ORDER BY started_at DESC LIMIT 10"'
        + (
            "\n  uv run evalkeeper calibrate report --judge factual_match\n"
            '  uv run evalkeeper sql "SELECT * FROM judge_health"'
            if calibration
            else ""
        )
    )
    _name_reports(settings, ids, comparison, window, act)


def _name_reports(
    settings: Settings, ids: list[str], comparison: Comparison | None, window: Any, act: Any
) -> None:
    """Write the acts' HTML reports beside the warehouse and name them, last."""
    from evalkeeper.demo.reports import write_reports

    console.rule("reports")
    written = write_reports(
        settings,
        experiment=ids[-1] if ids else None,
        baseline=ids[0] if len(ids) > 1 else None,
        comparison=comparison,
        window_id=None if window is None else window.window_id,
        calibrations=None if act is None else act.calibrations,
    )
    console.print("The reports (one HTML file each; open from disk, no server):", highlight=False)
    for w in written:
        where = str(w.path) if w.path else f"not written: {w.problem}"
        console.print(f"  {w.about}: {where}", markup=False, highlight=False, soft_wrap=True)
