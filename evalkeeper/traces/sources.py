"""Trace sources behind one interface, named by a spec: `jsonl:PATH` (more kinds register).

A source reads incrementally: `await source.read(cursor, max_traces=N)` returns the traces
read since `cursor`, the bad lines met on the way (`path:line: what is wrong`, never
dropped) and the new cursor, a JSON-serialisable value the caller stores (per source spec,
in the warehouse) and hands back on the next read, in this process or the next.

`jsonl:PATH` reads a file, or every `*.jsonl` file of a directory, that an application
appends to. The cursor keeps, per file, its identity (device and inode), the byte offset
after the last line read, the number of lines read, and a hash of the file's first bytes.
A file renamed away (rotation) keeps its identity: the rest of it is read from its new
name while it stays in the same directory, and the new file under the old name is read
from its start. A file that shrank below the offset, or whose first bytes changed
(truncated and rewritten), is read again from its start. A last line without its newline
is left for the next read. Files are read in chunks of `CHUNK_BYTES`; a line longer than
`MAX_LINE_BYTES` is reported and skipped without being held in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evalkeeper.errors import InputError
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace, TraceError

Cursor = dict[str, Any]
"""A source's position: JSON-serialisable, opaque to everyone but the source."""

CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 16 << 20
HEAD_BYTES = 1024


class SourceError(InputError, ValueError):
    """A source spec that cannot be opened, or a stored cursor it cannot use."""


class TraceSource(Protocol):
    """Anything that yields traces incrementally from a cursor."""

    @property
    def spec(self) -> str:
        """The canonical spec: the key its cursor is stored under."""
        ...

    async def read(
        self, cursor: Cursor | None, *, max_traces: int = 1000
    ) -> tuple[list[Trace], list[str], Cursor]:
        """Up to `max_traces` traces after `cursor` (None: from the start), the bad lines
        met (`path:line: problem`), and the cursor after the last line consumed."""
        ...


SourceFactory = Callable[[str, Settings], TraceSource]


@dataclass(frozen=True)
class SourceKind:
    """A registered kind of source: how its spec is written and how it is opened."""

    usage: str
    factory: SourceFactory | str
    """The opener, or `module:function` naming it: imported when a source of this kind is
    first opened, so an optional integration costs nothing until it is used."""

    def open(self, arg: str, settings: Settings) -> TraceSource:
        factory = self.factory
        if isinstance(factory, str):
            module, _, name = factory.partition(":")
            factory = getattr(importlib.import_module(module), name)
        return factory(arg, settings)


_KINDS: dict[str, SourceKind] = {}


def register_source(kind: str, usage: str, factory: SourceFactory | str) -> None:
    """Make `KIND:ARG` (or a bare `KIND`) specs open with `factory(ARG, settings)`;
    `factory` may be `module:function`, imported on first use."""
    _KINDS[kind] = SourceKind(usage=usage, factory=factory)


def open_source(spec: str, settings: Settings) -> TraceSource:
    """The source a spec names; SourceError (naming the accepted forms) otherwise."""
    kind, _, arg = spec.partition(":")
    if kind not in _KINDS:
        raise SourceError(
            f"unknown trace source {spec!r}: use " + " or ".join(k.usage for k in _KINDS.values())
        )
    return _KINDS[kind].open(arg, settings)


# -- jsonl ---------------------------------------------------------------------------------


@dataclass
class _FileState:
    path: str
    offset: int  # bytes consumed: the start of the next line to read
    line: int  # lines consumed
    head: str  # sha256 of the first head_len bytes
    head_len: int

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _head_hash(fh: Any, length: int) -> str:
    fh.seek(0)
    return hashlib.sha256(fh.read(length)).hexdigest()


class JsonlSource:
    """`jsonl:PATH`: a JSONL file or a directory of `*.jsonl` files, read incrementally."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(
                f"jsonl:{path}: no such file or directory; give an existing .jsonl file or a "
                "directory of *.jsonl files"
            )
        self.is_dir = self.path.is_dir()
        self._spec = "jsonl:" + os.path.abspath(self.path)

    @property
    def spec(self) -> str:
        return self._spec

    async def read(
        self, cursor: Cursor | None, *, max_traces: int = 1000
    ) -> tuple[list[Trace], list[str], Cursor]:
        return await asyncio.to_thread(self.read_sync, cursor, max_traces)

    # -- one read ----------------------------------------------------------------------

    def read_sync(
        self, cursor: Cursor | None, max_traces: int = 1000
    ) -> tuple[list[Trace], list[str], Cursor]:
        """`read` without the event loop (it runs in a worker thread)."""
        if max_traces < 1:
            raise ValueError(f"max_traces={max_traces}: read at least 1 trace")
        known = self._parse_cursor(cursor)
        traces: list[Trace] = []
        errors: list[str] = []
        files: dict[str, dict[str, Any]] = {}
        for ident, path in self._files(known):
            state = known.get(ident)
            if len(traces) >= max_traces or len(errors) >= max_traces:
                if state is not None:  # not reached this time: keep the position as it was
                    files[ident] = state.to_json()
                continue
            new = self._read_file(path, state, traces, errors, max_traces)
            if new is not None:
                files[ident] = new.to_json()
        return traces, errors, {"files": files}

    def _parse_cursor(self, cursor: Cursor | None) -> dict[str, _FileState]:
        if cursor is None:
            return {}
        try:
            return {k: _FileState(**v) for k, v in cursor["files"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise SourceError(
                f"{self.spec}: the stored cursor is not a jsonl cursor ({exc!r}); delete its "
                "row from trace_cursors to read the files from their start"
            ) from None

    def _files(self, known: dict[str, _FileState]) -> list[tuple[str, Path]]:
        """(identity, path) to read: files renamed away first (they are older), then the
        source's files by name."""
        if self.is_dir:
            primary = sorted(p for p in self.path.glob("*.jsonl") if p.is_file())
        else:
            primary = [self.path]
        found: dict[str, Path] = {}
        for p in primary:
            try:
                found[_identity(p.stat())] = p
            except FileNotFoundError:  # rotated away and not yet re-created
                continue
        missing = set(known) - set(found)
        rotated: dict[str, Path] = {}
        if missing:  # look for them, renamed, in the same directory
            folder = self.path if self.is_dir else self.path.parent
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        ident = _identity(entry.stat())
                    except FileNotFoundError:
                        continue
                    if ident in missing and entry.is_file():
                        rotated[ident] = folder / entry.name
        ordered = sorted(rotated.items(), key=lambda kv: kv[1].name)
        return ordered + list(found.items())

    def _read_file(
        self,
        path: Path,
        state: _FileState | None,
        traces: list[Trace],
        errors: list[str],
        max_traces: int,
    ) -> _FileState | None:
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            return state
        with fh:
            size = os.fstat(fh.fileno()).st_size
            resumed = (
                state is not None
                and size >= state.offset
                and _head_hash(fh, state.head_len) == state.head
            )  # otherwise new, truncated or rewritten: from the start
            offset, line = (state.offset, state.line) if state and resumed else (0, 0)
            offset, line = self._scan(fh, path, offset, line, traces, errors, max_traces)
            head_len = min(offset, HEAD_BYTES)
            if state is not None and resumed and state.head_len == head_len:
                head = state.head
            else:
                head = _head_hash(fh, head_len)
        return _FileState(path=str(path), offset=offset, line=line, head=head, head_len=head_len)

    def _scan(
        self,
        fh: Any,
        path: Path,
        offset: int,
        line: int,
        traces: list[Trace],
        errors: list[str],
        max_traces: int,
    ) -> tuple[int, int]:
        """Parse complete lines from `offset` until EOF or the budget; returns the offset
        and line count after the last line consumed."""
        fh.seek(offset)
        buf = b""
        skipping = False  # inside a line longer than MAX_LINE_BYTES
        skipped = 0
        while len(traces) < max_traces and len(errors) < max_traces:
            chunk = fh.read(CHUNK_BYTES)
            if not chunk:
                break
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    skipped += len(chunk)
                    continue
                line += 1
                skipped += nl + 1
                errors.append(
                    f"{path}:{line}: line of {skipped:,} bytes, longer than "
                    f"{MAX_LINE_BYTES:,}; skipped; keep one trace a line under 16 MiB"
                )
                offset += skipped
                skipping, skipped = False, 0
                chunk = chunk[nl + 1 :]
            buf += chunk
            start = 0
            while len(traces) < max_traces and len(errors) < max_traces:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                line += 1
                raw = buf[start:nl].rstrip(b"\r")
                start = nl + 1
                if not raw.strip():
                    continue
                try:
                    traces.append(Trace.from_json_line(raw, f"{path}:{line}"))
                except TraceError as exc:
                    errors.append(str(exc))
            offset += start
            buf = buf[start:]
            if len(buf) > MAX_LINE_BYTES and b"\n" not in buf:
                skipping, skipped, buf = True, len(buf), b""
        return offset, line


def _open_jsonl(arg: str, settings: Settings) -> TraceSource:
    if not arg:
        raise SourceError("jsonl: needs a path; write jsonl:PATH (a file or a directory)")
    return JsonlSource(arg)


register_source("jsonl", "jsonl:PATH (a .jsonl file or a directory of *.jsonl files)", _open_jsonl)
register_source(
    "langsmith",
    "langsmith:PROJECT (root runs of a LangSmith project)",
    "evalkeeper.integrations.langsmith.source:open_langsmith",  # the SDK only when opened
)
