"""A LangSmith-compatible REST API on 127.0.0.1, for tests of the LangSmith integration.

A real HTTP server (FastAPI under uvicorn, in a background thread) that answers the part of
LangSmith's API the official `langsmith` SDK calls for what evalkeeper does: `/info`,
sessions (projects and experiments), runs (query, read, create one, batch ingest), datasets,
examples (JSON and the multipart `/v1/platform/datasets/{id}/examples` form the SDK uses
when `/info` announces `dataset_examples_multipart_enabled`, as LangSmith does) and
feedback. State lives in memory; seed it with `add_run`, `add_dataset`, `add_example`.

Every request is recorded (`requests`: method, path, query, body as parsed JSON or
multipart parts), so a test asserts on what the SDK actually sent. A request to a path the
server does not answer is recorded too, and answered 404 with the path in the message:
`unknown_requests()` lists them. `fail_next(n, status)` answers the next `n` requests of a
method and path prefix with `status`, for failure tests.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from evalkeeper.errors import EvalkeeperError
from evalkeeper.testing.serving import ThreadedUvicorn

TENANT_ID = "00000000-0000-4000-8000-000000000001"
INFO = {
    "version": "0.12.0",
    "license_expiration_time": None,
    "batch_ingest_config": {
        "use_multipart_endpoint": True,
        "scale_up_qsize_trigger": 1000,
        "scale_up_nthreads_limit": 16,
        "scale_down_nempty_trigger": 4,
        "size_limit": 100,
        "size_limit_bytes": 20971520,
    },
    "instance_flags": {
        "dataset_examples_multipart_enabled": True,
        "examples_multipart_enabled": True,
        "ch_query_enabled": True,
        "sdb_query_enabled": False,
    },
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 200
    known: bool = True


@dataclass
class _Failure:
    method: str
    prefix: str
    status: int
    remaining: int


class _NotFound(EvalkeeperError):
    pass


@dataclass
class LangSmithServer:
    """Start with `with LangSmithServer() as server:`; `server.url` is the API URL."""

    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = "127.0.0.1"
    multipart_examples: bool = True

    def __post_init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self._failures: list[_Failure] = []
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"/info"), self._info),
            ("GET", re.compile(r"/sessions"), self._list_sessions),
            ("POST", re.compile(r"/sessions"), self._create_session),
            ("GET", re.compile(r"/sessions/(?P<id>[^/]+)"), self._read_session),
            ("PATCH", re.compile(r"/sessions/(?P<id>[^/]+)"), self._update_session),
            ("POST", re.compile(r"/runs/query"), self._query_runs),
            ("POST", re.compile(r"/runs/batch"), self._batch_runs),
            ("POST", re.compile(r"/runs"), self._create_run),
            ("GET", re.compile(r"/runs/(?P<id>[^/]+)"), self._read_run),
            ("PATCH", re.compile(r"/runs/(?P<id>[^/]+)"), self._update_run),
            ("GET", re.compile(r"/datasets"), self._list_datasets),
            ("POST", re.compile(r"/datasets"), self._create_dataset),
            ("GET", re.compile(r"/datasets/(?P<id>[^/]+)"), self._read_dataset),
            ("GET", re.compile(r"/examples"), self._list_examples),
            ("POST", re.compile(r"/examples"), self._create_example),
            ("POST", re.compile(r"/examples/bulk"), self._bulk_examples),
            ("GET", re.compile(r"/examples/(?P<id>[^/]+)"), self._read_example),
            ("PATCH", re.compile(r"/examples/(?P<id>[^/]+)"), self._patch_example),
            ("DELETE", re.compile(r"/examples/(?P<id>[^/]+)"), self._delete_example),
            ("DELETE", re.compile(r"/examples"), self._delete_examples),
            (
                "POST",
                re.compile(r"/v1/platform/datasets/(?P<id>[^/]+)/examples"),
                self._multipart_create,
            ),
            (
                "PATCH",
                re.compile(r"/v1/platform/datasets/(?P<id>[^/]+)/examples"),
                self._multipart_update,
            ),
            ("POST", re.compile(r"/feedback"), self._create_feedback),
            ("GET", re.compile(r"/feedback"), self._list_feedback),
        ]
        self.app = self._build_app()
        self._serving: ThreadedUvicorn | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LangSmithServer:
        self._serving = ThreadedUvicorn(
            self.app, host=self.host, backlog=128, name="LangSmith test server"
        )
        self.port = self._serving.start()
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()

    def __enter__(self) -> LangSmithServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- seeding and inspection ----------------------------------------------------------

    def add_session(self, name: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return self._new_session({"name": name, **fields})

    def add_run(self, session_name: str, **fields: Any) -> dict[str, Any]:
        """Store a run in the named project (created when missing). Fields as LangSmith
        returns them: id, name, run_type, start_time, end_time, inputs, outputs, error,
        extra, parent_run_id, trace_id, dotted_order, tags."""
        with self.lock:
            session = self._session_by_name(session_name) or self._new_session(
                {"name": session_name}
            )
            return self._store_run({**fields, "session_id": session["id"]})

    def add_dataset(self, name: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return self._new_dataset({"name": name, **fields})

    def add_example(self, dataset_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            return self._store_example({**fields, "dataset_id": dataset_id})

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def requests_to(self, method: str, path_prefix: str) -> list[Recorded]:
        with self.lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    def unknown_requests(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if not r.known]

    def fail_next(self, method: str, path_prefix: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` requests of `method` to `path_prefix…` with `status`."""
        with self.lock:
            self._failures.append(_Failure(method, path_prefix, status, times))

    def examples_of(self, dataset_name: str) -> list[dict[str, Any]]:
        with self.lock:
            ds = next((d for d in self.datasets.values() if d["name"] == dataset_name), None)
            if ds is None:
                return []
            return [e for e in self.examples.values() if e["dataset_id"] == ds["id"]]

    def runs_of(self, session_name: str) -> list[dict[str, Any]]:
        with self.lock:
            s = self._session_by_name(session_name)
            return (
                [] if s is None else [r for r in self.runs.values() if r["session_id"] == s["id"]]
            )

    # -- the HTTP face ----------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        async def handle(path: str, request: Request) -> Response:
            raw = await request.body()
            ctype = request.headers.get("content-type", "")
            body = _parse_body(raw, ctype)
            query: dict[str, list[str]] = {}
            for key, value in request.query_params.multi_items():
                query.setdefault(key, []).append(value)
            rec = Recorded(request.method, "/" + path, query, body)
            with self.lock:
                self.requests.append(rec)
                status = self._failure_for(rec)
                if status is not None:
                    rec.status = status
                    return JSONResponse({"detail": f"scripted failure {status}"}, status)
                handler, params = self._route(rec.method, rec.path)
                if handler is None:
                    rec.known, rec.status = False, 404
                    return JSONResponse(
                        {"detail": f"{rec.method} {rec.path}: not answered by the test server"},
                        404,
                    )
                try:
                    status, payload = handler(rec, **params)
                except _NotFound as exc:
                    status, payload = 404, {"detail": str(exc)}
                rec.status = status
            return JSONResponse(payload, status)

        return app

    def _failure_for(self, rec: Recorded) -> int | None:
        for f in self._failures:
            if f.remaining and f.method == rec.method and rec.path.startswith(f.prefix):
                f.remaining -= 1
                return f.status
        return None

    def _route(self, method: str, path: str) -> tuple[Callable[..., Any] | None, dict[str, str]]:
        path = path.rstrip("/") or "/"
        for m, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if m == method and match:
                return handler, match.groupdict()
        return None, {}

    # -- info and sessions ----------------------------------------------------------------

    def _info(self, rec: Recorded) -> tuple[int, Any]:
        info = json.loads(json.dumps(INFO))
        flags = info["instance_flags"]
        flags["dataset_examples_multipart_enabled"] = self.multipart_examples
        return 200, info

    def _new_session(self, fields: dict[str, Any]) -> dict[str, Any]:
        session = {
            "id": str(fields.get("id") or uuid.uuid4()),
            "name": fields["name"],
            "description": fields.get("description"),
            "extra": fields.get("extra"),
            "reference_dataset_id": fields.get("reference_dataset_id"),
            "start_time": fields.get("start_time") or now_iso(),
            "end_time": fields.get("end_time"),
            "tenant_id": TENANT_ID,
        }
        self.sessions[session["id"]] = session
        return session

    def _session_by_name(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.sessions.values() if s["name"] == name), None)

    def _session_out(self, s: dict[str, Any]) -> dict[str, Any]:
        runs = [r for r in self.runs.values() if r["session_id"] == s["id"]]
        return {**s, "run_count": len(runs)}

    def _list_sessions(self, rec: Recorded) -> tuple[int, Any]:
        found = list(self.sessions.values())
        if "name" in rec.query:
            found = [s for s in found if s["name"] in rec.query["name"]]
        if "reference_dataset" in rec.query:
            found = [
                s for s in found if s["reference_dataset_id"] in rec.query["reference_dataset"]
            ]
        return 200, _page([self._session_out(s) for s in found], rec.query)

    def _create_session(self, rec: Recorded) -> tuple[int, Any]:
        body = rec.body
        existing = self._session_by_name(body["name"])
        if existing is not None:
            if rec.query.get("upsert") == ["true"]:
                return 200, self._session_out(existing)
            return 409, {"detail": f"Session with name {body['name']} already exists"}
        return 200, self._session_out(self._new_session(body))

    def _read_session(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.sessions:
            raise _NotFound(f"Session {id} not found")
        return 200, self._session_out(self.sessions[id])

    def _update_session(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.sessions:
            raise _NotFound(f"Session {id} not found")
        self.sessions[id].update({k: v for k, v in rec.body.items() if v is not None})
        return 200, self._session_out(self.sessions[id])

    # -- runs -----------------------------------------------------------------------------

    def _store_run(self, fields: dict[str, Any]) -> dict[str, Any]:
        run_id = str(fields.get("id") or uuid.uuid4())
        start = fields.get("start_time") or now_iso()
        run = {
            "id": run_id,
            "name": fields.get("name", "run"),
            "run_type": fields.get("run_type", "chain"),
            "start_time": start,
            "end_time": fields.get("end_time"),
            "inputs": fields.get("inputs") or {},
            "outputs": fields.get("outputs"),
            "error": fields.get("error"),
            "extra": fields.get("extra") or {},
            "tags": fields.get("tags") or [],
            "parent_run_id": fields.get("parent_run_id"),
            "trace_id": str(fields.get("trace_id") or run_id),
            "dotted_order": fields.get("dotted_order") or "",
            "session_id": fields["session_id"],
            "reference_example_id": fields.get("reference_example_id"),
            "status": "error" if fields.get("error") else "success",
        }
        self.runs[run_id] = run
        return run

    def _session_for_run(self, body: dict[str, Any]) -> str:
        if body.get("session_id"):
            return str(body["session_id"])
        name = body.get("session_name") or "default"
        session = self._session_by_name(name) or self._new_session({"name": name})
        return str(session["id"])

    def _create_run(self, rec: Recorded) -> tuple[int, Any]:
        body = rec.body
        if str(body.get("id")) in self.runs:
            return 409, {"detail": f"Run {body['id']} already exists"}
        self._store_run({**body, "session_id": self._session_for_run(body)})
        return 202, {"message": "Run created"}

    def _batch_runs(self, rec: Recorded) -> tuple[int, Any]:
        for body in rec.body.get("post") or []:
            if str(body.get("id")) not in self.runs:  # LangSmith ignores a second post
                self._store_run({**body, "session_id": self._session_for_run(body)})
        for body in rec.body.get("patch") or []:
            run = self.runs.get(str(body.get("id")))
            if run is not None:
                run.update({k: v for k, v in body.items() if v is not None})
        return 202, {"message": "Runs batch ingested"}

    def _update_run(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.runs:
            raise _NotFound(f"Run {id} not found")
        self.runs[id].update({k: v for k, v in rec.body.items() if v is not None})
        return 202, {"message": "Run updated"}

    def _read_run(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.runs:
            raise _NotFound(f"Run {id} not found")
        return 200, self.runs[id]

    def _query_runs(self, rec: Recorded) -> tuple[int, Any]:
        q = rec.body or {}
        found = list(self.runs.values())
        if q.get("session"):
            found = [r for r in found if r["session_id"] in {str(s) for s in q["session"]}]
        if q.get("is_root") is not None:
            found = [r for r in found if (r["parent_run_id"] is None) == bool(q["is_root"])]
        if q.get("trace"):
            found = [r for r in found if r["trace_id"] == str(q["trace"])]
        if q.get("run_type"):
            found = [r for r in found if r["run_type"] == q["run_type"]]
        if q.get("id"):
            found = [r for r in found if r["id"] in {str(i) for i in q["id"]}]
        if q.get("parent_run"):
            found = [r for r in found if r["parent_run_id"] == str(q["parent_run"])]
        if q.get("reference_example"):
            refs = {str(i) for i in q["reference_example"]}
            found = [r for r in found if str(r["reference_example_id"]) in refs]
        if q.get("start_time"):
            since = _parse_time(q["start_time"])
            found = [r for r in found if _parse_time(r["start_time"]) >= since]
        found.sort(key=lambda r: (_parse_time(r["start_time"]), r["id"]))
        if q.get("order", "desc") == "desc":
            found.reverse()
        offset = int(q.get("cursor") or 0)
        limit = min(int(q.get("limit") or 100), 100)
        page = found[offset : offset + limit]
        nxt = offset + limit if offset + limit < len(found) else None
        return 200, {"runs": page, "cursors": {"next": None if nxt is None else str(nxt)}}

    # -- datasets and examples ----------------------------------------------------------------

    def _new_dataset(self, fields: dict[str, Any]) -> dict[str, Any]:
        ds = {
            "id": str(fields.get("id") or uuid.uuid4()),
            "name": fields["name"],
            "description": fields.get("description"),
            "data_type": fields.get("data_type", "kv"),
            "created_at": now_iso(),
            "modified_at": now_iso(),
            "metadata": (fields.get("extra") or {}).get("metadata") or fields.get("metadata"),
            "tenant_id": TENANT_ID,
        }
        self.datasets[ds["id"]] = ds
        return ds

    def _dataset_out(self, ds: dict[str, Any]) -> dict[str, Any]:
        n = sum(1 for e in self.examples.values() if e["dataset_id"] == ds["id"])
        return {**ds, "example_count": n}

    def _list_datasets(self, rec: Recorded) -> tuple[int, Any]:
        found = list(self.datasets.values())
        if "name" in rec.query:
            found = [d for d in found if d["name"] in rec.query["name"]]
        if "id" in rec.query:
            found = [d for d in found if d["id"] in rec.query["id"]]
        if "name_contains" in rec.query:
            part = rec.query["name_contains"][0]
            found = [d for d in found if part in d["name"]]
        return 200, _page([self._dataset_out(d) for d in found], rec.query)

    def _create_dataset(self, rec: Recorded) -> tuple[int, Any]:
        if any(d["name"] == rec.body["name"] for d in self.datasets.values()):
            return 409, {"detail": f"Dataset with name {rec.body['name']} already exists"}
        return 200, self._dataset_out(self._new_dataset(rec.body))

    def _read_dataset(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.datasets:
            raise _NotFound(f"Dataset {id} not found")
        return 200, self._dataset_out(self.datasets[id])

    def _store_example(self, fields: dict[str, Any]) -> dict[str, Any]:
        dataset_id = str(fields["dataset_id"])
        if dataset_id not in self.datasets:
            raise _NotFound(f"Dataset {dataset_id} not found")
        outputs = fields.get("outputs")
        if outputs is None:
            outputs = fields.get("reference_outputs")
        ex: dict[str, Any] = {
            "id": str(fields.get("id") or uuid.uuid4()),
            "dataset_id": dataset_id,
            "inputs": fields.get("inputs") or {},
            "outputs": outputs,
            "metadata": fields.get("metadata"),
            "created_at": fields.get("created_at") or now_iso(),
            "modified_at": now_iso(),
            "source_run_id": fields.get("source_run_id"),
        }
        self.examples[ex["id"]] = ex
        return ex

    def _list_examples(self, rec: Recorded) -> tuple[int, Any]:
        found = list(self.examples.values())
        if "dataset" in rec.query:
            found = [e for e in found if e["dataset_id"] in rec.query["dataset"]]
        if "id" in rec.query:
            found = [e for e in found if e["id"] in rec.query["id"]]
        found.sort(key=lambda e: (e["created_at"], e["id"]))  # LangSmith: oldest first
        return 200, _page(found, rec.query)

    def _create_example(self, rec: Recorded) -> tuple[int, Any]:
        if str(rec.body.get("id")) in self.examples:
            return 409, {"detail": f"Example {rec.body['id']} already exists"}
        return 200, self._store_example(rec.body)

    def _bulk_examples(self, rec: Recorded) -> tuple[int, Any]:
        return 200, [self._store_example(e) for e in rec.body]

    def _read_example(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.examples:
            raise _NotFound(f"Example {id} not found")
        return 200, self.examples[id]

    def _patch_example(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if id not in self.examples:
            raise _NotFound(f"Example {id} not found")
        ex = self.examples[id]
        for key in ("inputs", "outputs", "metadata"):
            if rec.body.get(key) is not None:
                ex[key] = rec.body[key]
        ex["modified_at"] = now_iso()
        return 200, {"message": "Example updated"}

    def _delete_example(self, rec: Recorded, id: str) -> tuple[int, Any]:
        if self.examples.pop(id, None) is None:
            raise _NotFound(f"Example {id} not found")
        return 200, {"message": "Example deleted"}

    def _delete_examples(self, rec: Recorded) -> tuple[int, Any]:
        for eid in rec.query.get("example_ids", []):
            self.examples.pop(eid, None)
        return 200, {"message": "Examples deleted"}

    def _multipart_examples(self, rec: Recorded) -> dict[str, dict[str, Any]]:
        if not isinstance(rec.body, dict) or "parts" not in rec.body:
            raise _NotFound("expected a multipart/form-data body")
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in rec.body["parts"].items():
            eid, _, part = name.partition(".")
            entry = grouped.setdefault(eid, {"id": eid})
            if part:
                entry[part] = value
            else:
                entry.update(value)
        return grouped

    def _multipart_create(self, rec: Recorded, id: str) -> tuple[int, Any]:
        ids = []
        for entry in self._multipart_examples(rec).values():
            self._store_example({**entry, "dataset_id": id})
            ids.append(entry["id"])
        return 201, {"example_ids": ids, "count": len(ids)}

    def _multipart_update(self, rec: Recorded, id: str) -> tuple[int, Any]:
        ids = []
        for eid, entry in self._multipart_examples(rec).items():
            ex = self.examples.get(eid)
            if ex is None or ex["dataset_id"] != id:
                raise _NotFound(f"Example {eid} not found in dataset {id}")
            for key in ("inputs", "outputs", "metadata"):
                if key in entry:
                    ex[key] = entry[key]
            ex["modified_at"] = now_iso()
            ids.append(eid)
        return 200, {"example_ids": ids, "count": len(ids)}

    # -- feedback -----------------------------------------------------------------------------

    def _create_feedback(self, rec: Recorded) -> tuple[int, Any]:
        body = rec.body
        fid = str(body.get("id") or uuid.uuid4())
        if fid in self.feedback:
            return 409, {"detail": f"Feedback {fid} already exists"}
        if body.get("run_id") and str(body["run_id"]) not in self.runs:
            raise _NotFound(f"Run {body['run_id']} not found")
        run = self.runs.get(str(body.get("run_id")))
        trace_id = body.get("trace_id") or (run["trace_id"] if run else None)
        stamp = now_iso()
        self.feedback[fid] = {
            "created_at": stamp,
            "modified_at": stamp,
            **body,
            "id": fid,
            "trace_id": trace_id,
        }
        return 200, self.feedback[fid]

    def _list_feedback(self, rec: Recorded) -> tuple[int, Any]:
        found = list(self.feedback.values())
        if "run" in rec.query:
            found = [f for f in found if str(f.get("run_id")) in rec.query["run"]]
        if "key" in rec.query:
            found = [f for f in found if f.get("key") in rec.query["key"]]
        return 200, _page(found, rec.query)


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    offset = int(query.get("offset", ["0"])[0])
    limit = int(query.get("limit", ["100"])[0])
    return items[offset : offset + limit]


def _parse_time(value: str) -> datetime:
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _parse_body(raw: bytes, ctype: str) -> Any:
    if not raw:
        return None
    if ctype.startswith("multipart/"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        parts: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            try:
                parts[str(name)] = json.loads(payload)
            except ValueError:
                parts[str(name)] = payload.decode("utf-8", "replace")
        return {"parts": parts}
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")}
