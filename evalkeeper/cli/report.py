"""`report`: one self-contained HTML file for an experiment, a monitoring window or a
quarter's judge calibration; it opens from disk, with no server and no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evalkeeper.cli.app import WarehouseOpt, app, console, fail, load_settings
from evalkeeper.errors import InputError
from evalkeeper.warehouse import Warehouse, WarehouseLocked


@app.command()
def report(
    experiment: Annotated[
        str | None, typer.Argument(help="Experiment id (or use --window / --calibration).")
    ] = None,
    baseline: Annotated[str, typer.Option(help="auto, or a baseline experiment id.")] = "auto",
    window: Annotated[str | None, typer.Option(help="A monitoring window's id.")] = None,
    calibration: Annotated[
        bool, typer.Option("--calibration", help="The judge calibration report.")
    ] = False,
    quarter: Annotated[
        str | None, typer.Option(help="With --calibration: 2026Q4 (default: the latest).")
    ] = None,
    history: Annotated[int, typer.Option(help="Past runs the history shows.", min=1)] = 20,
    out: Annotated[Path | None, typer.Option(help="The HTML file to write.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print {report, verdict} as JSON.")
    ] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Write an HTML report (default: reports/ beside the warehouse) and print its path."""
    from evalkeeper.report.html import default_report_path

    chosen = [x for x in (experiment, window, calibration or None) if x is not None]
    if len(chosen) != 1:
        fail("report: give one of EXP, --window WIN or --calibration")
    if quarter and not calibration:
        fail("--quarter goes with --calibration")
    settings = load_settings(warehouse=warehouse)
    wh = Warehouse.from_settings(settings)
    try:
        if window:
            from evalkeeper.report.html.window import build_window_report

            page = build_window_report(wh, window, settings=settings)
            path = out or default_report_path(settings, "window", window)
        elif calibration:
            from evalkeeper.cli.calibrate import _choices
            from evalkeeper.report.html.calibration import build_calibration_report

            page = build_calibration_report(
                wh, settings=settings, quarter=quarter, choices=_choices()
            )
            path = out or default_report_path(settings, "calibration", quarter or "latest")
        else:
            from evalkeeper.report.html.experiment import build_experiment_report

            assert experiment is not None
            page = build_experiment_report(
                wh, experiment, settings=settings, baseline=baseline, history_runs=history
            )
            path = out or default_report_path(settings, "experiment", experiment)
    except (InputError, WarehouseLocked) as exc:
        fail(str(exc))
    written = page.write(path)
    if json_out:
        print(json.dumps({"report": str(written), "verdict": page.verdict}))
    else:
        console.print(f"report written: {written}", markup=False, highlight=False)
