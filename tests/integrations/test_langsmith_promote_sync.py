"""`promote … --to-langsmith` leaves both sides in sync, as a push does: the next `datasets
push` is not refused and sends only what is new; into a dataset never pushed, the push
after the promote sends the rest and duplicates nothing. Real SDK, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.datasets import load_dataset
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from tests.integrations.test_langsmith_promote import EMAIL, REFERENCE, _env
from tests.integrations.test_langsmith_source import _trace

runner = CliRunner()


def _promote(settings: Settings, run_id: str, incident: str, dataset: str) -> dict[str, Any]:
    out = runner.invoke(
        app,
        ["promote", run_id, "--source", "langsmith:prod-agent", "--dataset", dataset,
         "--reference", json.dumps(REFERENCE), "--incident", incident, "--category", "booking",
         "--to-langsmith", "--json"],
        env=_env(settings),
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    result: dict[str, Any] = json.loads(out.stdout)
    assert "error" not in result["langsmith"], result
    return result


def _push(settings: Settings, dataset: str) -> dict[str, Any]:
    out = runner.invoke(app, ["datasets", "push", dataset, "--json"], env=_env(settings))
    assert out.exit_code == 0, out.output
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def _example_writes(server: LangSmithServer) -> list[str]:
    """The requests that created, changed or deleted examples."""
    return [
        f"{r.method} {r.path}"
        for r in server.requests
        if r.method in ("POST", "PATCH", "DELETE") and "examples" in r.path
    ]


def _ids(server: LangSmithServer, dataset: str) -> list[str]:
    return sorted(e["id"] for e in server.examples_of(dataset))


def test_a_push_after_a_promote_is_not_refused_and_sends_only_what_is_new(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    first = _push(ls_settings, "appointments")
    assert len(first["added"]) == 100
    run_id = _trace(ls_server, datetime(2026, 11, 30, 14, 3, tzinfo=UTC), EMAIL)
    promoted = _promote(ls_settings, run_id, "INC-3101", "appointments")
    assert len(ls_server.examples_of("appointments")) == 101

    # a new local example after the promote: the push sends that one only (it was
    # refused: "edited since the last sync and not pulled")
    path = ls_settings.datasets_dir / "appointments.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    row["id"] = "added-after-promote"
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    ls_server.reset_requests()
    pushed = _push(ls_settings, "appointments")
    assert pushed["added"] == ["added-after-promote"] and pushed["unchanged"] == 101
    assert pushed["changed"] == pushed["removed"] == [] and pushed["moved"] == 0
    assert len(_example_writes(ls_server)) == 1
    assert len(ls_server.examples_of("appointments")) == 102
    local = load_dataset("appointments", ls_settings.datasets_dir)
    assert pushed["version"] == local.version != promoted["version"]
    # and nothing more to send
    ls_server.reset_requests()
    assert _push(ls_settings, "appointments")["unchanged"] == 102
    assert _example_writes(ls_server) == []


def test_promote_into_a_dataset_never_pushed_then_push_duplicates_nothing(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    run_id = _trace(ls_server, datetime(2026, 11, 30, 14, 3, tzinfo=UTC), EMAIL)
    promoted = _promote(ls_settings, run_id, "INC-3102", "appointments")
    assert promoted["langsmith"]["dataset_created"] is True
    (remote_id,) = _ids(ls_server, "appointments")
    assert remote_id == promoted["langsmith"]["example_id"]

    ls_server.reset_requests()
    pushed = _push(ls_settings, "appointments")  # was refused: "was never synced"
    assert len(pushed["added"]) == 100 and pushed["removed"] == [] and pushed["changed"] == []
    assert pushed["unchanged"] + pushed["moved"] == 1  # the promoted example, sent once
    ids = _ids(ls_server, "appointments")
    assert len(ids) == len(set(ids)) == 101 and remote_id in ids
    # both sides hold the same dataset now: a pull changes nothing, a push sends nothing
    ls_server.reset_requests()
    assert _push(ls_settings, "appointments")["unchanged"] == 101
    assert _example_writes(ls_server) == []
    out = runner.invoke(app, ["datasets", "pull", "appointments", "--json"], env=_env(ls_settings))
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["unchanged"] == 101


def test_promote_into_a_new_dataset_leaves_both_sides_in_sync(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    run_id = _trace(ls_server, datetime(2026, 11, 30, 14, 3, tzinfo=UTC), EMAIL)
    _promote(ls_settings, run_id, "INC-3103", "incidents")
    ls_server.reset_requests()
    pushed = _push(ls_settings, "incidents")
    assert pushed["unchanged"] == 1 and pushed["added"] == [] and pushed["moved"] == 0
    assert _example_writes(ls_server) == []
    assert len(ls_server.examples_of("incidents")) == 1


def test_a_remote_edit_before_a_promote_still_blocks_the_push(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    """The promote does not launder an edit made in LangSmith and not pulled."""
    _push(ls_settings, "appointments")
    some = ls_server.examples_of("appointments")[0]
    with ls_server.lock:
        ls_server.examples[some["id"]]["outputs"] = {"reply": "edited in LangSmith"}
    run_id = _trace(ls_server, datetime(2026, 11, 30, 14, 3, tzinfo=UTC), EMAIL)
    _promote(ls_settings, run_id, "INC-3104", "appointments")
    out = runner.invoke(app, ["datasets", "push", "appointments"], env=_env(ls_settings))
    assert out.exit_code == 2, out.output
    assert "edited since the last sync" in out.output
