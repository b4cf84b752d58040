"""Commands that run suites and read the warehouse: run, demo, experiments, sql, serve."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import duckdb
import polars as pl
import typer
from rich.table import Table

from evalkeeper import run as core
from evalkeeper.cli.app import (
    EXIT_RUN_FAILED,
    WarehouseOpt,
    app,
    console,
    err_console,
    fail,
    interrupted,
    load_settings,
    output_format,
)
from evalkeeper.exitcodes import EXIT_UPLOAD_FAILED
from evalkeeper.report.output import ROW_FORMATS, emit_rows
from evalkeeper.settings import Settings
from evalkeeper.suites import Suite
from evalkeeper.warehouse import Warehouse

AllowSkippedOpt = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated evaluators that may be skipped (judges without an endpoint) "
        "without making the verdict inconclusive."
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")]
UploadOpt = Annotated[
    bool,
    typer.Option(
        "--upload", help="Also record the experiment in LangSmith (EVALKEEPER_LANGSMITH_*)."
    ),
]


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
    if summary.error_groups:
        console.print(error_table(summary))
    for problem in summary.problems:
        console.print(f"[bold red]run failed:[/] {problem}", soft_wrap=True, highlight=False)
    if summary.spool_note:
        console.print(f"[yellow]{summary.spool_note}[/]", soft_wrap=True, highlight=False)
    if summary.source == "this process":
        console.print(
            "[yellow]another process was writing the warehouse: the summary covers this "
            "process's rows only[/]"
        )
    reasons: dict[str, list[str]] = {}
    for e in summary.evaluators:
        if e.skipped and e.comment:
            reasons.setdefault(e.comment, []).append(e.evaluator)
    for reason, names in reasons.items():  # one line per reason, not per evaluator
        console.print(f"[dim]skipped {', '.join(names)}: {reason}[/]", soft_wrap=True)
    if summary.skipped_required:
        console.print(
            f"[yellow]{', '.join(summary.skipped_required)} skipped without --allow-skipped: "
            "a verdict on this run is inconclusive and it cannot be a baseline[/]",
            soft_wrap=True,
        )


def error_table(summary: core.Summary, limit: int = 10) -> Table:
    """Errors grouped by cause: where, the first line, how many, one example."""
    n = sum(g.count for g in summary.error_groups)
    t = Table(title=f"{n} error(s) by cause", title_style="bold red")
    for col in ("where", "error", "rows", "e.g. example"):
        t.add_column(col, justify="right" if col == "rows" else "left")
    for g in summary.error_groups[:limit]:
        t.add_row(g.where, g.error, str(g.count), g.example_id or "-")
    if len(summary.error_groups) > limit:
        t.caption = f"…and {len(summary.error_groups) - limit} more causes (--json lists all)"
    return t


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
    """`core.run_suite` for a command: Ctrl-C exits 130 naming the experiment to resume
    (chosen up front for that reason). Bad input (an `InputError`) exits 2 with its message,
    as for every command (see `Commands` in cli/app.py)."""
    experiment_id = experiment or core.new_experiment_id(suite, Path(dataset).stem)
    try:
        return asyncio.run(
            core.run_suite(
                settings,
                dataset=dataset,
                suite=suite,
                target=target,
                evaluators=core.parse_evaluator_names(evaluators),
                experiment_id=experiment_id,
                **options,
            )
        )
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
    concurrency: Annotated[
        int | None, typer.Option(help="Examples in flight (EVALKEEPER_CONCURRENCY; at least 1).")
    ] = None,
    repetitions: Annotated[
        int | None, typer.Option(min=1, help="Runs per example (1; a resume keeps its own).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment id; an existing one is resumed.")
    ] = None,
    warehouse: WarehouseOpt = None,
    output_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="LLM judges call the endpoint even when cached.")
    ] = False,
    allow_skipped: AllowSkippedOpt = None,
    upload: UploadOpt = False,
) -> None:
    """Run a suite against a target and record every score in the warehouse.

    Exit 0 when done; 2 on bad input or an incomplete run; 3 when every row is stored but
    the target's or an evaluator's error share is above EVALKEEPER_MAX_ERROR_RATE; 4 when
    `--upload` to LangSmith failed (the local experiment is kept)."""
    # a settings option is checked with the settings: `--concurrency 0` gets the one line
    # `EVALKEEPER_CONCURRENCY=0` gets, not a usage box
    settings = load_settings(warehouse=warehouse, concurrency=concurrency)
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
        allow_skipped=core.parse_evaluator_names(allow_skipped),
    )
    uploaded = not upload or upload_after(settings, summary)
    finish_command(summary, output_json)
    if not uploaded:
        raise typer.Exit(EXIT_UPLOAD_FAILED)


def upload_after(settings: Settings, summary: core.Summary) -> bool:
    """`--upload`: record the experiment in LangSmith; False (reported) when it failed."""
    from evalkeeper.cli.langsmith import upload_or_report

    return upload_or_report(settings, summary.experiment.experiment_id)


def finish_command(summary: core.Summary, output_json: bool) -> None:
    """Print a run's summary and exit with its code (see `run`)."""
    if output_json:
        print(summary.model_dump_json(indent=2))
    else:
        print_summary(summary)
    eid = summary.experiment.experiment_id
    if summary.experiment.status != "completed":
        fail(f"experiment {eid} is incomplete: run again with --experiment {eid} to finish it")
    if summary.failed:
        fail(
            f"experiment {eid} failed: {'; '.join(summary.problems)}. Every row is kept; "
            f"after fixing the cause, `--experiment {eid}` tries the failed rows again",
            EXIT_RUN_FAILED,
        )


@app.command()
def score(
    experiment: Annotated[str, typer.Argument(help="Experiment id whose outputs to score.")],
    evaluators: Annotated[
        str, typer.Option(help="Comma-separated evaluator names (new ones or new versions).")
    ],
    warehouse: WarehouseOpt = None,
    output_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="LLM judges call the endpoint even when cached.")
    ] = False,
) -> None:
    """Run evaluators on an experiment's stored outputs, without calling the target again.

    Their earlier scores on it (errors, skips, an older version) are replaced. Exit codes
    as for `run`."""
    settings = load_settings(warehouse=warehouse)
    names = core.parse_evaluator_names(evaluators)
    if not names:
        fail("--evaluators: name at least one evaluator, e.g. --evaluators factual_match")
    try:
        summary = asyncio.run(
            core.rescore(settings, experiment, names, progress=not output_json, no_cache=no_cache)
        )
    except KeyboardInterrupt:
        interrupted(experiment)
    finish_command(summary, output_json)


@app.command()
def experiments(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    format: FormatOpt = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """List recent experiments, and whether each can serve as a baseline (and if not, why).

    An experiment with rows (or its finish) still waiting in the spool, because another
    process held the warehouse, shows status "waiting in the spool" until a writer ingests
    them."""
    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    wh = Warehouse.from_settings(settings)
    from evalkeeper.analysis.baseline import eligibility, spooled_experiments

    with wh.reading() as con:  # the file, or (held read-only elsewhere) the file and spool
        spooled = spooled_experiments(wh)
        frame = con.sql(
            """
            SELECT e.experiment_id, e.started_at, e.suite, e.dataset, e.agent_version AS agent,
                   e.git_branch AS branch, e.status,
                   (SELECT count(*) FROM runs r WHERE r.experiment_id = e.experiment_id) AS rows
            FROM experiments e ORDER BY e.started_at DESC LIMIT ?
            """,
            params=[limit],
        ).pl()
        ids = frame.get_column("experiment_id").to_list()
        why = eligibility(con, ids, settings, spooled)
    if not frame.height and fmt == "table":
        console.print(f"no experiments in {settings.warehouse}: run `evalkeeper run` or `demo`")
        return
    frame = frame.with_columns(
        pl.when(pl.col("experiment_id").is_in(list(spooled)))
        .then(pl.lit(WAITING))
        .otherwise(pl.col("status"))
        .alias("status"),
        pl.Series(
            "baseline",
            ["yes" if not why.get(i) else "no: " + "; ".join(why[i]) for i in ids],
        ),
    )
    emit_rows(frame, fmt, title=f"experiments in {settings.warehouse}", console=console)
    if spooled and fmt == "table":
        err_console.print(
            f"[yellow]{len(wh.spooled_batches())} batch(es) wait in the spool {wh.spool_dir} "
            "(another process holds the warehouse); the next writer ingests them[/]",
            soft_wrap=True,
        )


WAITING = "waiting in the spool"
"""The status `experiments` shows while an experiment's rows or finish are spooled."""


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse.")],
    format: FormatOpt = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Run SQL against the warehouse (tables and views are documented in docs/warehouse.md).

    Read-only: a statement that would change the warehouse, read or write another file,
    attach a database, install or load an extension or change a setting exits 2."""
    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    try:
        frame = Warehouse.from_settings(settings).query_read_only(query)
    except duckdb.Error as exc:  # the user's SQL: DuckDB's own message names the problem
        fail(f"query failed: {exc}")
    emit_rows(frame, fmt, console=console)
    if fmt == "table":
        err_console.print(f"[dim]{frame.height} row(s)[/]")
