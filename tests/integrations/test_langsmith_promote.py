"""`evalkeeper promote RUN_ID --source langsmith:PROJECT … --to-langsmith`: a LangSmith run
becomes a redacted regression example, locally and in the LangSmith dataset."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.datasets import load_dataset
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from tests.integrations.test_langsmith_source import _trace

runner = CliRunner()
EMAIL = "ann.murphy@example.com"
REFERENCE = {"reply": "Booked.", "must_include": ["Thursday"], "tool_calls": [{"name": "book_slot", "args": {"slot": "09:00"}}]}  # fmt: skip


def _env(settings: Settings) -> dict[str, str]:
    return {
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
        "EVALKEEPER_LANGSMITH_ENDPOINT": str(settings.langsmith.endpoint),
        "EVALKEEPER_LANGSMITH_API_KEY": "test-key-not-a-secret",
        "EVALKEEPER_REDACTION_KEY": "test-redaction-key",
    }


def test_a_langsmith_run_is_promoted_locally_and_to_the_langsmith_dataset(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    run_id = _trace(ls_server, datetime(2026, 11, 30, 14, 3, tzinfo=UTC), EMAIL)
    out = runner.invoke(
        app,
        [
            "promote",
            run_id,
            "--source",
            "langsmith:prod-agent",
            "--dataset",
            "appointments",
            "--reference",
            json.dumps(REFERENCE),
            "--incident",
            "INC-3001",
            "--category",
            "booking",
            "--to-langsmith",
            "--json",
        ],
        env=_env(ls_settings),
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["langsmith"]["created"] is True and "error" not in result["langsmith"]

    local = load_dataset("appointments", ls_settings.datasets_dir).examples[-1]
    assert local.metadata.promoted_from_run == run_id
    assert EMAIL not in json.dumps(local.inputs)  # redacted before it was written
    (remote,) = [
        e
        for e in ls_server.examples_of("appointments")
        if (e.get("metadata") or {}).get("incident_id") == "INC-3001"
    ]
    meta = remote["metadata"]
    assert meta["promoted_from_run"] == run_id and meta["category"] == "booking"
    assert EMAIL not in json.dumps(remote)  # the remote copy is the redacted one too
    assert remote["outputs"] == REFERENCE


def test_a_langsmith_failure_keeps_the_local_example_and_exits_4(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    run_id = _trace(ls_server, datetime(2026, 11, 30, 15, 0, tzinfo=UTC), EMAIL)
    env = _env(ls_settings)
    ingest = runner.invoke(app, ["traces", "ingest", "--source", "langsmith:prod-agent"], env=env)
    assert ingest.exit_code == 0, ingest.output
    env["EVALKEEPER_LANGSMITH_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there
    out = runner.invoke(
        app,
        [
            "promote",
            run_id,
            "--dataset",
            "appointments",
            "--reference",
            json.dumps(REFERENCE),
            "--incident",
            "INC-3002",
            "--category",
            "booking",
            "--to-langsmith",
        ],
        env=env,
    )
    assert out.exit_code == 4, out.output
    assert "LangSmith: not added" in out.stderr and "datasets push appointments" in out.stderr
    local = load_dataset("appointments", ls_settings.datasets_dir).examples[-1]
    assert local.metadata.incident_id == "INC-3002"
