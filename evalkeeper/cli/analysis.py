"""`compare` two experiments and `gate` a change: exit 0 pass, 1 regression, 2 otherwise."""

from __future__ import annotations

# `evalkeeper.analysis` pulls in SciPy (seconds to import here): imported where used, so
# that every other command starts fast.
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkeeper import run as core
from evalkeeper.cli.app import (
    WarehouseOpt,
    app,
    console,
    err_console,
    fail,
    load_settings,
    output_format,
)
from evalkeeper.cli.run import (
    AllowSkippedOpt,
    UploadOpt,
    print_summary,
    run_suite_or_exit,
    upload_after,
)
from evalkeeper.errors import EvalkeeperError
from evalkeeper.exitcodes import EXIT_OK, EXIT_UPLOAD_FAILED
from evalkeeper.models import Suite
from evalkeeper.report.output import SummaryWriteError, print_gate_result, write_markdown_summary
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, WarehouseLocked, save_comparison

if TYPE_CHECKING:
    from evalkeeper import analysis as cmp
    from evalkeeper.analysis.gate import GateOutcome

FORMATS = ("table", "markdown", "json")


def show(c: cmp.Comparison, format: str) -> None:
    from evalkeeper.report import render_markdown, render_table

    if format == "json":
        print(c.model_dump_json(indent=2))
    elif format == "markdown":
        print(render_markdown(c))
    else:
        console.print(render_table(c))
        from evalkeeper.report.corrected import corrected_table

        if (judged := corrected_table(c)) is not None:
            console.print(judged)
        console.print(render_markdown(c), markup=False, highlight=False)


def run_compare(settings: Settings, experiment: str, baseline: str) -> cmp.Comparison:
    from evalkeeper import analysis as cmp

    wh = Warehouse.from_settings(settings)
    try:
        c = cmp.compare(wh, experiment, baseline, settings)
        save_comparison(wh, c)
    except (cmp.CompareError, WarehouseLocked) as exc:
        fail(str(exc))
    return c


@app.command()
def compare(
    experiment: Annotated[str, typer.Argument(help="Experiment id to judge.")],
    baseline: Annotated[
        str, typer.Option(help="Baseline experiment id, or auto (latest completed on main).")
    ] = "auto",
    format: Annotated[str, typer.Option(help="table, markdown or json.")] = "table",
    baseline_branch: Annotated[
        str | None, typer.Option(help="Branch whose runs `auto` picks (default main).")
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Compare an experiment with its baseline: paired tests, per-row guard, verdict."""
    if format not in FORMATS:
        fail(f"--format {format!r}: use table, markdown or json")
    settings = load_settings(warehouse=warehouse, baseline_branch=baseline_branch)
    c = run_compare(settings, experiment, baseline)
    show(c, format)
    from evalkeeper.analysis.gate import exit_code

    raise typer.Exit(exit_code(c.verdict, settings))


def write_gate_report(settings: Settings, outcome: GateOutcome, path: Path) -> None:
    """Write the gate's HTML report to `path`; a report that cannot be written never turns
    the verdict into a pass: it is said on stderr, and a pass exits 2."""
    from evalkeeper.report.html.experiment import build_gate_report

    try:
        page = build_gate_report(Warehouse.from_settings(settings), outcome, settings=settings)
        written = page.write(path)
    except (OSError, EvalkeeperError) as exc:
        message = f"report not written to {path}: {exc}"
        if outcome.exit_code == EXIT_OK:
            fail(message)
        err_console.print(f"error: {message}", markup=False, highlight=False)
        return
    err_console.print(f"report written: {written}", markup=False, highlight=False)


@app.command()
def gate(
    target: Annotated[str, typer.Option(help="module:function, http(s)://URL, replay:PATH.")],
    suite: Annotated[Suite, typer.Option(help="smoke or full.")] = "smoke",
    dataset: Annotated[str, typer.Option(help="Dataset name or .jsonl path.")] = "appointments",
    baseline: Annotated[
        str, typer.Option(help="A branch (its latest completed run) or an experiment id.")
    ] = "main",
    evaluators: Annotated[str | None, typer.Option(help="Comma-separated names.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment id (resumes).")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the markdown summary to this file.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the HTML report to this file.")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="table, markdown (only the summary) or json.")
    ] = "table",
    inconclusive_fails: Annotated[
        bool | None,
        typer.Option("--inconclusive-fails/--inconclusive-passes", help="Exit 2 or 0."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="LLM judges call the endpoint even when cached.")
    ] = False,
    allow_skipped: AllowSkippedOpt = None,
    warehouse: WarehouseOpt = None,
    upload: UploadOpt = False,
) -> None:
    """Run a suite on a change, compare with the baseline, print the PR summary.

    Exit 0 pass, 1 regression, 2 inconclusive (no baseline, judges skipped, too many
    errors: the summary says which; --inconclusive-passes makes it 0) or bad input;
    4 when the verdict is pass but `--upload` to LangSmith failed. `--report FILE` also
    writes the HTML report of the gated experiment; when it cannot be written, a pass
    exits 2 and any other verdict keeps its exit code."""
    from evalkeeper.analysis.gate import decide_gate
    from evalkeeper.report.markdown import render_gate

    fmt = output_format(format, FORMATS)
    settings = load_settings(warehouse=warehouse, inconclusive_fails=inconclusive_fails)
    summary = run_suite_or_exit(
        settings,
        dataset=dataset,
        suite=suite,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        no_cache=no_cache,
        allow_skipped=core.parse_evaluator_names(allow_skipped),
    )
    if fmt == "table":
        print_summary(summary)
    uploaded = not upload or upload_after(settings, summary)
    outcome = decide_gate(
        Warehouse.from_settings(settings),
        summary.experiment.experiment_id,
        baseline,
        settings,
        run_problems=summary.problems,
        error_groups=summary.error_groups,
    )
    text = render_gate(outcome)
    print_gate_result(outcome, text, fmt)
    try:
        write_markdown_summary(text, markdown, settings)
    except SummaryWriteError as exc:
        fail(str(exc))
    if report is not None:
        write_gate_report(settings, outcome, report)
    if outcome.exit_code == EXIT_OK and not uploaded:
        raise typer.Exit(EXIT_UPLOAD_FAILED)
    raise typer.Exit(outcome.exit_code)
