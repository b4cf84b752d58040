"""The requests the installed SDK sends for everything evalkeeper does with LangSmith,
recorded by the server; docs/langsmith.md lists the same endpoints."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from evalkeeper.integrations.langsmith import pull, push, upload
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from evalkeeper.traces.sources import open_source
from tests.helpers import run_suite, write_dataset

ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EXPECTED = {
    "GET /info",
    "GET /sessions",
    "POST /sessions",
    "GET /datasets",
    "POST /datasets",
    "GET /examples",
    "POST /v1/platform/datasets/{id}/examples",
    "PATCH /v1/platform/datasets/{id}/examples",
    "DELETE /examples/{id}",
    "POST /runs/query",
    "GET /runs/{id}",
    "POST /runs/batch",
    "GET /feedback",
    "POST /feedback",
}


def test_the_sdk_uses_exactly_the_documented_endpoints(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    asyncio.run(push(ls_settings, "appointments"))
    path = ls_settings.datasets_dir / "appointments.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]).replace("C-1042", "C-1043") + "\n")
    asyncio.run(push(ls_settings, "appointments"))
    asyncio.run(pull(ls_settings, "appointments"))
    write_dataset(ls_settings.datasets_dir / "small.jsonl", 3)
    run_suite(
        ls_settings,
        dataset="small",
        suite="full",
        target="tests.fake_targets:instant",
        experiment_id="exp-req",
    )
    asyncio.run(upload(ls_settings, "exp-req"))
    source = open_source("langsmith:exp-req", ls_settings)
    traces, errors, _ = asyncio.run(source.read(None))
    assert len(traces) == 3 and not errors
    asyncio.run(source.read_run(traces[0].trace_id))

    used = {f"{r.method} {UUID.sub('{id}', r.path)}" for r in ls_server.requests}
    assert used == EXPECTED
    assert all(r.status < 400 for r in ls_server.requests)
    documented = (ROOT / "docs" / "langsmith.md").read_text()
    for endpoint in EXPECTED:
        assert f"`{endpoint}`" in documented


@pytest.mark.skipif(
    not (os.environ.get("LANGSMITH_API_KEY") and os.environ.get("EVALKEEPER_LIVE_TESTS") == "1"),
    reason="live LangSmith test: set LANGSMITH_API_KEY and EVALKEEPER_LIVE_TESTS=1",
)
def test_live_round_trip_against_real_langsmith(tmp_path: Path) -> None:
    """Push a small dataset to real LangSmith, pull it back, compare versions, delete it."""
    import uuid

    from evalkeeper.datasets import load_dataset
    from evalkeeper.integrations.langsmith import connect

    name = f"evalkeeper-live-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src"
    write_dataset(src / f"{name}.jsonl", 5)
    settings = Settings(
        datasets_dir=src,
        warehouse=tmp_path / "w.duckdb",
        langsmith_api_key=os.environ["LANGSMITH_API_KEY"],
        langsmith_endpoint=os.environ.get("LANGSMITH_ENDPOINT"),
    )
    try:
        asyncio.run(push(settings, name))
        dst = tmp_path / "dst"
        asyncio.run(pull(settings.model_copy(update={"datasets_dir": dst}), name))
        assert load_dataset(name, dst).version == load_dataset(name, src).version
    finally:
        client = connect(settings).client
        client.delete_dataset(dataset_name=name)
