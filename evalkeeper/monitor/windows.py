"""A monitoring window as data: one row of `monitoring_windows`, opened by a deploy.

A window watches one deploy of one service: the new version's traces from the deploy time
until `ends_at` (the config's `window_hours`), against a baseline of the previous
version's traces before it. Its id is a hash of (service, deploy id), so the same deploy
announced twice (a webhook redelivered, a CLI call after a webhook) opens one window and
the second call gets the existing one. A window is `open` until a tick decides `rollback`,
reaches its end (`stable` or `inconclusive`), or an operator stops it; `decision` is the
latest tick's (`continue` until then).

Opening writes the row and nothing else; the first tick (run right after by whoever
opened it) does the work. Every write is one short transaction: `open_windows` opens a
whole batch of deploys under one lock, so a burst of webhooks costs one commit.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalkeeper.errors import InputError
from evalkeeper.models import canonical_json, content_hash, utcnow
from evalkeeper.monitor.config import MonitorConfig, load_config
from evalkeeper.settings import Settings
from evalkeeper.traces.model import iso_utc, to_utc
from evalkeeper.traces.store import read_frame
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame

State = Literal["open", "closed"]
Decision = Literal["continue", "rollback", "stable", "inconclusive"]
OpenedBy = Literal["webhook", "github", "cli", "flow"]


class UnknownWindow(InputError, KeyError):
    """No window with that id; the message says how to list them."""


class DeployEvent(BaseModel):
    """A deploy that finished: what the deploy webhook carries (and `monitor start` takes)."""

    model_config = ConfigDict(extra="ignore")

    service: str = Field(min_length=1, description="The deployed service (its monitor config).")
    environment: str | None = Field(None, description="Deployment environment, e.g. `prod`.")
    version: str = Field(min_length=1, description="The version now deployed.")
    deploy_id: str = Field(min_length=1, description="Unique id of this deploy.")
    time: datetime = Field(description="When the deploy completed (ISO 8601 with an offset).")
    previous_version: str | None = Field(
        None, description="The version before (its traces are the baseline); any other when unset."
    )

    @field_validator("time", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime:
        return to_utc(value)


class Window(BaseModel):
    """One monitoring window: a `monitoring_windows` row."""

    window_id: str = Field(description="`win-` + hash of (service, deploy id).")
    deploy_id: str = Field(description="The deploy it watches.")
    service: str = Field(description="The service.")
    environment: str | None = Field(None, description="Deployment environment.")
    version: str = Field(description="The version watched.")
    previous_version: str | None = Field(None, description="The baseline's version.")
    deployed_at: datetime = Field(description="Deploy time: the window starts here.")
    ends_at: datetime = Field(description="The window's end (deploy time + window_hours).")
    baseline_start: datetime = Field(description="Start of the baseline period.")
    baseline_end: datetime = Field(description="End of the baseline period (the deploy).")
    config: MonitorConfig = Field(description="The service's config, as of the opening.")
    source: str = Field(description="Who opened it: webhook, github, cli or flow.")
    state: State = Field("open", description="open, or closed (decided, ended or stopped).")
    decision: Decision = Field("continue", description="The latest tick's decision.")
    reasons: list[str] = Field(default_factory=list, description="Why, in words.")
    last_tick_at: datetime | None = Field(None, description="As-of time of the latest tick.")
    opened_at: datetime = Field(default_factory=utcnow, description="When the row was written.")
    closed_at: datetime | None = Field(None, description="When it closed.")
    updated_at: datetime = Field(default_factory=utcnow, description="Last write of the row.")

    def row(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        data["config"] = canonical_json(self.config.model_dump(mode="json"))
        data["reasons"] = canonical_json(self.reasons)
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Window:
        data = dict(row)
        data["config"] = json.loads(data["config"])
        # a window opened before the `spending` test keeps the test it started with
        data["config"].setdefault("method", "mixture")
        data["reasons"] = json.loads(data["reasons"])
        return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})

    def as_json(self) -> dict[str, Any]:
        """The window's fields for JSON output (times as ISO 8601 with `Z`)."""
        out = self.model_dump(mode="json", exclude={"config"})
        for key in ("deployed_at", "ends_at", "baseline_start", "baseline_end", "opened_at"):
            out[key] = iso_utc(getattr(self, key))
        for key in ("last_tick_at", "closed_at", "updated_at"):
            value = getattr(self, key)
            out[key] = None if value is None else iso_utc(value)
        return out


class Opened(BaseModel):
    """What `open_windows` did for one deploy."""

    window: Window = Field(description="The window (new, or the one that already existed).")
    created: bool = Field(description="False: the deploy (or delivery) was already known.")


def window_id_for(service: str, deploy_id: str) -> str:
    return "win-" + content_hash({"service": service, "deploy_id": deploy_id}, 16)


def new_window(settings: Settings, event: DeployEvent, opened_by: str) -> Window:
    """The window a deploy opens (not stored); the service's config is read now."""
    config = load_config(settings, event.service)
    return Window(
        window_id=window_id_for(event.service, event.deploy_id),
        deploy_id=event.deploy_id,
        service=event.service,
        environment=event.environment,
        version=event.version,
        previous_version=event.previous_version,
        deployed_at=event.time,
        ends_at=event.time + timedelta(hours=config.window_hours),
        baseline_start=event.time - timedelta(days=config.baseline_days),
        baseline_end=event.time,
        config=config,
        source=opened_by,
    )


def window_frame(windows: list[Window]) -> pl.DataFrame:
    return table_frame("monitoring_windows", [w.row() for w in windows], orient="row")


def open_windows(
    settings: Settings,
    requests: list[tuple[Window, str | None]],
    *,
    received_at: datetime | None = None,
) -> list[Opened]:
    """Store new windows (each with its webhook delivery id, if any) in one transaction.

    A window whose id is stored, or whose delivery id was seen, is answered with the stored
    window and left as it is."""
    wh = Warehouse.from_settings(settings)
    now = received_at or utcnow()
    with wh.connect() as con:
        ids = [w.window_id for w, _ in requests]
        deliveries = [d for _, d in requests if d]
        known = {
            r["window_id"]: Window.from_row(r)
            for r in con.sql(
                "SELECT * FROM monitoring_windows WHERE window_id IN (SELECT unnest(?))",
                params=[ids],
            )
            .pl()
            .iter_rows(named=True)
        }
        seen = dict(
            con.execute(
                "SELECT delivery_id, window_id FROM monitoring_webhooks "
                "WHERE delivery_id IN (SELECT unnest(?))",
                [deliveries],
            ).fetchall()
        )
        for window_id in set(seen.values()) - set(known):
            frame = con.sql(
                "SELECT * FROM monitoring_windows WHERE window_id = ?", params=[window_id]
            ).pl()
            if frame.height:
                known[window_id] = Window.from_row(frame.row(0, named=True))
        out: list[Opened] = []
        new: dict[str, Window] = {}
        hooks: list[dict[str, Any]] = []
        for window, delivery in requests:
            existing_id = seen.get(delivery) if delivery else None
            existing = known.get(existing_id or window.window_id) or new.get(window.window_id)
            if existing is not None:
                out.append(Opened(window=existing, created=False))
                continue
            new[window.window_id] = window
            out.append(Opened(window=window, created=True))
            if delivery:
                seen[delivery] = window.window_id
                hooks.append(
                    {
                        "delivery_id": delivery,
                        "kind": window.source,
                        "window_id": window.window_id,
                        "received_at": now,
                    }
                )
        if new:
            wh.write(
                {
                    "monitoring_windows": window_frame(list(new.values())),
                    "monitoring_webhooks": table_frame("monitoring_webhooks", hooks, orient="row"),
                },
                spool_ok=False,
            )
    return out


def open_window(
    settings: Settings, event: DeployEvent, opened_by: str, delivery_id: str | None = None
) -> Opened:
    """Open the window of one deploy (or get the one it already opened)."""
    return open_windows(settings, [(new_window(settings, event, opened_by), delivery_id)])[0]


def load_window(settings: Settings, window_id: str) -> Window:
    frame = read_frame(
        Warehouse.from_settings(settings),
        "SELECT * FROM monitoring_windows WHERE window_id = ?",
        [window_id],
    )
    if not frame.height:
        raise UnknownWindow(
            f"unknown window {window_id!r} in {settings.warehouse}: `evalkeeper monitor "
            "status` lists the windows"
        )
    return Window.from_row(frame.row(0, named=True))


def list_windows(settings: Settings, *, state: State | None = None) -> list[Window]:
    """Stored windows, newest deploy first."""
    where = "WHERE state = ?" if state else ""
    frame = read_frame(
        Warehouse.from_settings(settings),
        f"SELECT * FROM monitoring_windows {where} ORDER BY deployed_at DESC, window_id",
        [state] if state else [],
    )
    return [Window.from_row(r) for r in frame.iter_rows(named=True)]


def save_window(wh: Warehouse, window: Window) -> None:
    wh.write({"monitoring_windows": window_frame([window])}, spool_ok=False)


def stop_window(settings: Settings, window_id: str, *, now: datetime | None = None) -> Window:
    """Close a window by hand: it keeps its latest decision; no tick advances it again."""
    window = load_window(settings, window_id)
    if window.state == "closed":
        return window
    when = now or utcnow()
    stopped = window.model_copy(
        update={
            "state": "closed",
            "closed_at": when,
            "updated_at": utcnow(),
            "reasons": [*window.reasons, f"stopped by an operator at {iso_utc(when)}"],
        }
    )
    save_window(Warehouse.from_settings(settings), stopped)
    return stopped


STATUS_COLUMNS = (
    "window_id", "deploy_id", "service", "environment", "version", "previous_version",
    "state", "decision", "deployed_at", "ends_at", "last_tick_at", "window_traces",
    "baseline_traces", "rollback_decided", "rollback_decided_at", "rollback_evaluator",
    "rollback_delivered", "failed_delivery_attempts", "last_delivery_error", "reasons",
)  # fmt: skip


def window_status(settings: Settings, window_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of the `monitor_windows` view (newest deploy first): each window's state,
    decision, traffic and whether its rollback (if any) is delivered."""
    where = "WHERE window_id = ?" if window_id else ""
    frame = read_frame(
        Warehouse.from_settings(settings),
        f"SELECT {', '.join(STATUS_COLUMNS)} FROM monitor_windows {where} "
        "ORDER BY deployed_at DESC, window_id",
        [window_id] if window_id else [],
    )
    if window_id and not frame.height:
        raise UnknownWindow(
            f"unknown window {window_id!r} in {settings.warehouse}: `evalkeeper monitor "
            "status` lists the windows"
        )
    rows = []
    for row in frame.iter_rows(named=True):
        row["reasons"] = json.loads(row["reasons"]) if row["reasons"] else []
        rows.append(row)
    return rows
