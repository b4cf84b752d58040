"""Fixtures for the LangSmith tests: the SDK talks only to a server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer

ROOT = Path(__file__).resolve().parents[2]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def offline_langsmith(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No LangSmith variable of the machine leaks in, tracing is off, and a connection to
    any host but 127.0.0.1 fails the test."""
    for key in list(os.environ):
        if key.startswith(("LANGSMITH_", "LANGCHAIN_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "false")
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOCAL_HOSTS:
            raise AssertionError(f"a test tried to reach {address!r}: only 127.0.0.1 is allowed")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.fixture
def ls_server(offline_langsmith: None) -> Iterator[LangSmithServer]:
    with LangSmithServer() as server:
        yield server


@pytest.fixture
def ls_settings(tmp_path: Path, ls_server: LangSmithServer) -> Settings:
    """Settings pointing at the test server, a tmp warehouse and a tmp datasets folder
    holding a copy of the bundled dataset."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    shutil.copy(ROOT / "data" / "datasets" / "appointments.jsonl", datasets)
    shutil.copy(ROOT / "data" / "datasets" / "appointments.toml", datasets)
    return Settings(
        warehouse=tmp_path / "warehouse.duckdb",
        datasets_dir=datasets,
        flush_s=0.2,
        lock_wait_s=2.0,
        git_commit="0123456789abcdef",
        git_branch="main",
        langsmith_endpoint=ls_server.url,
        langsmith_api_key="test-key-not-a-secret",
        redaction_key="test-redaction-key",
    )
