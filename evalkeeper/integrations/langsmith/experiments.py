"""Experiment upload: an evalkeeper experiment as a LangSmith experiment on its dataset.

What is sent, from the warehouse (the local experiment is only read, never changed):

- the experiment: a session named after the experiment id, on the LangSmith dataset of
  the same name (`reference_dataset_id`), with metadata `evalkeeper_experiment_id`,
  `branch`, `commit`, `target` (spec, agent version, model), `dataset_version`, `suite`;
  when the dataset is not in LangSmith yet, it is pushed first (created from the
  experiment's examples);
- one run per example and repetition (`batch_ingest_runs`): inputs, outputs, error,
  start and end time, `reference_example_id`;
- one feedback entry per score: key = evaluator name, score, comment; an evaluator's error
  is feedback with `error=True` and the message as comment, never a score; skipped scores
  are counted, not sent.

A completed upload is recorded beside the warehouse (`uploads.record_upload`: the session,
its web address), so the experiment's report can link it.

Ids are uuid5 of evalkeeper's ids (`stable_uuid`), and what the session already holds is
read first, so a resumed or repeated upload sends only what is missing: never a duplicate.
A failure raises `LangSmithError` naming what failed; what was sent before it stays, and
the next upload completes it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from evalkeeper.integrations.langsmith.client import (
    Connection,
    LangSmithError,
    connect,
    endpoint,
    example_uuid,
    quiet_deprecations,
    stable_uuid,
)
from evalkeeper.integrations.langsmith.examples import to_remote
from evalkeeper.integrations.langsmith.uploads import record_upload
from evalkeeper.models import Example, ExampleMetadata
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

RUN_BATCH = 100
FEEDBACK_LOOKUP = 40


class UploadSummary(BaseModel):
    """What one upload did."""

    experiment_id: str = Field(description="The evalkeeper experiment.")
    project: str = Field(description="The LangSmith experiment (session) name.")
    project_id: str = Field(description="The LangSmith session id.")
    dataset_id: str = Field(description="The LangSmith dataset it is attached to.")
    dataset_created: bool = Field(False, description="The dataset was pushed for this upload.")
    runs_created: int = Field(0, description="Runs sent now.")
    runs_existing: int = Field(0, description="Runs LangSmith already held.")
    feedback_created: int = Field(0, description="Feedback entries sent now.")
    feedback_existing: int = Field(0, description="Feedback entries already held.")
    errors_as_feedback: int = Field(0, description="Evaluator errors sent as error feedback.")
    skipped_scores: int = Field(0, description="Skipped scores (not sent).")
    url: str | None = Field(None, description="The LangSmith experiment's web address.")


def run_uuid(experiment_id: str, example_id: str, repetition: int) -> str:
    return str(stable_uuid("run", experiment_id, example_id, str(repetition)))


def feedback_uuid(experiment_id: str, example_id: str, repetition: int, evaluator: str) -> str:
    return str(stable_uuid("feedback", experiment_id, example_id, str(repetition), evaluator))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _load(settings: Settings, experiment_id: str) -> tuple[dict[str, Any], list[Any], list[Any]]:
    wh = Warehouse.from_settings(settings)
    exp = wh.query("SELECT * FROM experiments WHERE experiment_id = ?", [experiment_id])
    if not exp.height:
        raise LangSmithError(
            f"experiment {experiment_id!r}: not in {settings.warehouse}; "
            "`evalkeeper experiments` lists the recorded ones"
        )
    row = exp.row(0, named=True)
    runs = wh.query(
        """
        SELECT r.*, e.inputs, e.reference_outputs, e.metadata
        FROM runs r LEFT JOIN examples e
          ON e.example_id = r.example_id AND e.dataset_version = ?
        WHERE r.experiment_id = ? ORDER BY r.example_id, r.repetition
        """,
        [row["dataset_version"], experiment_id],
    ).to_dicts()
    scores = wh.query(
        "SELECT * FROM scores WHERE experiment_id = ? ORDER BY example_id, repetition, evaluator",
        [experiment_id],
    ).to_dicts()
    return row, runs, scores


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "evalkeeper_experiment_id": row["experiment_id"],
        "branch": row["git_branch"],
        "commit": row["git_commit"],
        "target": row["target_spec"],
        "agent_version": row["agent_version"],
        "model": row["model"],
        "dataset": row["dataset"],
        "dataset_version": row["dataset_version"],
        "suite": row["suite"],
        "repetitions": row["repetitions"],
    }


def _ensure_dataset(
    conn: Connection, row: dict[str, Any], runs: list[dict[str, Any]]
) -> tuple[str, bool]:
    """The LangSmith dataset id, pushing the experiment's examples when it is missing; an
    existing dataset must hold every example the runs refer to."""
    import langsmith.utils as ls_utils

    name = row["dataset"]
    try:
        ds = conn.client.read_dataset(dataset_name=name)
    except ls_utils.LangSmithNotFoundError:
        ds = None
    examples: dict[str, Example] = {}
    for r in runs:
        if r["inputs"] is None:
            raise LangSmithError(
                f"experiment {row['experiment_id']}: example {r['example_id']} of dataset "
                f"version {row['dataset_version']} is not in the warehouse; the upload needs "
                "its inputs"
            )
        examples.setdefault(
            r["example_id"],
            Example(
                id=r["example_id"],
                inputs=_json(r["inputs"]),
                reference_outputs=_json(r["reference_outputs"]) or {},
                metadata=ExampleMetadata.model_validate(_json(r["metadata"]) or {}),
            ),
        )
    if ds is None:
        ds = conn.client.create_dataset(
            name,
            description=f"evalkeeper dataset {name}",
            metadata={"evalkeeper_dataset": name},
        )
        payload = [to_remote(name, e, i) for i, e in enumerate(examples.values())]
        conn.client.create_examples(
            dataset_id=ds.id,
            examples=[
                {
                    "id": p["id"],
                    "inputs": p["inputs"],
                    "reference_outputs": p["outputs"],
                    "metadata": p["metadata"],
                }
                for p in payload
            ],
        )
        return str(ds.id), True
    held = {str(e.id) for e in conn.client.list_examples(dataset_id=ds.id)}
    missing = [i for i in examples if str(example_uuid(name, i)) not in held]
    if missing:
        raise LangSmithError(
            f"LangSmith dataset {name!r}: lacks {len(missing)} example(s) of experiment "
            f"{row['experiment_id']} (e.g. {missing[0]}); run `evalkeeper datasets push {name}` "
            "and upload again"
        )
    return str(ds.id), False


def _ensure_project(conn: Connection, row: dict[str, Any], dataset_id: str) -> Any:
    import langsmith.utils as ls_utils

    name = row["experiment_id"]
    try:
        project = conn.client.read_project(project_name=name)
    except ls_utils.LangSmithNotFoundError:
        project = None
    if project is not None:
        meta = (project.extra or {}).get("metadata") or {}
        if meta.get("evalkeeper_experiment_id") != name:
            raise LangSmithError(
                f"LangSmith project {name!r}: exists and is not this evalkeeper experiment; "
                "rename or delete it in LangSmith, then upload again"
            )
        return project
    return conn.client.create_project(
        name,
        description=f"evalkeeper experiment {name} ({row['suite']} suite of {row['dataset']})",
        metadata=_metadata(row),
        reference_dataset_id=dataset_id,
        num_repetitions=row["repetitions"],
    )


def _run_payload(
    row: dict[str, Any], r: dict[str, Any], project_id: str, name: str
) -> dict[str, Any]:
    rid = run_uuid(row["experiment_id"], r["example_id"], r["repetition"])
    start = _utc(r["started_at"])
    end = start + timedelta(milliseconds=r["latency_ms"] or 0)
    return {
        "id": rid,
        "trace_id": rid,
        "dotted_order": f"{start:%Y%m%dT%H%M%S%fZ}{rid}",
        "name": name,
        "run_type": "chain",
        "inputs": _json(r["inputs"]) or {},
        "outputs": _json(r["outputs"]),
        "error": r["error"],
        "start_time": start,
        "end_time": end,
        "session_id": project_id,
        "reference_example_id": str(example_uuid(row["dataset"], r["example_id"])),
        "extra": {
            "metadata": {
                "evalkeeper_experiment_id": row["experiment_id"],
                "example_id": r["example_id"],
                "repetition": r["repetition"],
                "attempts": r["attempts"],
            }
        },
    }


def upload_sync(settings: Settings, experiment_id: str) -> UploadSummary:
    """`upload` without the event loop."""
    row, runs, scores = _load(settings, experiment_id)
    conn = connect(settings)
    step = "reading the dataset"
    try:
        dataset_id, created = _ensure_dataset(conn, row, runs)
        step = "creating the experiment"
        project = _ensure_project(conn, row, dataset_id)
        pid = str(project.id)
        step = "reading the experiment's runs"
        with quiet_deprecations():
            held = {str(r.id) for r in conn.client.list_runs(project_id=pid, select=["id"])}
        todo = [
            _run_payload(row, r, pid, row["target_spec"])
            for r in runs
            if run_uuid(experiment_id, r["example_id"], r["repetition"]) not in held
        ]
        step = "sending runs"
        for i in range(0, len(todo), RUN_BATCH):
            conn.client.batch_ingest_runs(create=todo[i : i + RUN_BATCH])
            conn.raise_errors(f"LangSmith experiment {experiment_id}: sending runs")
        step = "sending feedback"
        summary = UploadSummary(
            experiment_id=experiment_id,
            project=row["experiment_id"],
            project_id=pid,
            dataset_id=dataset_id,
            dataset_created=created,
            runs_created=len(todo),
            runs_existing=len(runs) - len(todo),
        )
        _send_feedback(conn, row, scores, pid, summary)
        summary.url = getattr(project, "url", None)
    except LangSmithError:
        raise
    except Exception as exc:
        raise LangSmithError(
            f"LangSmith experiment {experiment_id} at {endpoint(settings)}: {step} failed: "
            f"{type(exc).__name__}: {exc}; the local experiment is unchanged, upload again "
            f"(`evalkeeper upload {experiment_id}`) to send the rest"
        ) from None
    record_upload(
        settings,
        experiment_id,
        {
            "project": summary.project,
            "project_id": summary.project_id,
            "dataset_id": summary.dataset_id,
            "url": summary.url,
            "uploaded_at": datetime.now(UTC).isoformat(),
        },
    )
    return summary


def _send_feedback(
    conn: Connection,
    row: dict[str, Any],
    scores: list[dict[str, Any]],
    project_id: str,
    summary: UploadSummary,
) -> None:
    eid = row["experiment_id"]
    wanted = [s for s in scores if not s["skipped"]]
    summary.skipped_scores = len(scores) - len(wanted)
    run_ids = sorted({run_uuid(eid, s["example_id"], s["repetition"]) for s in wanted})
    held: set[str] = set()
    for i in range(0, len(run_ids), FEEDBACK_LOOKUP):
        held |= {
            str(f.id) for f in conn.client.list_feedback(run_ids=run_ids[i : i + FEEDBACK_LOOKUP])
        }
    for s in wanted:
        fid = feedback_uuid(eid, s["example_id"], s["repetition"], s["evaluator"])
        if fid in held:
            summary.feedback_existing += 1
            continue
        errored = s["error"] is not None
        conn.client.create_feedback(
            run_uuid(eid, s["example_id"], s["repetition"]),
            key=s["evaluator"],
            score=None if errored else s["value"],
            comment=s["error"] if errored else s["comment"],
            error=True if errored else None,
            feedback_id=fid,
            session_id=project_id,
            source_info={
                "evaluator_version": s["evaluator_version"],
                "evaluator_args_hash": s["evaluator_args_hash"],
            },
            extra={"passed": s["passed"], "evalkeeper_experiment_id": eid},
            stop_after_attempt=2,
        )
        summary.feedback_created += 1
        summary.errors_as_feedback += errored


async def upload(settings: Settings, experiment_id: str) -> UploadSummary:
    """Upload a recorded experiment to LangSmith (idempotent; see the module docstring)."""
    return await asyncio.to_thread(upload_sync, settings, experiment_id)
