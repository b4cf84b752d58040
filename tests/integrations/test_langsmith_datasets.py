"""Dataset sync with the official SDK against the LangSmith-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.datasets import load_dataset
from evalkeeper.integrations.langsmith import SyncConflict, pull, push
from evalkeeper.integrations.langsmith.client import example_uuid
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rewrite(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def test_push_then_pull_into_an_empty_folder_gives_the_same_file_and_version(
    ls_server: LangSmithServer, ls_settings: Settings, tmp_path: Path
) -> None:
    source = ls_settings.datasets_dir / "appointments.jsonl"
    version = load_dataset("appointments", ls_settings.datasets_dir).version

    pushed = asyncio.run(push(ls_settings, "appointments"))
    assert pushed.created and len(pushed.added) == 100 and pushed.version == version

    # what the SDK sent: one dataset, then the examples in the multipart form
    (created,) = ls_server.requests_to("POST", "/datasets")
    assert created.body["name"] == "appointments"
    (upload,) = ls_server.requests_to("POST", "/v1/platform/datasets/")
    parts = upload.body["parts"]
    first = str(example_uuid("appointments", "avail-001"))
    assert parts[first]["metadata"]["evalkeeper_id"] == "avail-001"
    assert parts[first]["metadata"]["evalkeeper_position"] == 0
    assert parts[first]["metadata"]["category"] == "availability_lookup"
    assert parts[f"{first}.inputs"]["customer_id"] == "C-1042"
    incidents = [
        e for e in ls_server.examples_of("appointments") if e["metadata"].get("incident_id")
    ]
    assert len(incidents) == 15  # the pinned incidents keep their metadata
    assert not ls_server.unknown_requests()

    empty = tmp_path / "empty"
    other = ls_settings.model_copy(update={"datasets_dir": empty})
    pulled = asyncio.run(pull(other, "appointments"))
    assert pulled.created and len(pulled.added) == 100 and not pulled.changed
    assert (empty / "appointments.jsonl").read_bytes() == source.read_bytes()
    assert load_dataset("appointments", empty).version == version == pulled.version
    assert (empty / "appointments.langsmith.json").exists()


def test_pull_reports_changes_and_refuses_to_overwrite_local_edits(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    path = ls_settings.datasets_dir / "appointments.jsonl"
    asyncio.run(push(ls_settings, "appointments"))
    # someone edits the dataset in LangSmith: one changed, one removed, one added
    ds_id = next(iter(ls_server.datasets))
    changed = ls_server.examples[str(example_uuid("appointments", "avail-002"))]
    changed["outputs"] = {"reply": "edited in LangSmith"}
    del ls_server.examples[str(example_uuid("appointments", "avail-003"))]
    ls_server.add_example(ds_id, inputs={"message": "new"}, metadata={"category": "booking"})

    report = asyncio.run(pull(ls_settings, "appointments"))
    assert report.changed == ["avail-002"]
    assert report.removed == ["avail-003"]
    assert len(report.added) == 1 and report.unchanged == 98
    rows = _lines(path)
    assert len(rows) == 100
    assert next(r for r in rows if r["id"] == "avail-002")["reference_outputs"] == {
        "reply": "edited in LangSmith"
    }

    # a local edit that was not pushed blocks the next pull, --force overwrites it
    rows[0]["inputs"]["customer_id"] = "C-LOCAL"
    _rewrite(path, rows)
    ls_server.examples[str(example_uuid("appointments", "avail-004"))]["outputs"] = {"x": 1}
    with pytest.raises(SyncConflict, match="edited since the last sync"):
        asyncio.run(pull(ls_settings, "appointments"))
    assert _lines(path)[0]["inputs"]["customer_id"] == "C-LOCAL"  # untouched
    forced = asyncio.run(pull(ls_settings, "appointments", force=True))
    assert set(forced.changed) == {"avail-001", "avail-004"}
    assert _lines(path)[0]["inputs"]["customer_id"] == "C-1042"


def test_push_reports_changes_and_refuses_to_overwrite_remote_edits(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    path = ls_settings.datasets_dir / "appointments.jsonl"
    asyncio.run(push(ls_settings, "appointments"))
    rows = _lines(path)
    rows[1]["reference_outputs"] = {"reply": "changed locally"}
    removed = rows.pop(2)
    rows.append({"id": "new-001", "inputs": {"m": "hi"}, "metadata": {"category": "small_talk"}})
    _rewrite(path, rows)
    ls_server.reset_requests()

    report = asyncio.run(push(ls_settings, "appointments"))
    assert report.added == ["new-001"]
    assert report.changed == ["avail-002"]
    assert report.moved == 97  # the examples after the removed one moved up by one
    assert report.removed == [removed["id"]]
    (patch,) = [
        r
        for r in ls_server.requests_to("PATCH", "/v1/platform/datasets/")
        if str(example_uuid("appointments", "avail-002")) in r.body["parts"]
    ]
    key = str(example_uuid("appointments", "avail-002"))
    assert patch.body["parts"][f"{key}.outputs"] == {"reply": "changed locally"}
    deleted = ls_server.requests_to("DELETE", "/examples/")
    assert [r.path for r in deleted] == [f"/examples/{example_uuid('appointments', 'avail-003')}"]
    assert len(ls_server.examples_of("appointments")) == 100
    assert report.version == load_dataset(path, ls_settings.datasets_dir).version

    # pushing again changes nothing
    again = asyncio.run(push(ls_settings, "appointments"))
    assert not (again.added or again.changed or again.removed)

    # an edit made in LangSmith and not pulled blocks the next push
    ls_server.examples[key]["outputs"] = {"reply": "edited remotely"}
    rows[0]["inputs"]["customer_id"] = "C-9"
    _rewrite(path, rows)
    with pytest.raises(SyncConflict, match="not pulled"):
        asyncio.run(push(ls_settings, "appointments"))
    assert ls_server.examples[key]["outputs"] == {"reply": "edited remotely"}


def test_datasets_cli_lists_both_sides_and_reports_conflicts(
    ls_server: LangSmithServer, ls_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKEEPER_DATASETS_DIR", str(ls_settings.datasets_dir))
    monkeypatch.setenv("EVALKEEPER_LANGSMITH_ENDPOINT", ls_server.url)
    monkeypatch.setenv("EVALKEEPER_LANGSMITH_API_KEY", "test-key-not-a-secret")
    ls_server.add_dataset("remote-only")
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "push", "appointments", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["added"]) == 100

    result = runner.invoke(app, ["datasets", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["appointments"]["status"] == "in sync"
    assert rows["appointments"]["remote_examples"] == 100
    assert rows["remote-only"]["status"] == "remote only"

    path = ls_settings.datasets_dir / "appointments.jsonl"
    path.write_text(path.read_text().replace("C-1042", "C-0000"))
    result = runner.invoke(app, ["datasets", "pull", "appointments"])
    assert result.exit_code == 2
    assert "--force" in result.output
