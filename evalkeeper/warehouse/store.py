"""The DuckDB warehouse: short write transactions, lock retry, and a durable spool.

DuckDB lets one process write a database file at a time, and a process holding it open
read-only keeps writers out. A write here opens the file, commits one batch and closes
it again, so the lock is held for milliseconds. When the lock stays taken longer than
`lock_wait_s` (an analyst's session, a second flow), the batch is written to the spool
as Parquet instead — atomically, one directory per batch — and ingested, in order, by the
next write (or read) that gets the lock. A process pays the lock wait once: after a batch
went to the spool, its next writes try the lock only briefly (`SPOOLING_RETRY_S`) until one
gets it. Reads meanwhile see the spooled rows too (`Warehouse.reading`: the file opened
read-only, which an analyst's connection allows, with the spool laid over it). Ingesting a
batch twice (a crash between commit and
clean-up) changes nothing: every table but `scores` has a primary key and is written with
`INSERT OR IGNORE` or `OR REPLACE` (its policy in `evalkeeper.warehouse.tables`), and a
score is inserted only with a run that the same batch inserted (policy `with_run`; see
docs/warehouse.md, "How the rows of `scores` are kept unique").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import polars as pl

from evalkeeper.errors import InputError
from evalkeeper.warehouse.schema import MIGRATIONS
from evalkeeper.warehouse.tables import (
    RUN_KEY,
    SCHEMA_VERSION,
    SCHEMA_VIEWS,
    SUPERSEDE,
    TABLES,
    WRITE_POLICY,
)
from evalkeeper.warehouse.views import VIEWS

if TYPE_CHECKING:
    from evalkeeper.settings import Settings

Frame = pl.DataFrame
T = TypeVar("T")


_MIGRATE_LOCK = threading.Lock()
_MIGRATED: set[str] = set()  # files this process has brought up to date


class _Slot:
    """One warehouse file's attachment in this process."""

    def __init__(self, key: str) -> None:
        self.alias = "wh_" + hashlib.sha256(key.encode()).hexdigest()[:12]
        self.lock = threading.RLock()
        self.depth = 0
        self.checkpoint = False  # checkpoint before the DETACH, whatever the WAL's size


_SLOTS: dict[str, _Slot] = {}
# Files whose lock this process last found held past the lock wait (a batch was spooled):
# (pid, resolved path). Its next spoolable writes try the lock for `SPOOLING_RETRY_S` only,
# so a run pays the lock wait once, not once per batch; the first write that gets the lock
# ends it. The pid keeps a forked child from inheriting it.
_SPOOLING: set[tuple[int, str]] = set()

SPOOLING_RETRY_S = 0.1
"""How long a write waits for the lock while this process is spooling (see `_SPOOLING`):
long enough for another writer's commit (milliseconds), short beside the lock wait."""
_HOST: tuple[int, duckdb.DuckDBPyConnection] | None = None
_HOST_LOCK = threading.Lock()


# A small commit stays in the file's write-ahead log instead of being checkpointed on
# DETACH: a checkpoint costs ~11 ms whatever the batch size, replaying the log on the next
# ATTACH ~1.5 ms per 32 KiB (a 31-row batch of runs and scores). Past this size the
# connection checkpoints before it detaches, so the log (and the replay) stays small.
WAL_CHECKPOINT_BYTES = 128 * 1024


def _host() -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB instance (a forked child makes its own)."""
    global _HOST
    with _HOST_LOCK:
        if _HOST is None or _HOST[0] != os.getpid():
            con = duckdb.connect(":memory:")
            con.execute("SET GLOBAL checkpoint_on_detach = 'DISABLED'")
            _HOST = (os.getpid(), con)
            _SLOTS.clear()
        return _HOST[1]


def _cursor() -> duckdb.DuckDBPyConnection:
    """A connection of its own to the host instance, for one thread's use. The host
    connection object is not thread-safe, so cursors are taken from it under the lock."""
    host = _host()
    with _HOST_LOCK:
        return host.cursor()


def _run(sql: str, params: list[Any] | None = None) -> None:
    """One statement on its own cursor."""
    cur = _cursor()
    try:
        cur.execute(sql, params or [])
    finally:
        cur.close()


def _wal_bytes(path: Path) -> int:
    try:
        return os.stat(f"{path}.wal").st_size
    except FileNotFoundError:
        return 0


def _slot(key: str) -> _Slot:
    _host()
    with _HOST_LOCK:
        if key not in _SLOTS:
            _SLOTS[key] = _Slot(key)
        return _SLOTS[key]


class WarehouseLocked(InputError, RuntimeError):
    """The warehouse file stayed locked by another process for longer than allowed."""


class WarehouseUnusable(InputError):
    """The warehouse path cannot be opened as a DuckDB file (a directory, another kind of
    file, no permission); the message names the path and the fix."""


FIX_PATH = "point --warehouse or EVALKEEPER_WAREHOUSE at a DuckDB file (created if missing)"


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    # the last: this process has the file open read-only (a snapshot of `reading`) in
    # the same thread; a write there waits, then spools, as for another process's lock
    return any(
        marker in text
        for marker in ("Could not set lock", "Conflicting lock", "Unique file handle conflict")
    )


class Warehouse:
    """One DuckDB file plus its spool directory."""

    def __init__(
        self, path: str | Path, *, lock_wait_s: float = 10.0, spool_dir: str | Path | None = None
    ) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        self.spool_dir = (
            Path(spool_dir) if spool_dir else self.path.with_name(self.path.name + ".spool")
        )
        self._migrated = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        """The warehouse the settings name: its file, lock wait and spool directory.
        The one place that reads the warehouse's settings."""
        return cls(
            settings.warehouse, lock_wait_s=settings.lock_wait_s, spool_dir=settings.spool_path
        )

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(
        self, *, wait_s: float | None = None, checkpoint: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-write connection, waiting (with backoff) for the file lock.

        The file is ATTACHed to one in-memory DuckDB instance per process and DETACHed on
        exit (which releases the lock for other processes): starting a DuckDB instance
        costs ~30 ms here, an attach cycle ~2 ms. A file is attached once per process at
        a time (threads take turns; a nested `connect` in the same thread shares it).

        The write-ahead log is checkpointed into the file before DETACH once it passes
        `WAL_CHECKPOINT_BYTES`, or always with `checkpoint=True`.
        """
        if self.path.is_dir():
            raise WarehouseUnusable(
                f"{self.path}: a directory, not a warehouse file; {FIX_PATH}, e.g. "
                f"{self.path / 'warehouse.duckdb'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseUnusable(
                f"{self.path}: cannot create its directory ({exc.strerror}); {FIX_PATH}"
            ) from exc
        key = str(self.path.resolve())
        slot = _slot(key)
        with slot.lock:
            if slot.depth == 0:
                self._attach(slot, key, wait_s)
            slot.depth += 1
            slot.checkpoint = slot.checkpoint or checkpoint
            cur = _cursor()
            try:
                cur.execute(f"USE {slot.alias}")
                if not self._migrated:
                    with _MIGRATE_LOCK:  # threads of one process share the file: migrate once
                        if key not in _MIGRATED:
                            migrate(cur)
                            _MIGRATED.add(key)
                    self._migrated = True
                yield cur
            finally:
                cur.close()
                slot.depth -= 1
                if slot.depth == 0:
                    if slot.checkpoint or _wal_bytes(self.path) > WAL_CHECKPOINT_BYTES:
                        _run(f"CHECKPOINT {slot.alias}")
                    slot.checkpoint = False
                    _run(f"DETACH {slot.alias}")

    def _attach(self, slot: _Slot, key: str, wait_s: float | None) -> None:
        self._open_waiting(lambda: _run(f"ATTACH ? AS {slot.alias}", [key]), wait_s)
        self.spooling = False  # the lock is ours: the spool is ingested by this write

    def _open_waiting(self, open_: Callable[[], T], wait_s: float | None = None) -> T:
        """`open_()`, retried with backoff while another process holds the file's lock:
        `WarehouseLocked` after the lock wait, `WarehouseUnusable` for any other failure."""
        deadline = time.monotonic() + (self.lock_wait_s if wait_s is None else wait_s)
        delay = 0.01
        while True:
            try:
                return open_()
            except duckdb.Error as exc:
                if not (isinstance(exc, duckdb.IOException) and _is_lock_error(exc)):
                    raise WarehouseUnusable(
                        f"{self.path}: cannot be opened as a DuckDB warehouse ({exc}); {FIX_PATH}"
                    ) from exc
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(
                        f"{self.path}: locked by another process for more than "
                        f"{self.lock_wait_s:g}s ({exc}). Close the other session, or raise "
                        "EVALKEEPER_LOCK_WAIT_S."
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- writes ------------------------------------------------------------------------

    def write(
        self, batch: Mapping[str, Frame | Path], *, spool_ok: bool = True, checkpoint: bool = False
    ) -> str:
        """Write frames to their tables in one transaction; spool them if the lock is held.
        A table's rows may also be a Parquet file of them (a large import, staged on disk).

        The first spooled batch waits `lock_wait_s` for the lock; after it, while this
        process is spooling, a write waits `SPOOLING_RETRY_S` only (`spool_ok=False`
        writes always wait `lock_wait_s`, then raise `WarehouseLocked`).

        `checkpoint` folds the write-ahead log into the file afterwards (the end of an
        experiment: the .duckdb file alone then holds everything). Returns "written" or
        "spooled".
        """
        batch = {t: f for t, f in batch.items() if _height(f)}
        if not batch:
            return "written"
        try:
            wait = self.write_wait_s if spool_ok else self.lock_wait_s
            with self.connect(checkpoint=checkpoint, wait_s=wait) as con:
                self._ingest_spool(con)
                _insert_batch(con, batch)
            return "written"
        except WarehouseLocked:
            if not spool_ok:
                raise
            self.spooling = True
            self._spool(batch)
            return "spooled"

    def write_batches(self, batches: Sequence[Mapping[str, Path]]) -> str:
        """Batches of Parquet files (one per table) in order, one transaction each, over one
        connection (a shard's results, `evalkeeper.warehouse.results`); while the lock stays
        held past the wait they go to the spool instead, in order. Returns "written" or
        "spooled"."""
        batches = [b for b in batches if b]
        if not batches:
            return "written"
        try:
            with self.connect() as con:
                self._ingest_spool(con)
                for batch in batches:
                    _insert_batch(con, batch)
            return "written"
        except WarehouseLocked:
            self.spooling = True
            for batch in batches:
                self._spool(batch)
            return "spooled"

    @property
    def _spool_key(self) -> tuple[int, str]:
        return (os.getpid(), str(self.path.resolve()))

    @property
    def spooling(self) -> bool:
        """This process found the lock held past the wait and spooled, and no write of
        it has got the lock since."""
        return self._spool_key in _SPOOLING

    @spooling.setter
    def spooling(self, on: bool) -> None:
        if on:
            _SPOOLING.add(self._spool_key)
        else:
            _SPOOLING.discard(self._spool_key)

    @property
    def write_wait_s(self) -> float:
        """How long a spoolable write waits for the lock: `lock_wait_s`, or
        `SPOOLING_RETRY_S` while this process is spooling."""
        return min(self.lock_wait_s, SPOOLING_RETRY_S) if self.spooling else self.lock_wait_s

    def _spool(self, batch: Mapping[str, Frame | Path]) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp = self.spool_dir / f".tmp-{name}"
        tmp.mkdir()
        for table, frame in batch.items():
            if isinstance(frame, Path):
                shutil.copyfile(frame, tmp / f"{table}.parquet")
            else:
                frame.write_parquet(tmp / f"{table}.parquet")
        final = self.spool_dir / name
        tmp.rename(final)  # atomic: a batch is in the spool whole or not at all
        return final

    def spooled_batches(self) -> list[Path]:
        if not self.spool_dir.is_dir():
            return []
        return sorted(p for p in self.spool_dir.iterdir() if p.is_dir() and p.name[0] != ".")

    def ingest_spool(self) -> int:
        """Ingest every spooled batch now (waiting for the lock). Returns batches ingested."""
        if not self.spooled_batches():
            return 0
        with self.connect() as con:
            return self._ingest_spool(con)

    def _ingest_spool(self, con: duckdb.DuckDBPyConnection) -> int:
        batches = self.spooled_batches()
        for batch_dir in batches:
            _insert_batch(con, {p.stem: p for p in sorted(batch_dir.glob("*.parquet"))})
            shutil.rmtree(batch_dir)  # after commit: a crash here re-ingests, harmlessly
        return len(batches)

    def spooled_frame(self, table: str) -> Frame | None:
        """Rows of `table` waiting in the spool (for resume while the lock is held)."""
        files = [b / f"{table}.parquet" for b in self.spooled_batches()]
        files = [f for f in files if f.exists()]
        if not files:
            return None
        return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")

    # -- reads -------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self, *, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to read the warehouse as it stands, spooled rows included.

        When the file is free, the read-write connection of `connect` (the spool ingested
        first, when this is the outermost connection of the thread). When another process
        holds it read-only (an analyst's session), a snapshot: the file attached read-only
        in an in-memory instance of its own, every table a view of the stored rows with
        the spooled ones laid over them by the table's write policy (`_overlay_sql`), so a
        run under an analyst's connection reads its own rows (resume, summary evaluators,
        its summary, a verdict) without waiting. Only a process writing the file keeps both
        out: then this waits like `connect` (`lock_wait_s`) and raises `WarehouseLocked`."""
        deadline = time.monotonic() + (self.lock_wait_s if wait_s is None else wait_s)
        delay = 0.01
        # one DuckDB handle per file and process: a snapshot and a read-write attach (or
        # two snapshots) of other threads take turns on the file's slot
        slot = _slot(str(self.path.resolve()))
        while True:
            with slot.lock, contextlib.ExitStack() as stack:
                try:
                    con = stack.enter_context(self.connect(wait_s=0))
                except WarehouseLocked as exc:
                    locked: WarehouseLocked = exc
                else:
                    if slot.depth == 1 and self.spooled_batches():
                        self._ingest_spool(con)
                    yield con
                    return
                try:
                    con = stack.enter_context(self._snapshot())
                except duckdb.IOException as exc:
                    if not _is_lock_error(exc):
                        raise
                else:
                    yield con
                    return
            if time.monotonic() >= deadline:
                raise locked
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file read-only with the spool laid over it (see `reading`). Raises
        `duckdb.IOException` (a lock error) when a writer holds the file."""
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{_quote(str(self.path))}' AS stored (READ_ONLY)")
            con.execute("USE stored")
            if not _migrated(con):  # a file behind the migrations: wait for a writer
                raise duckdb.IOException("Could not set lock: the file is not migrated yet")
            con.execute("USE memory")
            # listed after the attach: no writer can ingest (and remove) a batch meanwhile
            batches = self.spooled_batches()
            for name, table in TABLES.items():
                if table.policy is None:
                    continue
                files = [str(b / f"{name}.parquet") for b in batches]
                files = [f for f in files if Path(f).exists()]
                if not files:
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM stored.main.{name}")
                    continue
                con.execute(f"CREATE TABLE _spooled_{name} AS {_spooled_sql(files)}")
            for name in SUPERSEDE:
                files = [str(b / f"{name}.parquet") for b in batches]
                files = [f for f in files if Path(f).exists()]
                if files:
                    con.execute(f"CREATE TABLE _spooled_{name} AS {_spooled_sql(files)}")
            present = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
            for name, table in TABLES.items():
                if table.policy is not None and f"_spooled_{name}" in present:
                    columns = {r[0] for r in con.execute(f"DESCRIBE _spooled_{name}").fetchall()}
                    con.execute(f"CREATE VIEW {name} AS {_overlay_sql(name, present, columns)}")
            for name, body in VIEWS.items():
                con.execute(f"CREATE VIEW {name} AS {body}")
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> Frame:
        with self.reading() as con:
            return con.sql(sql, params=params or None).pl()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.reading() as con:
            return con.execute(sql, params or []).fetchall()

    def query_read_only(self, sql: str) -> Frame:
        """The analyst's SQL (`evalkeeper sql`) on a connection that can change nothing.

        The file is opened read-only in a DuckDB instance of its own, with external access
        off (no other file read or written, no ATTACH, no INSTALL or LOAD, no extension
        loaded on its own) and the configuration locked, so the SQL cannot turn any of it
        back on. A statement that tries raises `ReadOnlyRefused`. A writer holding the file
        is waited for as by `connect`. A file that is missing or behind the migrations is
        first brought up to date by a short read-write `connect`."""
        if self.path.is_file():
            frame = self._read_only(lambda con: _user_query(con, sql) if _up_to_date(con) else None)
            if frame is not None:
                return frame
        with self.connect():  # create or migrate the file, then read it read-only
            pass
        return self._read_only(lambda con: _user_query(con, sql))

    def _read_only(self, use: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        con = self._open_waiting(
            lambda: duckdb.connect(str(self.path), read_only=True, config=dict(READ_ONLY_CONFIG))
        )
        try:
            return use(con)
        finally:
            con.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _spooled_sql(files: list[str]) -> str:
    """The rows of spooled Parquet files, with each row's batch (its directory, in
    ingestion order) and its position in the file."""
    listed = ", ".join(f"'{_quote(f)}'" for f in files)
    return (
        f"SELECT * FROM read_parquet([{listed}], union_by_name = true, filename = true, "
        "file_row_number = true)"
    )


def _overlay_sql(name: str, present: set[str], spooled_columns: set[str]) -> str:
    """The view of table `name` in a snapshot: its stored rows and its spooled rows
    (`_spooled_<name>`), as ingesting the spool in order would leave them.

    Stored rows that a spooled supersede entry deletes are left out. Among spooled rows of
    one key the last wins. A `replace` table then takes the spooled row over the stored
    one; `ignore` tables (and `scores`, keyed here by run and evaluator) keep the stored
    row, as the keyed insert (or the `with_run` policy) would."""
    table = TABLES[name]
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    key = table.key or (*RUN_KEY, "evaluator")

    def match(a: str, b: str) -> str:
        return " AND ".join(f'{a}."{k}" = {b}."{k}"' for k in key)

    deleted = []
    for entry, targets in SUPERSEDE.items():
        if f"_spooled_{entry}" not in present:
            continue
        for target, pairs in targets:
            if target == name:
                on = " AND ".join(f'f."{a}" = d."{b}"' for a, b in pairs)
                deleted.append(f"NOT EXISTS (SELECT 1 FROM _spooled_{entry} d WHERE {on})")

    def source(column: str) -> str:  # a column no spooled file has is null
        return f'"{column}"' if column in spooled_columns else "NULL"

    typed = ", ".join(f'CAST({source(c.name)} AS {c.type}) AS "{c.name}"' for c in table.columns)
    order = ", ".join(f'"{k}"' for k in key)
    spooled = (
        f"SELECT {typed} FROM _spooled_{name} QUALIFY row_number() OVER "
        f"(PARTITION BY {order} ORDER BY filename DESC, file_row_number DESC) = 1"
    )
    stored_where = list(deleted)
    if table.policy == "replace":
        stored_where.append(f"NOT EXISTS (SELECT 1 FROM sp WHERE {match('f', 'sp')})")
    stored = f"SELECT {cols} FROM stored.main.{name} f"
    if stored_where:
        stored += " WHERE " + " AND ".join(stored_where)
    if table.policy == "replace":
        return f"WITH sp AS ({spooled}) {stored} UNION ALL SELECT {cols} FROM sp"
    return (
        f"WITH sp AS ({spooled}), st AS ({stored}) SELECT {cols} FROM st UNION ALL "
        f"SELECT {cols} FROM sp WHERE NOT EXISTS (SELECT 1 FROM st WHERE {match('st', 'sp')})"
    )


READ_ONLY_CONFIG: Mapping[str, bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # last: the SQL cannot SET or RESET any of the above
}
"""The configuration of the analyst's read-only connection (`Warehouse.query_read_only`)."""


class ReadOnlyRefused(InputError):
    """The analyst's SQL tried to change the warehouse, touch another file, attach a
    database, install or load an extension, or change the configuration."""


def _refused(exc: duckdb.Error) -> bool:
    text = str(exc)
    return isinstance(exc, duckdb.PermissionException) or any(
        marker in text
        for marker in ("read-only mode", "configuration has been locked", "in read-only")
    )


def _user_query(con: duckdb.DuckDBPyConnection, sql: str) -> Frame:
    try:
        relation = con.sql(sql)
        return relation.pl() if relation is not None else pl.DataFrame()
    except duckdb.Error as exc:
        if _refused(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReadOnlyRefused(
                f"`sql` is read-only: it cannot change the warehouse, read or write other "
                f"files, attach databases, install or load extensions or change settings "
                f"(DuckDB: {first})"
            ) from exc
        raise


def _has_tables(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    """Whether the file holds these tables. Asked of the catalog, not by selecting from them:
    a missing table's name would be looked up among the caller's Python variables (DuckDB's
    replacement scans), and `schema_version` is also a function of this module."""
    found = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchall()
    }
    return set(names) <= found


def _up_to_date(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every migration is applied and every view is current (see `migrate`)."""
    if not _has_tables(con, "schema_version", "schema_views"):
        return False
    try:
        applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_version").fetchall()}
        known = dict(con.execute("SELECT name, hash FROM schema_views").fetchall())
    except duckdb.CatalogException:
        return False
    return all(version in applied for version, _ in MIGRATIONS) and all(
        known.get(name) == _view_hash(body) for name, body in VIEWS.items()
    )


def _migrated(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every migration is applied (the views a snapshot makes itself)."""
    if not _has_tables(con, "schema_version"):
        return False
    try:
        applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_version").fetchall()}
    except duckdb.CatalogException:
        return False
    return all(version in applied for version, _ in MIGRATIONS)


def _view_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _insert_batch(con: duckdb.DuckDBPyConnection, batch: Mapping[str, Frame | Path]) -> None:
    """Insert frames (or Parquet files) into their tables in one transaction.

    Frames are staged as Parquet and read with `read_parquet`: registering Python objects
    (`register`, replacement scans) from a worker thread intermittently failed under
    multi-process lock contention here ("python_arrow_scan does not exist"), while the
    Parquet reader is DuckDB's own and as fast (1M rows in ~0.3 s).

    `runs` go first, as a plain INSERT: new rows are the rule, and INSERT OR IGNORE costs
    twice as much (7 ms against 3 ms for a 31-row batch). A duplicate run (a re-ingested
    spool, an overlapping resume) fails that transaction; it is then rolled back and done
    again with OR IGNORE, and `with_run` tables (scores) take only the rows whose run was new.
    """
    # deletions of superseded rows first, then runs, then the rest
    tables = sorted(batch, key=lambda t: (WRITE_POLICY[t] != "supersede", t != "runs"))
    remove_stale_staging()
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-") as tmp:
        staged = Path(tmp)
        sources: dict[str, tuple[Path, str]] = {}
        for table in tables:
            data = batch[table]
            path, columns = (
                (data, list(pl.read_parquet_schema(data)))
                if isinstance(data, Path)
                else _stage(data, staged / f"{table}.parquet")
            )
            sources[table] = (path, ", ".join(f'"{c}"' for c in columns))
        try:
            _transaction(con, batch, sources, staged, optimistic=True)
        except duckdb.ConstraintException:
            _transaction(con, batch, sources, staged, optimistic=False)


STAGING_PREFIX = "evalkeeper-batch-"
"""Staging folders are `<tmp>/evalkeeper-batch-<pid>-<random>`: the writer's pid says
whether a left-over one (its writer was killed) can go."""

_staging_swept = False
_staging_lock = threading.Lock()


def remove_stale_staging() -> None:
    """Once per process: remove the staging folders of writers that are dead (killed
    before they could remove their own)."""
    global _staging_swept
    with _staging_lock:
        if _staging_swept:
            return
        _staging_swept = True
    with contextlib.suppress(OSError):
        for path in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*-*"):
            pid = path.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _transaction(
    con: duckdb.DuckDBPyConnection,
    batch: Mapping[str, Frame | Path],
    sources: Mapping[str, tuple[Path, str]],
    staged: Path,
    *,
    optimistic: bool,
) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        kept_runs: list[tuple[Any, ...]] | None = None  # set when some runs were not new
        for table, (source, cols) in sources.items():
            policy = WRITE_POLICY[table]
            if policy == "supersede":
                for target, pairs in SUPERSEDE[table]:
                    match = " AND ".join(f"{target}.{a} = k.{b}" for a, b in pairs)
                    con.execute(
                        f"DELETE FROM {target} USING read_parquet(?) k WHERE {match}",
                        [str(source)],
                    )
                continue
            verb = "INSERT OR REPLACE" if policy == "replace" else "INSERT OR IGNORE"
            if policy == "with_run" or (optimistic and table == "runs"):
                verb = "INSERT"
            if policy == "replace" and _height(batch[table]) > LARGE_REPLACE_ROWS:
                match = " AND ".join(f"{table}.{k} = k.{k}" for k in TABLES[table].key)
                con.execute(
                    f"DELETE FROM {table} USING read_parquet(?) k WHERE {match}", [str(source)]
                )
                verb = "INSERT"
            if policy == "with_run" and kept_runs is not None:
                source = _only_runs(batch[table], kept_runs, staged / f"{table}-new.parquet")
            sql = f"{verb} INTO {table} ({cols}) SELECT {cols} FROM read_parquet(?)"
            if table == "runs" and not optimistic:
                key = ", ".join(RUN_KEY)
                new_runs = con.execute(f"{sql} RETURNING {key}", [str(source)]).fetchall()
                if len(new_runs) < _height(batch["runs"]):
                    kept_runs = new_runs
            else:
                con.execute(sql, [str(source)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


LARGE_REPLACE_ROWS = 10_000
"""Past this many rows, a `replace` is a DELETE of the rows' keys, then a plain INSERT (the
same result, keys being unique in a batch): DuckDB's INSERT OR REPLACE held about 1.5x the
memory (1 M human labels inserted alone: 364 MiB against 245)."""


def _stage(frame: Frame, path: Path) -> tuple[Path, list[str]]:
    frame.write_parquet(path, compression="uncompressed", statistics=False)
    return path, frame.columns


def _height(data: Frame | Path) -> int:
    if isinstance(data, Path):
        return int(pl.scan_parquet(data).select(pl.len()).collect().item())
    return data.height


def _only_runs(data: Frame | Path, runs: list[tuple[Any, ...]], path: Path) -> Path:
    """The rows of `data` that belong to one of `runs` (key tuples), staged as Parquet."""
    frame = pl.read_parquet(data) if isinstance(data, Path) else data
    keys = pl.DataFrame(runs, schema=list(RUN_KEY), orient="row").cast(
        {c: frame.schema[c] for c in RUN_KEY}
    )
    return _stage(frame.join(keys, on=list(RUN_KEY), how="semi"), path)[0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(SCHEMA_VERSION.ddl(if_not_exists=True))
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations, then (re)create the views. Returns the schema version."""
    current = schema_version(con)
    applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_version").fetchall()}
    for version, statements in MIGRATIONS:
        # by set, not by the highest number: a migration merged after a higher one was
        # applied to a file still runs there
        if version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for stmt in statements:
                con.execute(stmt)
            con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        current = max(current, version)
    # views are recreated only when their definition changed: DDL on every open would
    # conflict between concurrent first connections and cost ~0.1 s per open
    con.execute(SCHEMA_VIEWS.ddl(if_not_exists=True))
    known = dict(con.execute("SELECT name, hash FROM schema_views").fetchall())
    for name, body in VIEWS.items():
        digest = _view_hash(body)
        if known.get(name) != digest:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
            con.execute("INSERT OR REPLACE INTO schema_views VALUES (?, ?)", [name, digest])
    return current
