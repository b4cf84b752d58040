"""`langsmith:PROJECT`: the root runs of a LangSmith project as traces, read since a cursor.

A read asks for the project's root runs that started at or after the cursor's time
(`list_runs(project_name=…, is_root=True, start_time=…, order="asc")`), oldest first, and
for each root the runs of its trace (`list_runs(trace_id=…)`): child runs of type `tool`
are the tool calls (name and arguments, in start order), child runs of type `retriever`
the retrieved context (`outputs.documents[*].page_content`). The agent version and model
come from the root run's metadata (`agent_version`, `version` or LangSmith's
`revision_id`; `model` or `ls_model_name`, else an `llm` child's `ls_model_name`).

The cursor is `{"start_time": ISO, "ids": [...]}`: the start time of the newest root read,
and the ids of the roots read at exactly that time (LangSmith's filter is inclusive, so
they come back and are skipped). The traces come out unredacted: `evalkeeper.traces.ingest`
redacts every source's traces before they are stored or shown.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from evalkeeper.integrations.langsmith.client import (
    LangSmithError,
    connect,
    endpoint,
    quiet_deprecations,
)
from evalkeeper.settings import Settings
from evalkeeper.traces.model import ContextDoc, ToolCall, Trace, describe, iso_utc
from evalkeeper.traces.sources import Cursor, SourceError, TraceSource

if TYPE_CHECKING:
    from langsmith import schemas as ls_schemas

VERSION_KEYS = ("agent_version", "version", "revision_id")
MODEL_KEYS = ("model", "ls_model_name", "model_name")
CONVERSATION_KEYS = ("conversation_id", "thread_id", "session_id")
ENVIRONMENT_KEYS = ("environment", "env")
SERVICE_KEYS = ("service",)
CONSUMED = {*VERSION_KEYS, *MODEL_KEYS, *CONVERSATION_KEYS, *ENVIRONMENT_KEYS, *SERVICE_KEYS}


def _utc(when: datetime) -> datetime:
    """LangSmith's times are UTC, sometimes written without an offset."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _first(metadata: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _metadata(run: ls_schemas.Run) -> dict[str, Any]:
    extra = run.extra or {}
    meta = extra.get("metadata") or {}
    return dict(meta) if isinstance(meta, dict) else {}


def _tool_args(inputs: dict[str, Any]) -> dict[str, Any]:
    """A tool run's inputs as arguments: LangChain records `{"input": "<json text>"}`."""
    if set(inputs) == {"input"} and isinstance(inputs["input"], str):
        try:
            parsed = json.loads(inputs["input"])
        except ValueError:
            return inputs
        return parsed if isinstance(parsed, dict) else inputs
    return inputs


def _documents(run: ls_schemas.Run) -> list[ContextDoc]:
    outputs = run.outputs or {}
    docs = outputs.get("documents", outputs.get("output"))
    if not isinstance(docs, list):
        return []
    out = []
    for i, doc in enumerate(docs):
        if isinstance(doc, str):
            out.append(ContextDoc(id=f"{run.id}:{i}", text=doc))
            continue
        if not isinstance(doc, dict):
            continue
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        doc_id = doc.get("id") or meta.get("id") or meta.get("source") or f"{run.id}:{i}"
        text = doc.get("page_content", doc.get("text", ""))
        out.append(ContextDoc(id=str(doc_id), text=str(text)))
    return out


def run_to_trace(root: ls_schemas.Run, children: list[ls_schemas.Run], project: str) -> Trace:
    """One root run and the other runs of its trace as a Trace (unredacted)."""
    meta = _metadata(root)
    ordered = sorted(children, key=lambda r: (r.dotted_order or "", _utc(r.start_time)))
    tools = [
        ToolCall(name=r.name, args=_tool_args(dict(r.inputs or {})))
        for r in ordered
        if r.run_type == "tool"
    ]
    context = [d for r in ordered if r.run_type == "retriever" for d in _documents(r)]
    model = _first(meta, MODEL_KEYS)
    if model is None:
        for r in ordered:
            if r.run_type == "llm":
                model = _first(_metadata(r), MODEL_KEYS)
                if model:
                    break
    latency = None
    if root.end_time is not None:
        latency = max(0.0, (_utc(root.end_time) - _utc(root.start_time)).total_seconds() * 1000)
    free = {k: v for k, v in meta.items() if k not in CONSUMED}
    free["langsmith_project"] = project
    free["langsmith_run_name"] = root.name
    if root.tags:
        free["langsmith_tags"] = list(root.tags)
    outputs = root.outputs
    if outputs is not None and not isinstance(outputs, dict):
        outputs = {"output": outputs}
    return Trace(
        trace_id=str(root.id),
        time=_utc(root.start_time),
        service=_first(meta, SERVICE_KEYS) or project,
        environment=_first(meta, ENVIRONMENT_KEYS),
        version=_first(meta, VERSION_KEYS),
        model=model,
        inputs=dict(root.inputs or {}),
        outputs=None if root.error and not outputs else outputs,
        latency_ms=latency,
        error=root.error,
        tool_calls=tools,
        context=context,
        conversation_id=_first(meta, CONVERSATION_KEYS),
        metadata=free,
    )


class LangSmithSource:
    """`langsmith:PROJECT`: root runs of a LangSmith project, read incrementally."""

    def __init__(self, project: str, settings: Settings) -> None:
        if not project:
            raise SourceError("langsmith: needs a project; write langsmith:PROJECT")
        self.project = project
        self.settings = settings
        self._spec = f"langsmith:{project}@{endpoint(settings)}"

    @property
    def spec(self) -> str:
        return self._spec

    async def read(
        self, cursor: Cursor | None, *, max_traces: int = 1000
    ) -> tuple[list[Trace], list[str], Cursor]:
        return await asyncio.to_thread(self.read_sync, cursor, max_traces)

    async def read_run(self, run_id: str) -> Trace:
        """One run by id (`read_run`) with the runs of its trace, as a Trace."""
        return await asyncio.to_thread(self.read_run_sync, run_id)

    def read_run_sync(self, run_id: str) -> Trace:
        conn = self._connect()
        try:
            with quiet_deprecations():
                root = conn.client.read_run(run_id)
                children = self._children(conn, root)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"langsmith:{self.project}: run {run_id}: {type(exc).__name__}: {exc}; check "
                "the id (`evalkeeper traces ingest --source langsmith:PROJECT` reads them all)"
            ) from None
        return run_to_trace(root, children, self.project)

    def read_sync(
        self, cursor: Cursor | None, max_traces: int = 1000
    ) -> tuple[list[Trace], list[str], Cursor]:
        """`read` without the event loop (it runs in a worker thread)."""
        if max_traces < 1:
            raise ValueError(f"max_traces={max_traces}: read at least 1 trace")
        since, seen = self._parse_cursor(cursor)
        conn = self._connect()
        traces: list[Trace] = []
        errors: list[str] = []
        last_time, last_ids = since, list(seen)
        try:
            with quiet_deprecations():
                roots = conn.client.list_runs(
                    project_name=self.project,
                    is_root=True,
                    start_time=since or datetime(1970, 1, 1, tzinfo=UTC),
                    order="asc",
                    limit=max_traces + len(seen),
                )
                for root in roots:
                    rid = str(root.id)
                    if rid in seen:
                        continue
                    start = _utc(root.start_time)
                    try:
                        traces.append(run_to_trace(root, self._children(conn, root), self.project))
                    except ValidationError as exc:
                        errors.append(f"langsmith:{self.project}: run {rid}: {describe(exc)}")
                    if last_time is None or start > last_time:
                        last_time, last_ids = start, [rid]
                    else:
                        last_ids.append(rid)
                    if len(traces) + len(errors) >= max_traces:
                        break
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"langsmith:{self.project}: reading runs failed: {type(exc).__name__}: {exc}; "
                "check the project name, EVALKEEPER_LANGSMITH_API_KEY and "
                "EVALKEEPER_LANGSMITH_ENDPOINT"
            ) from None
        new: Cursor = {"start_time": None if last_time is None else iso_utc(last_time)}
        new["ids"] = sorted(set(last_ids))
        if cursor is None and last_time is None:
            new = {"start_time": None, "ids": []}
        return traces, errors, new

    def _connect(self) -> Any:
        try:
            return connect(self.settings)
        except LangSmithError as exc:
            raise SourceError(f"langsmith:{self.project}: {exc}") from None

    def _children(self, conn: Any, root: ls_schemas.Run) -> list[ls_schemas.Run]:
        runs = conn.client.list_runs(project_id=root.session_id, trace_id=root.trace_id)
        return [r for r in runs if r.id != root.id]

    def _parse_cursor(self, cursor: Cursor | None) -> tuple[datetime | None, set[str]]:
        if cursor is None:
            return None, set()
        try:
            raw = cursor["start_time"]
            when = None if raw is None else _utc(datetime.fromisoformat(raw))
            return when, {str(i) for i in cursor["ids"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(
                f"{self.spec}: the stored cursor is not a langsmith cursor ({exc!r}); delete "
                "its row from trace_cursors to read the project from its start"
            ) from None


def open_langsmith(arg: str, settings: Settings) -> TraceSource:
    """`langsmith:PROJECT` (registered by name in `evalkeeper.traces.sources`)."""
    return LangSmithSource(arg, settings)
