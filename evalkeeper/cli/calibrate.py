"""`evalkeeper calibrate sample|import|report`: human labels for the LLM judges, agreement,
and retirement.

Exit codes: 0 done; 2 bad input (an unknown judge, a label file with problems: nothing of it
is imported, a bad quarter or date) or a locked warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from evalkeeper.cli.app import WarehouseOpt, app, console, fail, load_settings, output_format
from evalkeeper.warehouse import Warehouse, WarehouseLocked

calibrate_app = typer.Typer(
    name="calibrate",
    help="Judge calibration: draw items for human labels, import the labels, measure and "
    "retire judges below the bar.",
    no_args_is_help=True,
)
app.add_typer(calibrate_app, name="calibrate")

REPORT_FORMATS = ("table", "json", "markdown")


def _choices() -> dict[str, tuple[str, ...]]:
    from evaluators.judges import JUDGES

    return {name: tuple(j.choices) for name, j in JUDGES.items()}


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {text!r}: not an ISO 8601 date; write e.g. 2026-10-01 or 2026-10-01T00:00Z")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@calibrate_app.command("sample")
def sample_command(
    judge: Annotated[str, typer.Option(help="The judge to draw items for.")],
    n: Annotated[
        int | None,
        typer.Option(
            min=1, help="Items to draw (default: sized for a ±5-point interval, about 200)."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs judged since (ISO 8601 date or time, UTC).")
    ] = None,
    double: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Share of items for two annotators (default 0.2)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory of the annotation files (default annotations/ beside the warehouse)."
        ),
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Draw judged runs (seeded, stratified by verdict and category) and write the annotation
    files (CSV and JSONL) without the judge's verdict."""
    from evalkeeper.calibration import SampleError, sample_items

    settings = load_settings(warehouse=warehouse)
    wh = Warehouse.from_settings(settings)
    choices = _choices().get(judge, ("pass", "fail"))
    try:
        result = sample_items(
            wh, settings, judge, n=n, since=_since(since), double_share=double, out_dir=out,
            choices=choices,
        )  # fmt: skip
    except (SampleError, WarehouseLocked) as exc:
        fail(str(exc))
    console.print(
        f"drew {result.n_items} items for {judge} ({result.sized_by}; {result.n_double} for two "
        f"annotators) from {result.n_available} judged runs",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "strata: " + ", ".join(f"{k} {v}" for k, v in result.strata.items()),
        highlight=False,
        soft_wrap=True,
    )
    for f in result.files:
        console.print(f"wrote {f}", highlight=False, soft_wrap=True)
    console.print(
        "Fill in `annotator` and `label` (one of " + ", ".join(choices) + "); give the two "
        "copies of a doubled item to different annotators; then `evalkeeper calibrate import "
        "FILE`.",
        highlight=False,
        soft_wrap=True,
    )


@calibrate_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Labels: CSV or JSONL.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Import human labels, all or nothing; the latest label of an annotator on an item wins."""
    from evalkeeper.calibration import LabelFileError, import_labels

    settings = load_settings(warehouse=warehouse)
    wh = Warehouse.from_settings(settings)
    try:
        result = import_labels(wh, file, choices=_choices())
    except (LabelFileError, WarehouseLocked) as exc:
        fail(str(exc))
    for note in result.notes:
        console.print(note, highlight=False, soft_wrap=True, markup=False)
    console.print(
        f"{file}: {result.rows} labels read: {result.inserted} new, {result.replaced} replaced, "
        f"{result.unchanged} unchanged, {result.kept_stored} older than the stored label (kept "
        f"the stored), {result.unlabelled} rows not labelled yet",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


@calibrate_app.command("report")
def report_command(
    judge: Annotated[str | None, typer.Option(help="One judge (default: every judge).")] = None,
    quarter: Annotated[
        str | None,
        typer.Option(help="Labels of this quarter, e.g. 2026Q4 (default: each version's latest)."),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, json or markdown.")] = "table",
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Store the measurements and statuses (what gates read; a retired judge stops "
            "gating). The scheduled flow always records.",
        ),
    ] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Agreement with the humans per judge version: Wilson interval, the constant-answer
    baseline (flagged when not beaten), kappa (SE, BCa interval), AC1, confusion, the human
    ceiling, the status and the rule that decided it (EVALKEEPER_CALIBRATION_RULE), and the
    disagreements."""
    from evalkeeper.calibration import measure, quarter_bounds
    from evalkeeper.calibration import record as record_status
    from evalkeeper.report.calibration import (
        calibration_json,
        calibration_markdown,
        calibration_table,
        disagreements_table,
    )

    fmt = output_format(format, REPORT_FORMATS)
    settings = load_settings(warehouse=warehouse)
    if quarter is not None:
        try:
            quarter_bounds(quarter)
        except ValueError as exc:
            fail(f"--quarter: {exc}")
        quarter = quarter.upper().replace("-", "")
    if not Path(settings.warehouse).exists():
        fail(f"{settings.warehouse}: no warehouse yet; run a suite with a judge first")
    wh = Warehouse.from_settings(settings)
    try:
        cals = measure(wh, settings, judge=judge, quarter=quarter, choices=_choices())
        if record:
            cals = record_status(wh, cals)
    except WarehouseLocked as exc:
        fail(str(exc))
    if fmt == "json":
        typer.echo(calibration_json(cals))
        return
    if fmt == "markdown":
        typer.echo(calibration_markdown(cals), nl=False)
        return
    if not cals:
        console.print(
            "No labelled items"
            + (f" for {judge}" if judge else "")
            + (f" in {quarter}" if quarter else "")
            + ": draw some with `evalkeeper calibrate sample --judge NAME` and import the "
            "labels with `evalkeeper calibrate import FILE`.",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(calibration_table(cals))
    for c in cals:
        console.print(f"{c.judge}: {c.status}: {c.reason}", highlight=False, soft_wrap=True)
    for c in cals:
        if c.disagreements:
            console.print(disagreements_table(c))
    if not record:
        console.print(
            "[dim]not recorded: add --record to store these statuses (a retired judge stops "
            "gating)[/]"
        )
