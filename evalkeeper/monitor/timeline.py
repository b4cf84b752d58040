"""One window's story as stored: its row, every tick's per-evaluator counts and evidence,
the rollback decision (if any) and every delivery attempt. What the window report draws.

Read in one `Warehouse.reading()` (the spool laid over the file when another process holds
it), so a report written right after a spooled tick shows that tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evalkeeper.monitor.windows import UnknownWindow, Window
from evalkeeper.warehouse import Warehouse

_TICKS = """
    SELECT tick_at, hours_since_deploy, evaluator, baseline_traces, baseline_flags,
           baseline_errors, window_traces, window_flags, window_errors,
           window_traces - window_errors AS window_n,
           baseline_traces - baseline_errors AS baseline_n,
           baseline_rate, upper_bound, window_rate, statistic, threshold, decision, reason,
           window_decision, final
    FROM monitor_ticks WHERE window_id = ?
    ORDER BY tick_at, evaluator
"""

_DELIVERIES = """
    SELECT channel, attempt, attempted_at, ok, status_code, error
    FROM monitoring_deliveries WHERE window_id = ?
    ORDER BY attempted_at, channel, attempt
"""


@dataclass(frozen=True)
class Rollback:
    """The window's rollback decision (`monitoring_rollbacks`) and where it stands."""

    decided_at: datetime
    evaluator: str
    channels: list[str]
    payload: dict[str, Any]
    delivered: list[str]
    """Channels with a successful attempt."""

    @property
    def complete(self) -> bool:
        """Delivered on every channel it must be (as `monitor_windows.rollback_delivered`)."""
        return bool(self.channels) and set(self.channels) <= set(self.delivered)


@dataclass(frozen=True)
class Timeline:
    """A window and everything its ticks stored, oldest tick first."""

    window: Window
    ticks: list[dict[str, Any]]
    """Rows of the `monitor_ticks` view (one per tick and evaluator), plus `window_n` and
    `baseline_n` (the traces scored, errors apart)."""
    rollback: Rollback | None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    """`monitoring_deliveries` rows, in the order attempted."""

    @property
    def evaluators(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.ticks:
            seen.setdefault(row["evaluator"], None)
        return list(seen) or [e.name for e in self.window.config.evaluators]

    @property
    def decided_at(self) -> datetime | None:
        """When the window's decision was made: the rollback's time, else the tick that
        reached the window's end; None while no verdict is in (`continue`)."""
        if self.rollback is not None:
            return self.rollback.decided_at
        final = [r["tick_at"] for r in self.ticks if r["final"]]
        return final[0] if final else None

    @property
    def last_error(self) -> str | None:
        failed = [d for d in self.deliveries if not d["ok"]]
        return failed[-1]["error"] if failed else None


def window_timeline(warehouse: Warehouse, window_id: str) -> Timeline:
    """The window `window_id` as stored; `UnknownWindow` (an `InputError`) when there is
    none, naming how to list them."""
    with warehouse.reading() as con:
        frame = con.sql(
            "SELECT * FROM monitoring_windows WHERE window_id = ?", params=[window_id]
        ).pl()
        if not frame.height:
            raise UnknownWindow(
                f"unknown window {window_id!r} in {warehouse.path}: `evalkeeper monitor "
                "status` lists the windows"
            )
        window = Window.from_row(frame.row(0, named=True))
        ticks = list(con.sql(_TICKS, params=[window_id]).pl().iter_rows(named=True))
        deliveries = list(con.sql(_DELIVERIES, params=[window_id]).pl().iter_rows(named=True))
        decided = con.sql(
            "SELECT decided_at, evaluator, channels, payload FROM monitoring_rollbacks "
            "WHERE window_id = ?",
            params=[window_id],
        ).pl()
    rollback = None
    if decided.height:
        row = decided.row(0, named=True)
        rollback = Rollback(
            decided_at=row["decided_at"],
            evaluator=row["evaluator"],
            channels=list(json.loads(row["channels"])),
            payload=json.loads(row["payload"]),
            delivered=sorted({d["channel"] for d in deliveries if d["ok"]}),
        )
    return Timeline(window=window, ticks=ticks, rollback=rollback, deliveries=deliveries)
