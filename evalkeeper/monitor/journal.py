"""The deploy journal: accepted deploy webhooks, durable before their 202, then applied.

A deploy webhook's answer must not wait for a warehouse write (an ATTACH, a transaction,
a DETACH: milliseconds each, and the file may be held by a tick), yet a 202 must mean the
deploy is kept. So the app's deploy intake (`evalkeeper.monitor.intake`) appends each
accepted deploy (its window and delivery id) to an append-only journal, fsyncs it (one
fsync per batch of requests that arrived together: group commit) and only then lets the
app answer; a background step applies the journal to the warehouse (`open_windows`, which
ignores a window or delivery already stored) and removes what it applied.

The journal is a folder next to the warehouse (`<warehouse>.hooks/`) of segment files,
one JSON line per deploy. The process appending to a segment holds an exclusive `flock`
on it; a segment nobody holds is complete and may be removed once applied. `replay(settings)`
applies every segment (a live one too: applying twice changes nothing) and removes the
segments nobody holds: the app runs it at start (a crash after a 202 loses nothing) and
every tick runs it first (a window accepted by an app that died is still ticked). A line
cut short by a crash mid-write was never answered 202, and is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from evalkeeper.monitor.windows import Opened, Window, open_windows
from evalkeeper.settings import Settings

__all__ = ["DeployJournal", "Entry", "encode", "journal_dir", "read_segment", "replay"]

log = logging.getLogger(__name__)

Entry = tuple[Window, str | None]
"""A journaled deploy: its window and its webhook delivery id."""


def journal_dir(settings: Settings) -> Path:
    """Where the deploy journal of `settings.warehouse` lives."""
    path = Path(settings.warehouse)
    return path.with_name(path.name + ".hooks")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode(entries: list[Entry]) -> bytes:
    """The journal lines of `entries` (`{"window": ..., "delivery_id": ...}`, one a line)."""
    return b"".join(
        b'{"window":'
        + window.model_dump_json().encode()
        + b',"delivery_id":'
        + json.dumps(delivery_id).encode()
        + b"}\n"
        for window, delivery_id in entries
    )


def read_segment(path: Path) -> list[Entry]:
    """The entries of one segment; a last line cut short (a crash mid-append) is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[Entry] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw:
            continue
        try:
            line = json.loads(raw)
            out.append((Window.model_validate(line["window"]), line.get("delivery_id")))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):  # no newline after it: the append never completed
                log.warning("%s:%d: incomplete last entry skipped (never answered)", path, number)
                continue
            raise ValueError(
                f"{path}:{number}: not a deploy journal entry ({exc}); move the file away "
                "and open the deploy again with `evalkeeper monitor start`"
            ) from exc
    return out


def _segments(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".jsonl")


def _try_lock(path: Path) -> IO[bytes] | None:
    """An exclusive lock on `path` if nobody holds it (the caller closes it), else None."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def replay(settings: Settings, *, segments: list[Path] | None = None) -> list[Opened]:
    """Apply journal segments (default: all) to the warehouse; remove the applied ones
    nobody is appending to. Returns what `open_windows` did for each entry."""
    paths = _segments(journal_dir(settings)) if segments is None else segments
    entries = [e for p in paths for e in read_segment(p)]
    opened = open_windows(settings, entries) if entries else []
    for path in paths:
        lock = _try_lock(path)
        if lock is None:
            continue  # being appended to: its owner removes it once applied
        with lock, contextlib.suppress(FileNotFoundError):
            path.unlink()
    return opened


class DeployJournal:
    """The journal one process appends to. A write (in a worker thread) and a rotation (on
    the event loop, when the applier takes the segment) exclude each other: a rotation in the
    middle of a write closed the file under its fsync."""

    def __init__(self, settings: Settings) -> None:
        self.directory = journal_dir(settings)
        self._fh: IO[bytes] | None = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    def append(self, entries: list[Entry]) -> None:
        """Write `entries` and fsync: when this returns, they survive a crash."""
        self.write(encode(entries))

    def write(self, data: bytes) -> None:
        """Write encoded entries (`encode`) and fsync: when this returns, they survive a
        crash. No Python work but the system calls: a worker thread running it leaves the
        GIL to the event loop."""
        if not data:
            return
        with self._lock:
            if self._fh is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._path = self.directory / f"{time.time_ns():020d}-{os.getpid()}.jsonl"
                self._fh = self._path.open("ab")
                fcntl.flock(self._fh, fcntl.LOCK_EX)
                _fsync_dir(self.directory)  # the new segment's name is durable too
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def rotate(self) -> Path | None:
        """Close the segment being appended to (the next append starts a new one) and
        return it: it is complete, to be applied and removed."""
        with self._lock:
            path, fh = self._path, self._fh
            self._fh = self._path = None
            if fh is not None:
                fh.close()  # releases the lock
        return path

    def close(self) -> None:
        self.rotate()
