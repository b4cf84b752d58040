"""`evalkeeper judges`: the LLM judges, their model pin, prompt version and status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from evalkeeper.cli.app import app, console, fail, load_settings, output_format
from evalkeeper.llm import is_pinned
from evalkeeper.report.output import ROW_FORMATS, emit_rows
from evalkeeper.warehouse import Warehouse, WarehouseLocked


def judge_rows(settings: Any) -> list[dict[str, Any]]:
    """One row per bundled judge: pin, prompt version, and status from the `judges` table
    (a judge with no row there is active)."""
    from evaluators.judges import JUDGES

    recorded: dict[str, dict[str, Any]] = {}
    history: dict[str, list[str]] = {}
    note = ""
    if Path(settings.warehouse).exists():
        try:
            frame = Warehouse.from_settings(settings).query(
                "SELECT judge, model, prompt_version, status, status_reason, updated_at FROM judges"
            )
            recorded = {r["judge"]: r for r in frame.iter_rows(named=True)}
            history = _history(settings)
        except WarehouseLocked as exc:
            note = f"status unknown ({exc})"
    model = settings.judge.model
    pinned: bool | str | None = None
    if model is not None:
        pinned = is_pinned(model) or (
            "allowed unpinned" if settings.judge.allow_unpinned else False
        )
    rows = []
    for judge in JUDGES.values():
        rec = recorded.get(judge.name)
        reason = (rec or {}).get("status_reason") or ""
        if rec and rec.get("prompt_version") and rec["prompt_version"] != judge.prompt_version:
            reason = (reason + "; " if reason else "") + (
                f"status set for prompt {rec['prompt_version']}"
            )
        rows.append(
            {
                "judge": judge.name,
                "kind": judge.kind,
                "model": model,
                "pinned": pinned,
                "prompt_version": judge.prompt_version,
                "choices": list(judge.choices),
                "votes": settings.judge.votes,
                "status": (rec or {}).get("status") or ("unknown" if note else "active"),
                "note": note or reason,
                "description": judge.description,
                "history": history.get(judge.name, []),
            }
        )
    return rows


def _history(settings: Any) -> dict[str, list[str]]:
    """Judge -> its status changes, oldest first: `2026-12-01 retired (prompt …, model …):
    agreement 0.62, …` (from calibration)."""
    from evalkeeper.calibration import status_history

    out: dict[str, list[str]] = {}
    wh = Warehouse.from_settings(settings)
    for h in status_history(wh):
        out.setdefault(h.judge, []).append(
            f"{h.changed_at:%Y-%m-%d} {h.status} (prompt {h.prompt_version}, model "
            f"{h.judge_model}): {h.reason}"
        )
    return out


JUDGE_COLUMNS = (
    "judge", "kind", "model", "pinned", "prompt_version", "choices", "votes", "status", "note",
    "description", "history",
)  # fmt: skip


@app.command()
def judges(
    format: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = (
        "table"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    warehouse: Annotated[
        Path | None,
        typer.Option("--warehouse", help="DuckDB file (default data/warehouse.duckdb)."),
    ] = None,
) -> None:
    """List the LLM judges: model pin, prompt version, votes and status (active/retired)."""
    fmt = output_format(format, ROW_FORMATS)
    if as_json and fmt not in ("table", "json"):
        fail(f"--json and --format {fmt}: give one of them")
    fmt = "json" if as_json else fmt
    settings = load_settings(warehouse=warehouse)
    rows = judge_rows(settings)
    if fmt != "table":
        emit_rows(rows, fmt, JUDGE_COLUMNS)
        return
    endpoint = settings.judge.base_url or "not configured"
    t = Table(title=f"LLM judges (endpoint: {endpoint})")
    for col in ("judge", "kind", "model pin", "prompt version", "votes", "status"):
        t.add_column(col, no_wrap=col != "model pin")
    t.add_column("note")
    for r in rows:
        if r["model"] is None:
            pin = "[yellow]not configured[/]"
        elif r["pinned"] is True:
            pin = r["model"]
        elif r["pinned"] == "allowed unpinned":
            pin = f"{r['model']} [yellow](unpinned, allowed)[/]"
        else:
            pin = f"{r['model']} [red](unpinned: refused)[/]"
        status = r["status"] if r["status"] in ("active", "healthy") else f"[red]{r['status']}[/]"
        t.add_row(
            r["judge"], r["kind"], pin, r["prompt_version"], str(r["votes"]), status, r["note"]
        )
    console.print(t)
    for r in rows:
        if r["history"]:
            console.print(f"status history of {r['judge']}:", highlight=False)
            for line in r["history"]:
                console.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
    if settings.judge.base_url is None or settings.judge.model is None:
        console.print(
            "judges are skipped until configured: set EVALKEEPER_JUDGE_BASE_URL and "
            "EVALKEEPER_JUDGE_MODEL (and EVALKEEPER_JUDGE_API_KEY)"
        )
