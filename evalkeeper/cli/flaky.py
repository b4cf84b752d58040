"""`evalkeeper flaky`: the rows (example x evaluator) that flip under the same dataset
version and target pin, with their pass rate and its Wilson interval
(`evalkeeper.analysis.stability`; the counts are the `row_stability` view's)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evalkeeper.cli.app import WarehouseOpt, app, err_console, fail, load_settings, output_format
from evalkeeper.report.output import ROW_FORMATS, emit_rows
from evalkeeper.warehouse import Warehouse, WarehouseLocked

TABLE_COLUMNS = (
    "dataset", "version", "pin", "example_id", "evaluator", "critical", "runs",
    "observations", "passes", "fails", "pass_rate", "stability",
)  # fmt: skip
"""What the terminal and markdown tables show; csv and json carry every column."""

FULL_COLUMNS = (
    "dataset", "dataset_version", "target_spec", "agent_version", "model", "example_id",
    "evaluator", "evaluator_version", "judge_model", "category", "critical", "incident_id",
    "runs", "observations", "passes", "fails", "errors", "pass_rate", "ci_low", "ci_high",
    "stability", "first_run_at", "last_run_at",
)  # fmt: skip


def pin_text(r: dict[str, Any]) -> str:
    """The target pin in one cell: `spec (agent VERSION, model MODEL)`."""
    extra = [f"agent {r['agent_version']}"] if r["agent_version"] else []
    extra += [f"model {r['model']}"] if r["model"] else []
    return str(r["target_spec"]) + (f" ({', '.join(extra)})" if extra else "")


def rate_text(r: dict[str, Any]) -> str:
    """`48% [30%, 67%]`: the pass rate and its interval, as every report writes it."""
    from evalkeeper.analysis.reasons import fmt_value

    return (
        f"{fmt_value(r['pass_rate'], 'pass_rate')} [{fmt_value(r['ci_low'], 'pass_rate')}, "
        f"{fmt_value(r['ci_high'], 'pass_rate')}]"
    )


@app.command()
def flaky(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's rows.")] = None,
    evaluator: Annotated[str | None, typer.Option(help="Only this evaluator's rows.")] = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Every row with its class, not only the flaky ones.")
    ] = False,
    format: Annotated[str, typer.Option(help="table, csv, json or markdown.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Rows that flip: each (example, evaluator)'s pass rate over the repetitions and runs of
    the same dataset version and target pin, its Wilson interval, and its class (stable_pass,
    stable_fail, flaky, insufficient; EVALKEEPER_FLAKY_CONFIDENCE and _TOLERANCE)."""
    from evalkeeper.analysis.stability import classify_rows
    from evalkeeper.warehouse.stability import stability_rows

    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    if not settings.warehouse.is_file():
        fail(
            f"no warehouse at {settings.warehouse}: pass --warehouse PATH (or set "
            "EVALKEEPER_WAREHOUSE), or run a suite first (`evalkeeper run`)"
        )
    wh = Warehouse.from_settings(settings)
    try:
        with wh.reading() as con:
            frame = stability_rows(con, dataset=dataset, evaluator=evaluator)
    except WarehouseLocked as exc:
        fail(str(exc))
    if not frame.height and (dataset or evaluator):
        asked = " and ".join(
            f"{k} {v!r}" for k, v in (("dataset", dataset), ("evaluator", evaluator)) if v
        )
        fail(
            f"{asked}: no scored pass/fail row in {settings.warehouse}; check the name "
            '(`evalkeeper sql "SELECT DISTINCT dataset, evaluator FROM row_stability"`) or '
            "run it first (`evalkeeper run`)"
        )
    rows = classify_rows(frame.to_dicts(), settings.analysis)
    if not all_rows:
        rows = [r for r in rows if r["stability"] == "flaky"]
    if fmt in ("csv", "json"):
        emit_rows(rows, fmt, FULL_COLUMNS)
        return
    shown = [
        {
            **r,
            "version": str(r["dataset_version"])[:12],
            "pin": pin_text(r),
            "pass_rate": rate_text(r),
        }
        for r in rows
    ]
    if fmt == "table" and not shown:
        what = "row" if all_rows else "flaky row"
        err_console.print(f"no {what} found", markup=False, highlight=False)
        return
    emit_rows(shown, fmt, TABLE_COLUMNS, title="flaky rows" if not all_rows else "row stability")
