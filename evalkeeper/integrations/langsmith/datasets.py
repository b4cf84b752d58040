"""Dataset sync: `pull` a LangSmith dataset into `data/datasets/NAME.jsonl`, `push` it back.

Each side keeps example ids and metadata (see `examples.py` for the mapping), so the
dataset version hash is the same whichever side the examples came from. A sync reports
what it added, changed and removed on the side it wrote.

A sync remembers what both sides held after it in `NAME.langsmith.json` beside the file
(the remote dataset id, the version, and each example's id and content hash in order).
`promote --to-langsmith` moves it too (`follow_remote`): the example it adds in LangSmith
is then no remote edit, and the next push sends only what is new.
A pull refuses to overwrite a local file that changed since the last sync (edits not
pushed), and a push refuses to overwrite a remote dataset that changed since the last
sync (edits not pulled), unless `force`. Without a state, a side that already holds
other examples counts as changed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from evalkeeper.datasets import DatasetError, load_config, parse_examples
from evalkeeper.integrations.langsmith.client import Connection, LangSmithError, connect, endpoint
from evalkeeper.integrations.langsmith.examples import (
    fingerprint,
    from_remote,
    remote_key,
    to_remote,
    version_of,
    write_examples,
)
from evalkeeper.models import Example
from evalkeeper.settings import Settings

STATE_SUFFIX = ".langsmith.json"


class SyncConflict(LangSmithError):
    """The side a sync would write changed since the last sync; `--force` overwrites it."""


class SyncReport(BaseModel):
    """What one pull or push did."""

    dataset: str = Field(description="The dataset name (local file stem = LangSmith name).")
    direction: Literal["pull", "push"] = Field(description="Which side was written.")
    path: str = Field(description="The local dataset file.")
    remote_id: str = Field(description="The LangSmith dataset id.")
    created: bool = Field(False, description="The written side did not exist before.")
    added: list[str] = Field(default_factory=list, description="Example ids added.")
    changed: list[str] = Field(default_factory=list, description="Example ids changed.")
    removed: list[str] = Field(default_factory=list, description="Example ids removed.")
    moved: int = Field(
        0, description="Examples only moved in the file (their position updated in LangSmith)."
    )
    unchanged: int = Field(0, description="Examples already equal on both sides.")
    version: str = Field(description="The dataset version both sides now hold.")


class SyncState(BaseModel):
    """`NAME.langsmith.json`: both sides as they were after the last sync."""

    dataset: str = Field(description="The dataset name.")
    endpoint: str = Field(description="The LangSmith API it was synced with.")
    remote_id: str = Field(description="The LangSmith dataset id.")
    version: str = Field(description="The version after the sync.")
    synced_at: datetime = Field(description="When (UTC).")
    examples: list[list[str]] = Field(description="[[id, content hash], …] in file order.")


def dataset_path(settings: Settings, name: str) -> Path:
    if not name or "/" in name or name.endswith(".jsonl"):
        raise LangSmithError(
            f"dataset name {name!r}: give a name such as `appointments` (the file is "
            f"{settings.datasets_dir}/NAME.jsonl, the LangSmith dataset NAME)"
        )
    return settings.datasets_dir / f"{name}.jsonl"


def state_path(path: Path) -> Path:
    return path.with_name(path.stem + STATE_SUFFIX)


def load_state(path: Path) -> SyncState | None:
    sp = state_path(path)
    if not sp.exists():
        return None
    try:
        return SyncState.model_validate_json(sp.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LangSmithError(
            f"{sp}: not a sync state ({exc.__class__.__name__}); delete it and pull or push "
            "with --force"
        ) from None


def save_state(settings: Settings, path: Path, remote_id: str, examples: list[Example]) -> None:
    state = SyncState(
        dataset=path.stem,
        endpoint=endpoint(settings),
        remote_id=remote_id,
        version=version_of(examples),
        synced_at=datetime.now(UTC),
        examples=fingerprint(examples),
    )
    state_path(path).write_text(state.model_dump_json(indent=2) + "\n", encoding="utf-8")


def follow_remote(
    settings: Settings, name: str, remote_id: str, before: list[Any], after: list[Any]
) -> bool:
    """After a write of our own to LangSmith dataset `name` outside a sync (`promote
    --to-langsmith` adding an example): move the sync state to what LangSmith holds now
    (`after`), as a push does, so that the next push sends only what is new and is not
    refused as a remote edit. Only when LangSmith held, before the write (`before`), what
    the state says or nothing, or holds now what the local file holds: an edit made in
    LangSmith and not pulled still blocks the next push. Returns whether the state moved."""
    path = dataset_path(settings, name)
    state = load_state(path)
    now = _remote_as_local(after)
    known = not before or (
        state is not None
        and state.remote_id == remote_id
        and fingerprint(_remote_as_local(before)) == state.examples
    )
    if not known and fingerprint(now) != fingerprint(_read_local(path) or []):
        return False
    save_state(settings, path, remote_id, now)
    return True


# -- the remote side -----------------------------------------------------------------------


def _read_remote(conn: Connection, name: str) -> tuple[Any | None, list[Any]]:
    """(the LangSmith dataset or None, its examples)."""
    import langsmith.utils as ls_utils

    try:
        ds = conn.client.read_dataset(dataset_name=name)
    except ls_utils.LangSmithNotFoundError:
        return None, []
    return ds, list(conn.client.list_examples(dataset_id=ds.id))


def _remote_as_local(examples: list[Any]) -> list[Example]:
    pairs = [
        (*from_remote(str(e.id), e.inputs, e.outputs, e.metadata), e.created_at, str(e.id))
        for e in examples
    ]
    pairs.sort(key=lambda p: (p[1], p[2], p[3]))
    return [p[0] for p in pairs]


def _diff(old: list[Example], new: list[Example]) -> tuple[list[str], list[str], list[str], int]:
    before = {e.id: e.content_hash for e in old}
    after = {e.id: e.content_hash for e in new}
    added = [i for i in after if i not in before]
    removed = [i for i in before if i not in after]
    changed = [i for i in after if i in before and before[i] != after[i]]
    return added, changed, removed, len(after) - len(added) - len(changed)


def _wrap(what: str, exc: Exception) -> LangSmithError:
    if isinstance(exc, LangSmithError):
        return exc
    return LangSmithError(f"{what}: {type(exc).__name__}: {exc}")


# -- pull -----------------------------------------------------------------------------------


def pull_sync(settings: Settings, name: str, *, force: bool = False) -> SyncReport:
    """`pull` without the event loop."""
    path = dataset_path(settings, name)
    conn = connect(settings)
    try:
        ds, remote = _read_remote(conn, name)
    except Exception as exc:
        raise _wrap(f"LangSmith dataset {name!r}: reading it failed", exc) from None
    if ds is None:
        raise LangSmithError(
            f"LangSmith dataset {name!r}: not found at {endpoint(settings)}; "
            f"`evalkeeper datasets list` shows the remote ones (or push {path} first)"
        )
    incoming = _remote_as_local(remote)
    local = _read_local(path)
    if local is not None and not force:
        state = load_state(path)
        if fingerprint(local) != fingerprint(incoming):
            if state is None:
                raise SyncConflict(
                    f"{path}: differs from LangSmith dataset {name!r} and was never synced; "
                    "push it first, or pull with --force to overwrite it"
                )
            if fingerprint(local) != state.examples:
                raise SyncConflict(
                    f"{path}: edited since the last sync ({state.synced_at:%Y-%m-%d %H:%M} "
                    "UTC) and not pushed; push it first, or pull with --force to overwrite "
                    "the local edits"
                )
    added, changed, removed, unchanged = _diff(local or [], incoming)
    if incoming:
        write_examples(path, incoming)
    elif path.exists():
        path.unlink()
    save_state(settings, path, str(ds.id), incoming)
    return SyncReport(
        dataset=name,
        direction="pull",
        path=str(path),
        remote_id=str(ds.id),
        created=local is None,
        added=added,
        changed=changed,
        removed=removed,
        unchanged=unchanged,
        version=version_of(incoming),
    )


def _read_local(path: Path) -> list[Example] | None:
    if not path.exists():
        return None
    try:
        return parse_examples(path)
    except DatasetError as exc:
        raise LangSmithError(str(exc)) from None


# -- push -----------------------------------------------------------------------------------


def push_sync(settings: Settings, name: str, *, force: bool = False) -> SyncReport:
    """`push` without the event loop."""
    path = dataset_path(settings, name)
    local = _read_local(path)
    if local is None:
        raise LangSmithError(f"{path}: no such dataset file; pull {name!r} or create the file")
    conn = connect(settings)
    try:
        ds, remote = _read_remote(conn, name)
        current = _remote_as_local(remote)
        if ds is not None and not force and fingerprint(current) != fingerprint(local):
            state = load_state(path)
            if state is None and current:
                raise SyncConflict(
                    f"LangSmith dataset {name!r}: holds other examples than {path} and was "
                    "never synced with it; pull it first, or push with --force to overwrite it"
                )
            if state is not None and fingerprint(current) != state.examples:
                raise SyncConflict(
                    f"LangSmith dataset {name!r}: edited since the last sync "
                    f"({state.synced_at:%Y-%m-%d %H:%M} UTC) and not pulled; pull it first, "
                    "or push with --force to overwrite the remote edits"
                )
        created = ds is None
        if ds is None:
            config = load_config(path)
            ds = conn.client.create_dataset(
                name,
                description=config.description or f"evalkeeper dataset {name}",
                metadata={"evalkeeper_dataset": name},
            )
        report = _apply_push(conn, name, str(ds.id), local, remote)
    except LangSmithError:
        raise
    except Exception as exc:
        raise _wrap(f"LangSmith dataset {name!r}: push failed", exc) from None
    save_state(settings, path, str(ds.id), local)
    return report.model_copy(update={"path": str(path), "created": created})


def _apply_push(
    conn: Connection, name: str, dataset_id: str, local: list[Example], remote: list[Any]
) -> SyncReport:
    have = {str(e.id): e for e in remote}
    want = [to_remote(name, e, i) for i, e in enumerate(local)]
    local_ids = {w["id"]: e.id for w, e in zip(want, local, strict=True)}
    new = [w for w in want if w["id"] not in have]
    stale = [
        w
        for w in want
        if w["id"] in have
        and remote_key(w["inputs"], w["outputs"], w["metadata"])
        != remote_key(have[w["id"]].inputs, have[w["id"]].outputs, have[w["id"]].metadata)
    ]
    by_local = {e.id: e for e in local}
    changed = [
        w
        for w in stale
        if from_remote(
            w["id"], *(getattr(have[w["id"]], k) for k in ("inputs", "outputs", "metadata"))
        )[0].content_hash
        != by_local[local_ids[w["id"]]].content_hash
    ]
    gone = [i for i in have if i not in local_ids]
    if new:
        conn.client.create_examples(
            dataset_id=dataset_id,
            examples=[
                {
                    "id": w["id"],
                    "inputs": w["inputs"],
                    "reference_outputs": w["outputs"],
                    "metadata": w["metadata"],
                }
                for w in new
            ],
        )
    for w in stale:
        conn.client.update_example(
            w["id"],
            inputs=w["inputs"],
            outputs=w["outputs"],
            metadata=w["metadata"],
            dataset_id=dataset_id,
        )
    for ls_id in gone:
        conn.client.delete_example(ls_id)
    removed = []
    for ls_id in gone:
        ex = have[ls_id]
        removed.append(from_remote(ls_id, ex.inputs, ex.outputs, ex.metadata)[0].id)
    return SyncReport(
        dataset=name,
        direction="push",
        path="",
        remote_id=dataset_id,
        added=[local_ids[w["id"]] for w in new],
        changed=[local_ids[w["id"]] for w in changed],
        removed=removed,
        moved=len(stale) - len(changed),
        unchanged=len(want) - len(new) - len(stale),
        version=version_of(local),
    )


# -- list -----------------------------------------------------------------------------------


class DatasetRow(BaseModel):
    """One dataset, local, remote or both."""

    name: str = Field(description="Dataset name.")
    local_examples: int | None = Field(None, description="Examples in the local file.")
    local_version: str | None = Field(None, description="Version of the local file.")
    remote_examples: int | None = Field(None, description="Examples in LangSmith.")
    remote_id: str | None = Field(None, description="The LangSmith dataset id.")
    synced_at: datetime | None = Field(None, description="The last pull or push (UTC).")
    status: str = Field(description="local only, remote only, in sync, local edits, …")


def list_sync(settings: Settings, *, remote: bool = True) -> list[DatasetRow]:
    """Local datasets (with their sync state) and, when configured, the remote ones."""
    rows: dict[str, DatasetRow] = {}
    folder = settings.datasets_dir
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            examples = parse_examples(path)
        except DatasetError as exc:
            first = str(exc).splitlines()[0]
            rows[path.stem] = DatasetRow(name=path.stem, status=f"unreadable: {first}")
            continue
        state = load_state(path)
        status = "local only"
        if state is not None:
            status = "in sync" if fingerprint(examples) == state.examples else "local edits"
        rows[path.stem] = DatasetRow(
            name=path.stem,
            local_examples=len(examples),
            local_version=version_of(examples),
            remote_id=state.remote_id if state else None,
            synced_at=state.synced_at if state else None,
            status=status,
        )
    if remote:
        conn = connect(settings)
        try:
            found = list(conn.client.list_datasets())
        except Exception as exc:
            raise _wrap("LangSmith datasets: listing failed", exc) from None
        for ds in found:
            row = rows.get(ds.name)
            if row is None:
                rows[ds.name] = DatasetRow(
                    name=ds.name,
                    remote_examples=ds.example_count,
                    remote_id=str(ds.id),
                    status="remote only",
                )
            else:
                row.remote_examples = ds.example_count
                row.remote_id = str(ds.id)
                if row.status == "local only":
                    row.status = "on both, never synced"
    return [rows[k] for k in sorted(rows)]


# -- async faces ------------------------------------------------------------------------------


async def pull(settings: Settings, name: str, *, force: bool = False) -> SyncReport:
    """Pull LangSmith dataset `name` into `<datasets_dir>/name.jsonl`."""
    return await asyncio.to_thread(pull_sync, settings, name, force=force)


async def push(settings: Settings, name: str, *, force: bool = False) -> SyncReport:
    """Push `<datasets_dir>/name.jsonl` to LangSmith dataset `name` (created if missing)."""
    return await asyncio.to_thread(push_sync, settings, name, force=force)


async def list_datasets(settings: Settings, *, remote: bool = True) -> list[DatasetRow]:
    return await asyncio.to_thread(list_sync, settings, remote=remote)


def report_json(report: SyncReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
