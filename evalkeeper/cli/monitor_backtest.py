"""`evalkeeper monitor backtest`: replay recorded traffic through the monitor's decision.

Prints the timeline (one row per tick: the window's traces so far and, per evaluator,
flags / scored, the rate, Z or log LR / threshold and the decision) and the decision, or with
`--format json` one object with `decision`, `decided_at`, `evaluator`, `baseline_traces`,
`window_traces` and the timeline. Nothing is stored and no action is taken. Exit 0; 1 when
some trace lines could not be read (the rest was replayed; each bad line is printed);
2 on an unusable command.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

from evalkeeper.cli.app import (
    EXIT_OK,
    WarehouseOpt,
    console,
    err_console,
    fail,
    load_settings,
    output_format,
)
from evalkeeper.cli.monitor import monitor_app
from evalkeeper.models import EvaluatorRef
from evalkeeper.report.output import emit_rows
from evalkeeper.traces.model import iso_utc, to_utc

if TYPE_CHECKING:
    from evalkeeper.monitor.backtest import BacktestResult

EXIT_BAD_LINES = 1
FORMATS = ("table", "json")


def evaluator_refs(values: list[str] | None) -> tuple[EvaluatorRef, ...]:
    """`--evaluators a,b --evaluators c` as refs; the defaults when none is given."""
    from evalkeeper.monitor.backtest import DEFAULT_EVALUATORS

    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return tuple(EvaluatorRef(name=n) for n in (names or DEFAULT_EVALUATORS))


@monitor_app.command("backtest")
def backtest_command(
    traces: Annotated[str, typer.Option(help="Trace source: jsonl:PATH (file or directory).")],
    service: Annotated[str, typer.Option(help="The service whose traces count.")],
    deploy_at: Annotated[
        str, typer.Option(help="The deploy's time, ISO 8601 with offset (2026-11-30T14:00:00Z).")
    ],
    evaluators: Annotated[
        list[str] | None,
        typer.Option(
            help="Online evaluators, comma-separated or repeated (latency_ok,tool_error)."
        ),
    ] = None,
    baseline_hours: Annotated[
        float, typer.Option(min=0.01, help="Baseline: these hours before the deploy.")
    ] = 168.0,
    window_hours: Annotated[
        float, typer.Option(min=0.01, max=48, help="Window: these hours after the deploy.")
    ] = 24.0,
    tick_minutes: Annotated[float, typer.Option(min=0.01, help="Minutes between ticks.")] = 15.0,
    sample_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of traces kept (keyed hash).")
    ] = 1.0,
    alpha: Annotated[
        float, typer.Option(help="Chance of rolling back an unchanged deploy.")
    ] = 0.05,
    tolerance: Annotated[
        float, typer.Option(help="Accepted rise of a flag rate (absolute: 0.01 = one point).")
    ] = 0.0,
    min_baseline: Annotated[int, typer.Option(help="Fewer baseline traces: inconclusive.")] = 200,
    min_window: Annotated[int, typer.Option(help="No decision before this many traces.")] = 50,
    method: Annotated[
        str, typer.Option(help="The test: spending (group-sequential) or mixture (the earlier).")
    ] = "spending",
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Replay recorded traffic tick by tick through the monitor's decision, without action."""
    fmt = output_format(format, FORMATS)
    settings = load_settings(warehouse=warehouse)
    from evalkeeper.monitor.backtest import BacktestConfig, backtest
    from evalkeeper.monitor.decision import MonitorPolicy

    try:
        when = to_utc(deploy_at)
    except ValueError as exc:
        fail(f"--deploy-at {deploy_at!r}: {exc}")
    try:  # the options' values; MonitorPolicy names the bad ones
        policy = MonitorPolicy(
            alpha=alpha,
            tolerance=tolerance,
            min_baseline=min_baseline,
            min_window=min_window,
            method=method,  # type: ignore[arg-type]  # checked by MonitorPolicy
        )
    except ValueError as exc:
        fail(str(exc))
    config = BacktestConfig(
        service=service,
        deploy_at=when,
        evaluators=evaluator_refs(evaluators),
        baseline_hours=baseline_hours,
        window_hours=window_hours,
        tick_minutes=tick_minutes,
        sample_rate=sample_rate,
        policy=policy,
    )
    result = asyncio.run(backtest(settings, traces, config))
    for line in result.bad_line_examples:
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.bad_lines:
        err_console.print(
            f"[red]{result.bad_lines:,} bad trace line(s) skipped[/] (the first are above)",
            highlight=False,
        )
    if fmt == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_result(result)
    raise typer.Exit(EXIT_BAD_LINES if result.bad_lines else EXIT_OK)


def print_result(result: BacktestResult) -> None:
    """The timeline as a table, then the decision and why."""
    rows = []
    for t in result.ticks:
        row: dict[str, object] = {"tick": iso_utc(t.at), "traces": t.window_traces}
        for e in t.evaluators:
            stat = "-" if e.statistic is None else f"{e.statistic:.2f}"
            bound = "-" if e.threshold is None else f"{e.threshold:.2f}"
            rate = "-" if e.window_rate is None else f"{e.window_rate:.1%}"
            name = "Z" if e.method == "spending" else "log LR"
            row[e.evaluator] = (
                f"{e.window_flags}/{e.window_n} {rate} {name} {stat}/{bound} {e.decision}"
            )
        row["decision"] = t.decision
        rows.append(row)
    title = f"backtest {result.service}, deploy {iso_utc(result.deploy_at)}"
    if rows:
        emit_rows(rows, "table", title=title, console=console)
    decided = "-" if result.decided_at is None else iso_utc(result.decided_at)
    console.print(
        f"decision [bold]{result.decision}[/] at {decided}"
        + (f" by {result.evaluator}" if result.evaluator else "")
        + f"; baseline {result.baseline_traces:,} traces, window {result.window_traces:,}",
        highlight=False,
        soft_wrap=True,
    )
    for line in result.reasons + result.notes:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
