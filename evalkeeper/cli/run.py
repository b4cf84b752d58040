"""Commands that run suites and read the warehouse: run, demo, experiments, sql, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from evalkeeper import experiment as core
from evalkeeper.cli.app import (
    INPUT_ERRORS,
    app,
    console,
    err_console,
    fail,
    interrupted,
    load_settings,
    message_of,
    output_format,
)
from evalkeeper.report.output import ROW_FORMATS, emit_rows
from evalkeeper.settings import Settings
from evalkeeper.suites import Suite
from evalkeeper.warehouse import WarehouseLocked

WarehouseOpt = Annotated[
    Path | None, typer.Option("--warehouse", help="DuckDB file (default data/warehouse.duckdb).")
]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")]


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def summary_table(summary: core.Summary) -> Table:
    exp = summary.experiment
    t = Table(title=f"{exp.experiment_id}  ({exp.suite}, {summary.rows} rows)")
    for col in ("evaluator", "version", "n", "passed", "failed", "errors", "pass rate", "mean"):
        t.add_column(col, justify="left" if col in ("evaluator", "version") else "right")
    for e in summary.evaluators:
        if e.skipped and e.skipped == e.n:
            t.add_row(e.evaluator, e.version, str(e.n), "-", "-", "-", "[dim]skipped[/]", "-")
            continue
        t.add_row(
            e.evaluator,
            e.version,
            str(e.n),
            str(e.passed),
            str(e.failed),
            f"[red]{e.errors}[/]" if e.errors else "0",
            _fmt(e.pass_rate),
            _fmt(e.mean_value, pct=False),
        )
    return t


def print_summary(summary: core.Summary) -> None:
    exp = summary.experiment
    console.print(f"experiment [bold]{exp.experiment_id}[/]")
    console.print(
        f"  dataset {exp.dataset}@{exp.dataset_version}  target {exp.target.spec} "
        f"(agent {exp.target.agent_version or '-'}, model {exp.target.model or '-'}, "
        f"commit {(exp.target.git_commit or '-')[:10]} on {exp.target.git_branch or '-'})"
    )
    console.print(summary_table(summary))
    if summary.target_errors:
        console.print(f"[yellow]{summary.target_errors} target error(s) recorded on their rows[/]")
    if summary.source != "warehouse":
        console.print(
            "[yellow]the warehouse was locked by another process: rows are in the spool and "
            "will be ingested by the next write; the summary covers this process only[/]"
        )
    reasons: dict[str, list[str]] = {}
    for e in summary.evaluators:
        if e.skipped and e.comment:
            reasons.setdefault(e.comment, []).append(e.evaluator)
    for reason, names in reasons.items():  # one line per reason, not per evaluator
        console.print(f"[dim]skipped {', '.join(names)}: {reason}[/]", soft_wrap=True)


def run_suite_or_exit(
    settings: Settings,
    *,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: str | None,
    experiment: str | None,
    **options: Any,
) -> core.Summary:
    """`core.run_suite` for a command: bad input exits 2 with its message; Ctrl-C exits 130
    naming the experiment to resume (chosen up front for that reason)."""
    experiment_id = experiment or core.new_experiment_id(suite, Path(dataset).stem)
    try:
        return core.run_suite(
            settings,
            dataset=dataset,
            suite=suite,
            target=target,
            evaluators=core.parse_evaluator_names(evaluators),
            experiment_id=experiment_id,
            **options,
        )
    except INPUT_ERRORS as exc:
        fail(message_of(exc))
    except KeyboardInterrupt:  # Typer would exit 130 silently
        interrupted(experiment_id)


@app.command()
def run(
    dataset: Annotated[
        str, typer.Option(help="Dataset name under data/datasets or a .jsonl path.")
    ],
    target: Annotated[
        str, typer.Option(help="module:function, http(s)://URL, or replay:PATH.jsonl.")
    ],
    suite: Annotated[Suite, typer.Option(help="full or smoke.")] = "full",
    evaluators: Annotated[
        str | None, typer.Option(help="Comma-separated evaluator names (default: dataset's).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Examples in flight.")] = None,
    repetitions: Annotated[int, typer.Option(min=1, help="Runs per example.")] = 1,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment id; an existing one is resumed.")
    ] = None,
    warehouse: WarehouseOpt = None,
    output_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="LLM judges call the endpoint even when cached.")
    ] = False,
) -> None:
    """Run a suite against a target and record every score in the warehouse."""
    settings = load_settings(warehouse=warehouse)
    summary = run_suite_or_exit(
        settings,
        dataset=dataset,
        suite=suite,
        target=target,
        evaluators=evaluators,
        experiment=experiment,
        repetitions=repetitions,
        concurrency=concurrency,
        progress=not output_json,
        no_cache=no_cache,
    )
    if output_json:
        print(summary.model_dump_json(indent=2))
    else:
        print_summary(summary)
    if summary.experiment.status != "completed":
        fail(
            f"experiment {summary.experiment.experiment_id} is incomplete: run again with "
            f"--experiment {summary.experiment.experiment_id} to finish it"
        )


@app.command()
def experiments(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    format: FormatOpt = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """List recent experiments."""
    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    wh = core.warehouse_for(settings)
    frame = wh.query(
        """
        SELECT e.experiment_id, e.started_at, e.suite, e.dataset, e.agent_version AS agent,
               e.git_branch AS branch, e.status,
               (SELECT count(*) FROM runs r WHERE r.experiment_id = e.experiment_id) AS rows
        FROM experiments e ORDER BY e.started_at DESC LIMIT ?
        """,
        [limit],
    )
    if not frame.height and fmt == "table":
        console.print(f"no experiments in {settings.warehouse}: run `evalkeeper run` or `demo`")
        return
    emit_rows(frame, fmt, title=f"experiments in {settings.warehouse}", console=console)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse.")],
    format: FormatOpt = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Run SQL against the warehouse (tables and views are documented in docs/warehouse.md)."""
    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    try:
        frame = core.warehouse_for(settings).query(query)
    except WarehouseLocked as exc:
        fail(str(exc))
    except Exception as exc:  # DuckDB's own message names the problem
        fail(f"query failed: {exc}")
    emit_rows(frame, fmt, console=console)
    if fmt == "table":
        err_console.print(f"[dim]{frame.height} row(s)[/]")
