"""`evalkeeper monitor start|status|stop|tick`: post-deploy monitoring windows by hand.

`start` opens a window the way a deploy webhook does and runs its first tick; `tick`
advances every open window (or one) as of `--now` (default: the clock) and delivers
pending rollbacks. `tick` exits 0, or 1 when a rollback decision's delivery failed on a
configured channel (it is retried by the next tick; nothing is dropped), 2 on bad input.
A decision with no channel configured is said once and exits 0: the first tick with a
channel delivers it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from evalkeeper.cli.app import (
    EXIT_OK,
    EXIT_REGRESSION,
    WarehouseOpt,
    console,
    err_console,
    fail,
    load_settings,
    output_format,
)
from evalkeeper.cli.monitor import monitor_app
from evalkeeper.models import utcnow
from evalkeeper.monitor.config import DEFAULT_EVALUATORS, MonitorConfigError, config_path
from evalkeeper.monitor.tick import TickSummary, tick
from evalkeeper.monitor.windows import (
    DeployEvent,
    UnknownWindow,
    open_window,
    stop_window,
    window_status,
)
from evalkeeper.report.output import ROW_FORMATS, emit_rows, jsonable
from evalkeeper.settings import Settings
from evalkeeper.traces.model import iso_utc, to_utc
from evalkeeper.traces.store import count_traces
from evalkeeper.warehouse import WarehouseLocked

EXIT_UNDELIVERED = EXIT_REGRESSION
"""`monitor tick`: a rollback decision's delivery failed on a configured channel."""

TABLE_COLUMNS = (
    "window_id", "service", "version", "state", "decision", "window_traces",
    "baseline_traces", "last_tick_at", "rollback_delivered",
)  # fmt: skip
JSON_KEYS = (
    "window_id", "deploy_id", "service", "environment", "version", "previous_version",
    "state", "decision", "rollback_delivered", "rollback_decided", "rollback_decided_at",
    "rollback_evaluator", "deployed_at", "ends_at", "last_tick_at", "window_traces",
    "baseline_traces", "failed_delivery_attempts", "last_delivery_error", "reasons",
)  # fmt: skip

NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Evaluate as of this time (ISO 8601 with offset; default now)."),
]


def _time(option: str, value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        return to_utc(value)
    except ValueError as exc:
        fail(f"{option} {value!r}: {exc}")


def _emitter(settings: Settings) -> Any:
    from tasks.events import prefect_emitter

    return prefect_emitter(settings)


def _run_tick(settings: Settings, **kwargs: Any) -> TickSummary:
    return asyncio.run(tick(settings, emitter=_emitter(settings), **kwargs))


def _print_tick(summary: TickSummary) -> None:
    if summary.ingest is not None:
        s = summary.ingest
        console.print(
            f"ingested {s.source}: read {s.read:,}, stored {s.stored:,}, bad lines {s.bad_lines:,}",
            highlight=False,
            soft_wrap=True,
        )
    for w in summary.windows:
        style = {"rollback": "bold red", "inconclusive": "yellow"}.get(w.decision, "green")
        console.print(
            f"{w.window_id} {w.service} {w.version} as of {iso_utc(w.tick_at)}: "
            f"[{style}]{w.decision}[/] ({w.state}); scored {w.new_window_traces:,} window and "
            f"{w.new_baseline_traces:,} baseline trace(s)",
            highlight=False,
            soft_wrap=True,
        )
        for e in w.evaluators:
            rate = "-" if e.window_rate is None else f"{e.window_rate:.3f}"
            base = "-" if e.baseline_rate is None else f"{e.baseline_rate:.3f}"
            console.print(
                f"  {e.evaluator}: {e.decision}; window {e.window_flags}/{e.window_n} "
                f"(rate {rate}, {e.window_errors} errors), baseline "
                f"{e.baseline_flags}/{e.baseline_n} (rate {base}); {e.reason or ''}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    for d in summary.deliveries:
        if d.complete:
            console.print(f"rollback of {d.window_id} delivered on {', '.join(d.delivered)}")
    for problem in summary.problems:
        err_console.print(f"[bold red]{'!' * 3}[/] {problem}", highlight=False, soft_wrap=True)


def _check_service(settings: Settings, service: str) -> None:
    """A service with no config file: refused when nothing of it is known (no stored traces,
    no trace source the ticks would read), else a warning that the defaults watch it."""
    path = config_path(settings, service)
    if path.exists():
        return
    how = (
        f"add {path} (sample_rate, window_hours, [[evaluators]]: docs/monitoring.md) "
        f"or point EVALKEEPER_MONITORS_DIR at the folder that holds it"
    )
    stored = count_traces(settings, service=service)
    if not stored and settings.monitor.traces is None:
        fail(
            f"unknown service {service!r}: no monitor config in {settings.monitor.monitors_dir} "
            f"and no stored traces of it; {how}, and ingest its traces "
            "(`evalkeeper traces ingest`) or set EVALKEEPER_TRACES"
        )
    seen = f"{stored:,} stored trace(s)" if stored else "no stored traces yet"
    err_console.print(
        Text(
            f"warning: no monitor config for {service!r} ({seen}): watching it with the "
            f"defaults ({', '.join(DEFAULT_EVALUATORS)}, every trace); {how}"
        ),
        soft_wrap=True,
    )


@monitor_app.command("start")
def start_command(
    service: Annotated[str, typer.Option(help="The deployed service.")],
    version: Annotated[str, typer.Option(help="The version now deployed.")],
    previous_version: Annotated[
        str | None, typer.Option(help="The version before (the baseline's).")
    ] = None,
    deploy_id: Annotated[
        str | None, typer.Option(help="Unique deploy id (default: service, version, time).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Deploy time (ISO 8601 with offset; default now).")
    ] = None,
    environment: Annotated[str | None, typer.Option(help="Deployment environment.")] = None,
    now: NowOpt = None,
    first_tick: Annotated[
        bool, typer.Option("--tick/--no-tick", help="Run the first tick at once.")
    ] = True,
    format: Annotated[str, typer.Option(help="table or json.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Open a monitoring window for a deploy (the same as a deploy webhook), then tick it."""
    fmt = output_format(format, ("table", "json"))
    settings = load_settings(warehouse=warehouse)
    deployed = _time("--at", at)
    event = DeployEvent(
        service=service,
        version=version,
        previous_version=previous_version,
        environment=environment,
        deploy_id=deploy_id or f"{service}:{version}:{iso_utc(deployed)}",
        time=deployed,
    )
    try:
        _check_service(settings, service)
        opened = open_window(settings, event, "cli")
    except (MonitorConfigError, WarehouseLocked) as exc:
        fail(str(exc))
    w = opened.window
    summary = None
    if first_tick and opened.created:
        summary = _run_tick(settings, now=_time("--now", now), window_id=w.window_id)
    if fmt == "json":
        out = {"window": w.as_json(), "created": opened.created}
        if summary is not None:
            out["tick"] = summary.model_dump(mode="json")
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return
    verb = "opened" if opened.created else "already open for this deploy:"
    console.print(
        f"{verb} window [bold]{w.window_id}[/] for {w.service} {w.version} (deploy "
        f"{w.deploy_id}), until {iso_utc(w.ends_at)}; baseline "
        f"{w.previous_version or 'any other version'} from {iso_utc(w.baseline_start)}",
        highlight=False,
        soft_wrap=True,
    )
    if summary is not None:
        _print_tick(summary)


@monitor_app.command("status")
def status_command(
    window: Annotated[str | None, typer.Argument(help="One window id (default: all).")] = None,
    format: Annotated[str, typer.Option(help="table, csv, json or markdown.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Show monitoring windows: state, decision, traffic, rollback delivery (json: an array;
    csv: every field of json, one row per window)."""
    fmt = output_format(format, ROW_FORMATS)
    settings = load_settings(warehouse=warehouse)
    try:
        rows = window_status(settings, window)
    except (UnknownWindow, WarehouseLocked) as exc:
        fail(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    if fmt == "json":
        print(json.dumps([{k: jsonable(r[k]) for k in JSON_KEYS} for r in rows], indent=2))
        return
    if fmt in ("csv", "markdown"):
        emit_rows(rows, fmt, JSON_KEYS if fmt == "csv" else TABLE_COLUMNS)
        return
    if not rows:
        console.print(f"no monitoring windows in {settings.warehouse}")
        return
    emit_rows(rows, "table", TABLE_COLUMNS)
    for r in rows:
        if r["rollback_decided"] and not r["rollback_delivered"]:
            err_console.print(
                f"[bold red]rollback of {r['window_id']} NOT DELIVERED[/]: "
                f"{r['last_delivery_error'] or 'no attempt yet'}; the next tick retries it",
                highlight=False,
                soft_wrap=True,
            )


@monitor_app.command("stop")
def stop_command(
    window: Annotated[str, typer.Argument(help="The window id.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Close a window by hand: no tick advances it again (its decision is kept)."""
    settings = load_settings(warehouse=warehouse)
    try:
        stopped = stop_window(settings, window)
    except (UnknownWindow, WarehouseLocked) as exc:
        fail(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    console.print(f"window {stopped.window_id}: {stopped.state}, decision {stopped.decision}")


@monitor_app.command("tick")
def tick_command(
    window: Annotated[str | None, typer.Option("--window", help="Only this window.")] = None,
    now: NowOpt = None,
    format: Annotated[str, typer.Option(help="table or json.")] = "table",
    warehouse: WarehouseOpt = None,
) -> None:
    """Advance every open window as of --now and deliver pending rollbacks.

    Exit 0; 1 when a rollback's delivery failed (the next tick retries it); 2 on error."""
    fmt = output_format(format, ("table", "json"))
    settings = load_settings(warehouse=warehouse)
    summary = _run_tick(settings, now=_time("--now", now), window_id=window)
    if fmt == "json":
        print(summary.model_dump_json(indent=2))
    else:
        _print_tick(summary)
    undelivered = any(d.status == "failed" for d in summary.deliveries)
    raise typer.Exit(EXIT_UNDELIVERED if undelivered else EXIT_OK)
