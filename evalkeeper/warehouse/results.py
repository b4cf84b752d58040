"""The results location: where shards on other machines write their rows, as Parquet,
for the warehouse's single writer to ingest.

A DuckDB file has one writer at a time, and a file on one machine cannot be shared by
workers on others. A shard given a results location (`EVALKEEPER_RESULTS_URL`: a local or
shared directory, or `s3://bucket/prefix` through fsspec and s3fs) never opens the
warehouse. It writes each batch of rows the runner cuts (runs, scores, judge votes, judge
cache entries, supersede entries) as the spool does, one Parquet file per table in a
directory per batch:

    <results>/<experiment_id>/shard-<k>/<batch-key>/<table>.parquet
    <results>/<experiment_id>/shard-<k>/<batch-key>/_batch.json   (written last)

An object store has no atomic rename of a directory, so the manifest `_batch.json`, put
after every table file, commits the batch: a batch without it (its shard was killed while
writing) is never read. A batch key is `<ns since epoch>-<attempt>-<seq>`: it sorts in
writing order, and two attempts of one shard (a retry, a duplicated run) never write the
same key. Their rows meet on ingest, where each table's key and write policy
(`evalkeeper.warehouse.tables`) keep every row exactly once, as for a re-ingested spool.

What a shard needs to know of the warehouse (which rows of the experiment are stored
already, for a resume) the parent puts beside the batches before the shards start
(`publish_stored`: `<results>/<experiment_id>/_stored/{runs,scores}.parquet`); the
experiment itself is handed to the shard, and the examples are read from the dataset file.
`ShardView` lays a shard's own committed batches over that snapshot in an in-memory DuckDB
(never the warehouse file), with the same inserts as the warehouse, so a shard's retry
sees what its killed attempt wrote.

The parent ingests every committed batch into the warehouse (`ingest`: one transaction per
batch, in key order, or into the spool while an analyst holds the file), then removes
them; a crash between the two ingests them again, which adds nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from evalkeeper.errors import InputError
from evalkeeper.warehouse.store import Warehouse, _insert_batch, migrate

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from evalkeeper.settings import Settings

Frame = pl.DataFrame

MANIFEST = "_batch.json"
STORED = "_stored"
STORED_TABLES = ("runs", "scores")


class ResultsLocationError(InputError):
    """The results location cannot be used (a bad URL, storage options that are not a JSON
    object, a store that refuses); the message names the location and the fix."""


@dataclass(frozen=True)
class Batch:
    """One committed batch: its key, its folder and its table files (full paths)."""

    key: str
    folder: str
    tables: dict[str, str]


@dataclass
class IngestReport:
    """What one ingest did: batches taken (and whether they went to the spool), batches
    left out because their shard was killed while writing them, rows per table read, and
    the seconds it took."""

    batches: int = 0
    incomplete: int = 0
    spooled: bool = False
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class ResultsLocation:
    """A directory or object-store prefix holding shards' row batches."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        import fsspec

        self.url = url.rstrip("/") or url
        options = dict(storage_options or {})
        try:
            protocol = fsspec.core.split_protocol(self.url)[0] or "file"
            if endpoint_url and protocol in ("s3", "s3a"):
                options.setdefault("endpoint_url", endpoint_url)
            fs, root = fsspec.core.url_to_fs(self.url, **options)
        except (ValueError, ImportError, TypeError) as exc:
            raise ResultsLocationError(
                f"results location {self.url}: cannot be opened ({exc}); set "
                "EVALKEEPER_RESULTS_URL to a directory or s3://bucket/prefix"
            ) from exc
        self.fs: AbstractFileSystem = fs
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(fs)

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultsLocation | None:
        """The location the settings name, or None (shards then write to the warehouse)."""
        conf = settings.results
        if not conf.url:
            return None
        options: Any = {}
        if conf.storage_options is not None:
            try:
                options = json.loads(conf.storage_options.get_secret_value())
            except json.JSONDecodeError:
                options = None
            if not isinstance(options, dict):
                raise ResultsLocationError(
                    "EVALKEEPER_RESULTS_STORAGE_OPTIONS is not a JSON object (its value is "
                    'not shown): write it as {"key": value, ...}'
                )
        return cls(conf.url, endpoint_url=conf.endpoint_url, storage_options=options)

    def __repr__(self) -> str:  # the URL only: storage options may hold keys
        return f"ResultsLocation({self.url!r})"

    # -- paths ---------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def experiment_dir(self, experiment_id: str) -> str:
        return self._path(_safe(experiment_id))

    def shard_dir(self, experiment_id: str, shard: int) -> str:
        return self._path(_safe(experiment_id), f"shard-{shard}")

    # -- writing -------------------------------------------------------------------------

    def _put(self, path: str, data: bytes) -> None:
        try:
            if self.local:
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(path, data)
        except OSError as exc:
            raise ResultsLocationError(
                f"results location {self.url}: cannot write {path} ({exc}); check that it "
                "exists and that this worker may write there (credentials, endpoint)"
            ) from exc

    def put_frames(self, folder: str, frames: Mapping[str, Frame | Path]) -> dict[str, int]:
        """Each frame as `<folder>/<table>.parquet`; rows written per table."""
        rows = {}
        for table, frame in frames.items():
            data = pl.read_parquet(frame) if isinstance(frame, Path) else frame
            buf = io.BytesIO()
            data.write_parquet(buf)
            self._put(f"{folder}/{table}.parquet", buf.getvalue())
            rows[table] = data.height
        return rows

    def writer(self, experiment_id: str, shard: int) -> ShardWriter:
        return ShardWriter(self, experiment_id, shard)

    def publish_stored(self, experiment_id: str, frames: Mapping[str, Frame]) -> None:
        """The experiment's rows the warehouse holds (runs, scores), for its shards."""
        self.put_frames(self._path(_safe(experiment_id), STORED), frames)

    # -- reading -------------------------------------------------------------------------

    def _find(self, prefix: str) -> list[str]:
        with contextlib.suppress(Exception):  # listings are cached by s3fs: see the new ones
            self.fs.invalidate_cache(prefix)
        try:
            if not self.fs.exists(prefix):
                return []
            return sorted(str(p) for p in self.fs.find(prefix))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ResultsLocationError(
                f"results location {self.url}: cannot list {prefix} ({exc}); check the "
                "URL, the endpoint and the credentials"
            ) from exc

    def batches(self, experiment_id: str, shard: int | None = None) -> tuple[list[Batch], int]:
        """The committed batches of an experiment (or of one of its shards), in key order,
        and how many batches are incomplete (no manifest, or a file it lists is missing)."""
        prefix = (
            self.shard_dir(experiment_id, shard)
            if shard is not None
            else self.experiment_dir(experiment_id)
        )
        folders: dict[str, set[str]] = {}
        for path in self._find(prefix):
            folder, name = path.rsplit("/", 1)
            if folder.rsplit("/", 1)[-1] == STORED or "/shard-" not in folder[len(self.root) :]:
                continue
            folders.setdefault(folder, set()).add(name)
        committed, incomplete = [], 0
        for folder, names in folders.items():
            tables = self._manifest(folder) if MANIFEST in names else None
            if tables is None or any(f"{t}.parquet" not in names for t in tables):
                incomplete += 1
                continue
            committed.append(
                Batch(
                    key=folder.rsplit("/", 1)[-1],
                    folder=folder,
                    tables={t: f"{folder}/{t}.parquet" for t in tables},
                )
            )
        committed.sort(key=lambda b: (b.key, b.folder))
        return committed, incomplete

    def _manifest(self, folder: str) -> list[str] | None:
        try:
            body = json.loads(self.fs.cat_file(f"{folder}/{MANIFEST}"))
            return [str(t) for t in body["tables"]]
        except (OSError, ValueError, KeyError, TypeError):  # half-written: not committed
            return None

    def fetch(self, batch: Batch, into: Path) -> dict[str, Path]:
        """The batch's table files as local paths (downloaded into `into` when remote)."""
        if self.local:
            return {t: Path(p) for t, p in batch.tables.items()}
        into.mkdir(parents=True, exist_ok=True)
        out = {}
        for table, remote in batch.tables.items():
            local = into / f"{table}.parquet"
            self.fs.get_file(remote, str(local))
            out[table] = local
        return out

    def stored(self, experiment_id: str, into: Path) -> dict[str, Path]:
        """The snapshot `publish_stored` left, as local files ({} if none)."""
        folder = self._path(_safe(experiment_id), STORED)
        present = {p.rsplit("/", 1)[-1] for p in self._find(folder)}
        tables = {t: f"{folder}/{t}.parquet" for t in STORED_TABLES if f"{t}.parquet" in present}
        return self.fetch(Batch(STORED, folder, tables), into)

    def shard_view(self, experiment_id: str, shard: int) -> ShardView:
        """What is stored of the experiment for one shard: the parent's snapshot of the
        warehouse with the shard's committed batches laid over it."""
        return ShardView(self, experiment_id, shard)

    # -- ingest --------------------------------------------------------------------------

    def ingest(self, warehouse: Warehouse, experiment_id: str) -> IngestReport:
        """Every committed batch of the experiment into the warehouse, in key order, one
        transaction each (or into its spool while the file is held); the batches are then
        removed. Ingesting a batch again adds nothing (keyed inserts)."""
        t0 = time.perf_counter()
        batches, incomplete = self.batches(experiment_id)
        report = IngestReport(batches=len(batches), incomplete=incomplete)
        if batches:
            with tempfile.TemporaryDirectory(prefix="evalkeeper-results-") as tmp:
                local = [self.fetch(b, Path(tmp) / b.key) for b in batches]
                for files in local:
                    for table, path in files.items():
                        n = pl.scan_parquet(path).select(pl.len()).collect().item()
                        report.rows[table] = report.rows.get(table, 0) + int(n)
                report.spooled = warehouse.write_batches(local) == "spooled"
            for batch in batches:  # after the commit: a crash here re-ingests, harmlessly
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(batch.folder, recursive=True)
        report.seconds = time.perf_counter() - t0
        return report


class ShardWriter:
    """The runner's row sink in a shard: each batch to the results location (the
    `Warehouse.write` of a shard that must not open the warehouse)."""

    def __init__(self, location: ResultsLocation, experiment_id: str, shard: int) -> None:
        self.location = location
        self.folder = location.shard_dir(experiment_id, shard)
        self.shard = shard
        self.attempt = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self.seq = 0
        self.batches = 0

    def write(self, batch: Mapping[str, Frame | Path], **_: Any) -> str:
        tables = {t: f for t, f in batch.items() if _height(f)}
        if not tables:
            return "written"
        self.seq += 1
        key = f"{time.time_ns():020d}-{self.attempt}-{self.seq:06d}"
        folder = f"{self.folder}/{key}"
        rows = self.location.put_frames(folder, tables)
        manifest = {"tables": rows, "shard": self.shard, "attempt": self.attempt}
        self.location._put(f"{folder}/{MANIFEST}", json.dumps(manifest).encode())
        self.batches += 1
        return "written"


class ShardView:
    """The stored rows of an experiment as one shard sees them, in an in-memory DuckDB:
    the parent's snapshot, then the shard's committed batches inserted in order with the
    warehouse's own inserts. Reads as `Warehouse.rows`/`reading` do; never opens the
    warehouse file."""

    def __init__(self, location: ResultsLocation, experiment_id: str, shard: int) -> None:
        self.con = duckdb.connect(":memory:")
        migrate(self.con)
        with tempfile.TemporaryDirectory(prefix="evalkeeper-shard-view-") as tmp:
            stored = location.stored(experiment_id, Path(tmp) / STORED)
            if stored:
                _insert_batch(self.con, stored)
            batches, self.incomplete = location.batches(experiment_id, shard)
            for batch in batches:
                _insert_batch(self.con, location.fetch(batch, Path(tmp) / batch.key))
        self.batches = len(batches)

    @contextlib.contextmanager
    def reading(self, **_: Any) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self.con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.reading() as con:
            return con.execute(sql, params or []).fetchall()

    def spooled_frame(self, table: str) -> Frame | None:
        return None  # a shard's rows are in its batches, read above

    def close(self) -> None:
        self.con.close()


def _height(data: Frame | Path) -> int:
    if isinstance(data, Path):
        return int(pl.scan_parquet(data).select(pl.len()).collect().item())
    return data.height


def _safe(name: str) -> str:
    """An experiment id as one path segment."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)
