"""`evalkeeper replay TRACE_ID --target SPEC [--repeat N] [--evaluators …]`: does the
failure of a production trace reproduce against the current target, every time, sometimes
or not at all?

Exit 0 when it does not reproduce (every attempt passed), 1 when it does (deterministic or
intermittent), 2 when it cannot be told (attempts nobody could score) or on an error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from evalkeeper.cli.app import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REGRESSION,
    WarehouseOpt,
    app,
    console,
    load_settings,
    output_format,
)
from evalkeeper.models import canonical_json
from evalkeeper.run.experiment import parse_evaluator_names
from evalkeeper.traces.lookup import load_trace
from evalkeeper.traces.replay import Attempt, ReplayReport, replay

EXIT_BY_VERDICT = {
    "not_reproduced": EXIT_OK,
    "deterministic": EXIT_REGRESSION,
    "intermittent": EXIT_REGRESSION,
    "undetermined": EXIT_ERROR,
}
REPLY_WIDTH = 60


def _answer(outputs: dict[str, Any] | None, width: int | None = REPLY_WIDTH) -> str:
    """The reply, cut to `width` characters on a terminal; whole (`width=None`) when the
    output goes to a file or a pipe, as every table there is."""
    if outputs is None:
        return "—"
    reply = outputs.get("reply", outputs.get("content"))
    text = reply if isinstance(reply, str) else canonical_json(outputs)
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _tools(outputs: dict[str, Any] | None) -> str:
    calls = (outputs or {}).get("tool_calls")
    if not isinstance(calls, list):
        return ""
    return ", ".join(str(c.get("name")) for c in calls if isinstance(c, dict))


def _checks(a: Attempt) -> str:
    parts = []
    for s in a.scores:
        mark = "skipped" if s.skipped else "error" if s.error else "pass" if s.passed else "FAIL"
        parts.append(f"{s.name} {mark}")
    return ", ".join(parts)


def print_report(report: ReplayReport) -> None:
    console.print(
        f"replay of trace [bold]{report.trace_id}[/] on {report.target.spec}"
        + (f" ({report.target.agent_version})" if report.target.agent_version else "")
        + f", {report.repeat} time(s); evaluators ({report.evaluators_from}): "
        + ", ".join(report.evaluators),
        highlight=False,
        soft_wrap=True,
    )
    t = Table(show_lines=False)
    for col in ("run", "outcome", "latency ms", "reply", "tools", "checks"):
        t.add_column(col)
    for a in [report.original, *report.attempts]:
        label = "original" if a.repetition is None else str(a.repetition + 1)
        style = {"failed": "red", "passed": "green", "unscored": "yellow"}[a.outcome]
        latency = "" if a.latency_ms is None else f"{a.latency_ms:,.0f}"
        width = REPLY_WIDTH if console.is_terminal else None
        answer = f"error: {a.error}" if a.error else _answer(a.outputs, width)
        t.add_row(label, f"[{style}]{a.outcome}[/]", latency, answer, _tools(a.outputs), _checks(a))
    console.print(t)
    for a in report.attempts:
        for s in a.scores:
            if s.error and not s.skipped:
                console.print(
                    f"  run {(a.repetition or 0) + 1}: {s.name} could not score: {s.error}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    style = {"not_reproduced": "green", "undetermined": "yellow"}.get(report.verdict, "red")
    console.print(
        f"[bold {style}]{report.verdict}[/]: {report.message}", highlight=False, soft_wrap=True
    )
    failing = next((a for a in report.attempts if a.outcome == "failed"), None)
    if failing is not None:
        console.print("  e.g. " + "; ".join(failing.reasons), markup=False, soft_wrap=True)


@app.command("replay")
def replay_command(
    trace_id: Annotated[str, typer.Argument(help="The trace to replay.")],
    target: Annotated[str, typer.Option(help="module:function, http(s)://…, or replay:PATH.")],
    repeat: Annotated[int, typer.Option(min=1, help="How many times to run it.")] = 5,
    evaluators: Annotated[
        str | None,
        typer.Option(help="Comma-separated evaluator names (default: see the docs)."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Read the trace from this source (e.g. jsonl:PATH), not the store."),
    ] = None,
    format: Annotated[str, typer.Option(help="table or json.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Run the target on a trace's inputs N times; say whether its failure reproduces.
    Exit 0 not reproduced, 1 reproduced (every time or sometimes), 2 undetermined/error."""
    fmt = output_format(format, ("table", "json"))
    settings = load_settings(warehouse=warehouse)
    trace = asyncio.run(load_trace(settings, trace_id, source))
    report = asyncio.run(
        replay(
            settings,
            trace,
            target_spec=target,
            repeat=repeat,
            evaluators=parse_evaluator_names(evaluators),
        )
    )
    if fmt == "json":
        print(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        print_report(report)
    raise typer.Exit(EXIT_BY_VERDICT[report.verdict])
