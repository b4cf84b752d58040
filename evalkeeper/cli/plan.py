"""`evalkeeper plan`: the examples x repetitions the gate needs to see a drop, from the
warehouse's history of a dataset (statistics in `evalkeeper.analysis.planner`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from evalkeeper.cli.app import WarehouseOpt, app, console, load_settings, output_format
from evalkeeper.models import Example, ExampleMetadata
from evalkeeper.settings import Settings
from evalkeeper.suites import smoke_subset
from evalkeeper.warehouse import Warehouse, planning
from evalkeeper.warehouse import history as wh_history

if TYPE_CHECKING:
    from evalkeeper.analysis.planner import EvaluatorPlan, Plan

FORMATS = ("table", "json")


def make_plan(
    settings: Settings,
    dataset: str,
    *,
    detect: float,
    power: float,
    alpha: float,
    evaluator: str | None = None,
    runs: int = 10,
    cells: int | None = None,
) -> Plan:
    """Read the history of `dataset` and plan (see `evalkeeper.analysis.planner`); `cells`
    defaults to the latest run's evaluators x (categories + 1)."""
    from evalkeeper.analysis import planner

    planner.check_request(
        detect=detect, power=power, alpha=alpha, cells=1 if cells is None else cells
    )
    if runs < 1:
        raise planner.PlanError(f"--runs {runs}: at least 1 (the latest runs to learn from)")
    if not Path(settings.warehouse).exists():
        raise planner.PlanError(
            f"no warehouse at {settings.warehouse}: run `evalkeeper run --dataset {dataset} "
            "--suite full --repetitions 2` first, or pass --warehouse"
        )
    with Warehouse.from_settings(settings).reading() as con:
        known = planning.known_datasets(con)
        if dataset not in known:
            raise planner.PlanError(
                f"unknown dataset {dataset!r}: the warehouse has no run or example of it "
                f"(known: {', '.join(known) or 'none'}); pass one of those to --dataset"
            )
        history = planning.dataset_runs(con, dataset, limit=runs)
        ids = history["experiment_id"].to_list()
        groups = planning.outcome_groups(con, ids)
        usage = wh_history.judge_usage(con, ids)
        values = planning.value_evaluators(con, ids)
        version = str(history["dataset_version"][-1]) if history.height else None
        examples = planning.latest_examples(con, dataset, version)
        if cells is None:
            cells = planning.cell_count(con, ids[-1]) if ids else 1
    return planner.plan_dataset(
        dataset,
        runs=history,
        groups=groups,
        usage=usage,
        value_evaluators=values,
        suites=_suites(settings, history, examples),
        detect=detect,
        power=power,
        alpha=alpha,
        tolerance=settings.analysis.tolerance,
        cells=cells,
        evaluator=evaluator,
    )


def _suites(settings: Settings, history: Any, examples: Any) -> list[tuple[str, int, int]]:
    """(suite, examples, repetitions) at their current size: smoke is selected from the
    dataset's examples as `run` selects it; repetitions are the latest run's of that suite
    (1 when it never ran)."""
    if not examples.height:
        return []
    full = [
        Example(
            id=r["example_id"],
            inputs={},
            metadata=ExampleMetadata(category=r["category"], critical=r["critical"]),
        )
        for r in examples.iter_rows(named=True)
    ]
    smoke = smoke_subset(
        full,
        share=settings.smoke.share,
        min_per_category=settings.smoke.min_per_category,
        seed=settings.seed,
    )
    reps = {}
    for r in history.iter_rows(named=True):  # oldest first: the latest wins
        reps[r["suite"]] = int(r["repetitions"])
    return [("smoke", len(smoke), reps.get("smoke", 1)), ("full", len(full), reps.get("full", 1))]


def plan_json(plan: Plan) -> dict[str, Any]:
    out = dataclasses.asdict(plan)
    out["status"] = plan.status
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "unknown" if x is None else format(x, fmt)


def _count(x: int | None) -> str:
    return "—" if x is None else f"{x:,}"


def _usd(x: float | None) -> str:
    """Dollars: cents from $1 up, three significant digits below (a call costs $0.000123),
    `unknown` for an unknown cost (never $0)."""
    if x is None:
        return "unknown"
    if x >= 1 or x <= 0:
        return f"${x:,.2f}"
    return f"${x:.{2 - math.floor(math.log10(x))}f}"


def _evaluator_table(plan: Plan, e: EvaluatorPlan) -> Table:
    t = Table(
        title=f"{e.evaluator}: examples x repetitions to detect a drop of {plan.detect:g} "
        f"(power {plan.power:g}, alpha {plan.alpha:g} / {plan.cells} cells)"
    )
    for col in ("repetitions", "examples", "if diffuse", "if concentrated", "power",
                "judge calls/run", "$/run", "note"):  # fmt: skip
        t.add_column(col)
    for o in e.options:
        t.add_row(
            str(o.repetitions),
            "inconclusive" if o.status == "inconclusive" else _num(o.examples, ","),
            _count(o.by_shape.get("diffuse")),
            _count(o.by_shape.get("concentrated")),
            _pct(o.power),
            "—" if o.judge_calls is None else f"{o.judge_calls:,}",
            "—" if o.status != "ok" else _usd(o.cost_usd),
            o.note,
        )
    return t


def show(plan: Plan) -> None:
    console.print(f"plan for dataset {plan.dataset!r}: {plan.status}")
    if plan.runs:
        console.print(
            f"from the latest {len(plan.runs)} completed run(s): "
            + ", ".join(
                f"{r['experiment_id']} ({r['suite']}, {r['repetitions']} rep)" for r in plan.runs
            ),
            markup=False,
        )
    for e in plan.evaluators:
        icc = _num(e.icc.value)
        if e.icc.value is None and e.pass_rate is not None and e.pass_rate >= 1:
            icc = "not needed (every row passed)"
        console.print(
            f"\n{e.evaluator}: pass rate {_pct(e.pass_rate)}, correlation between repetitions "
            f"{icc} ({e.icc.source}, {e.icc.groups} groups), discordance of paired runs "
            f"{_pct(e.discordance)} over {e.discordance_pairs} pair(s) (model: "
            f"{_pct(e.discordance_model)})",
            markup=False,
        )
        if e.usage is not None:
            console.print(
                f"judge calls per example and repetition {e.usage.calls_per_example:.2f}, "
                f"per call {_usd(e.usage.cost_per_call_usd)} ({e.usage.source})",
                markup=False,
            )
        console.print(_evaluator_table(plan, e))
        for s in e.suites:
            console.print(
                f"{s.suite} suite now ({s.examples} examples x {s.repetitions}): power "
                + (
                    f"{s.power:.1%} ({s.note})"
                    if s.power is not None
                    else f"inconclusive ({s.note})"
                ),
                markup=False,
            )
        for note in e.notes:
            console.print(f"note: {note}", markup=False)
    for note in plan.notes:
        console.print(f"note: {note}", markup=False)
    console.print("approximations: " + "; ".join(plan.approximations), markup=False)


@app.command()
def plan(
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset's name.")],
    detect: Annotated[
        float, typer.Option("--detect", help="The drop in pass rate to detect (0.05: 5 points).")
    ],
    power: Annotated[float, typer.Option("--power", help="The power asked for.")] = 0.8,
    alpha: Annotated[
        float | None,
        typer.Option("--alpha", help="Significance level (default EVALKEEPER_ALPHA, 0.05)."),
    ] = None,
    evaluator: Annotated[
        str | None, typer.Option("--evaluator", help="Plan for this evaluator only.")
    ] = None,
    runs: Annotated[int, typer.Option("--runs", help="How many latest runs to learn from.")] = 10,
    cells: Annotated[
        int | None,
        typer.Option(
            "--cells",
            help="Cells the gate adjusts together (default: the latest run's evaluators x "
            "(categories + 1)); each is planned at alpha / cells. 1: the evaluator's cell alone.",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Plan a suite: the examples x repetitions needed to detect a drop with the gate's
    paired test, the smoke suite's power now, and the judge calls and dollars per run."""
    fmt = output_format(format, FORMATS)
    settings = load_settings(warehouse=warehouse)
    result = make_plan(
        settings,
        dataset,
        detect=detect,
        power=power,
        alpha=settings.analysis.alpha if alpha is None else alpha,
        evaluator=evaluator,
        runs=runs,
        cells=cells,
    )
    if fmt == "json":
        print(json.dumps(plan_json(result), indent=2, default=str))
    else:
        show(result)
