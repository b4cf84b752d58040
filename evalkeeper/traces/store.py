"""The trace store: redacted traces and source cursors in the warehouse, and their readers.

Traces are written in batches, each with the cursor of the source after its last line
(table `trace_cursors`, one row per source spec) in the same transaction: after a crash
the next ingest starts exactly after the last batch committed. `traces` is keyed by
`trace_id` with the `ignore` policy, so reading the same trace again never duplicates it.
While another process holds the warehouse, batches go to the spool with their cursor, and
the next cursor lookup reads the spool first (it is newer than the warehouse). Reads fall
back to a read-only open of the file when a reader (an analyst's session) holds it; only a
writer holding it for longer than the lock wait makes them fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from evalkeeper.models import canonical_json, utcnow
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace
from evalkeeper.traces.sources import Cursor
from evalkeeper.warehouse import Warehouse, WarehouseLocked
from evalkeeper.warehouse.tables import table_frame

JSON_COLUMNS = ("inputs", "outputs", "tool_calls", "context", "feedback", "metadata")
TRACE_FIELDS = tuple(Trace.model_fields)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def traces_frame(traces: list[Trace], source: str, ingested_at: datetime) -> pl.DataFrame:
    """Rows of the `traces` table (JSON columns as canonical JSON text)."""
    rows = []
    for t in traces:
        data = t.model_dump(mode="python")
        for col in JSON_COLUMNS:
            data[col] = _json_or_none(data[col])
        data["source"] = source
        data["ingested_at"] = ingested_at
        rows.append(data)
    return table_frame("traces", rows, orient="row")


def cursor_frame(spec: str, cursor: Cursor, updated_at: datetime) -> pl.DataFrame:
    return table_frame(
        "trace_cursors",
        {"source": [spec], "cursor": [canonical_json(cursor)], "updated_at": [updated_at]},
    )


@dataclass
class Written:
    """What became of one batch."""

    stored: int = 0  # new rows in `traces`
    duplicates: int = 0  # already stored (or repeated within the batch)
    spooled: int = 0  # in the spool, waiting for the lock (duplicates dropped on ingest)
    locked: bool = False  # the warehouse was locked: the batch went to the spool


def write_traces(
    wh: Warehouse, traces: list[Trace], spec: str, cursor: Cursor, *, wait: bool = True
) -> Written:
    """Store redacted traces and the source's cursor after them, in one batch.

    The duplicate count is taken under the same lock as the write. When the warehouse
    stays locked (`wait=False`: no wait at all, for the batches after a first timeout),
    the batch is spooled whole, cursor included.
    """
    now = utcnow()
    frame = traces_frame(traces, spec, now)
    unique = frame.unique(subset="trace_id", keep="first", maintain_order=True)
    repeated = frame.height - unique.height
    batch = {"traces": unique, "trace_cursors": cursor_frame(spec, cursor, now)}
    try:
        with wh.connect(wait_s=None if wait else 0) as con:
            wh.ingest_spool()  # older batches first, so that they count as stored before ours
            row = con.execute(
                "SELECT count(*) FROM traces WHERE trace_id IN (SELECT unnest(?))",
                [unique["trace_id"].to_list()],
            ).fetchone()
            known = int(row[0]) if row else 0
            wh.write(batch)
        return Written(stored=unique.height - known, duplicates=known + repeated)
    except WarehouseLocked:
        now_wh = Warehouse(wh.path, lock_wait_s=0, spool_dir=wh.spool_dir)
        now_wh.write(batch)  # spools (or, when the lock was just freed, writes)
        return Written(spooled=unique.height, duplicates=repeated, locked=True)


def load_cursor(wh: Warehouse, spec: str) -> Cursor | None:
    """The stored cursor of a source: the spool's newest, else the warehouse's; None when the
    source was never read. WarehouseLocked when only the locked warehouse could tell."""
    spooled = wh.spooled_frame("trace_cursors")
    if spooled is not None:
        mine = spooled.filter(pl.col("source") == spec)
        if mine.height:
            return dict(json.loads(mine["cursor"][-1]))
    try:
        frame = read_frame(wh, "SELECT cursor FROM trace_cursors WHERE source = ?", [spec])
    except WarehouseLocked as exc:
        raise WarehouseLocked(
            f"{exc} The position of {spec} is stored there, so nothing was read."
        ) from exc
    return dict(json.loads(frame["cursor"][0])) if frame.height else None


def read_frame(wh: Warehouse, sql: str, params: list[Any]) -> pl.DataFrame:
    """A query's result; when another process holds the file, through a read-only open of
    it (DuckDB allows many readers). WarehouseLocked when a writer holds it."""
    try:
        return wh.query(sql, params)
    except WarehouseLocked as locked:
        try:
            con = duckdb.connect(str(wh.path), read_only=True)
        except duckdb.IOException:
            raise locked from None
        try:
            return con.sql(sql, params=params or None).pl()
        except duckdb.CatalogException:  # a file from before the trace tables: none stored
            return pl.DataFrame()
        finally:
            con.close()


# -- readers ---------------------------------------------------------------------------


def trace_from_row(row: dict[str, Any]) -> Trace:
    """A `traces` row (JSON columns as text) back into the model."""
    data = {k: row[k] for k in TRACE_FIELDS}
    for col in JSON_COLUMNS:
        if isinstance(data[col], str):
            data[col] = json.loads(data[col])
    for col in ("tool_calls", "context", "metadata"):
        if data[col] is None:
            data.pop(col)
    return Trace.model_validate(data)


_COLUMNS = ", ".join(f'"{c}"' for c in TRACE_FIELDS)


def get_trace(settings: Settings, trace_id: str) -> Trace | None:
    """The stored trace with this id, or None."""
    frame = read_frame(
        Warehouse.from_settings(settings),
        f"SELECT {_COLUMNS} FROM traces WHERE trace_id = ?",
        [trace_id],
    )
    return trace_from_row(frame.row(0, named=True)) if frame.height else None


def list_traces(
    settings: Settings,
    *,
    since: datetime | None = None,
    service: str | None = None,
    version: str | None = None,
    limit: int = 50,
) -> list[Trace]:
    """Stored traces, newest first, filtered by start time, service and agent version."""
    where, params = _filters(since=since, service=service, version=version)
    frame = read_frame(
        Warehouse.from_settings(settings),
        f"SELECT {_COLUMNS} FROM traces {where} ORDER BY time DESC, trace_id LIMIT ?",
        [*params, limit],
    )
    return [trace_from_row(r) for r in frame.iter_rows(named=True)]


def count_traces(
    settings: Settings,
    *,
    since: datetime | None = None,
    service: str | None = None,
    version: str | None = None,
) -> int:
    """How many stored traces match the filters of `list_traces`."""
    where, params = _filters(since=since, service=service, version=version)
    frame = read_frame(
        Warehouse.from_settings(settings), f"SELECT count(*) AS n FROM traces {where}", params
    )
    return int(frame["n"][0]) if frame.height else 0


def _filters(
    *, since: datetime | None, service: str | None, version: str | None
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for sql, value in (("time >= ?", since), ("service = ?", service), ("version = ?", version)):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
