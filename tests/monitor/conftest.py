"""Fixtures of the monitor tests: a rollback receiver on 127.0.0.1, settings wired to it, a
deploy time, and traffic on both sides of the deploy."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from evalkeeper.settings import Settings
from tests.monitor.monitor_traffic import traffic
from tests.otlp_helpers import serve

DEPLOY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"deploy-webhook-key-for-tests-0001").decode()
ROLLBACK_SECRET = "whsec_" + base64.b64encode(b"rollback-key-for-tests-000000002").decode()


@dataclass
class Receiver:
    """A rollback endpoint: records every call; answers `fail_next` calls with 503."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["status"] == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = FastAPI()

    @app.post("/rollback")
    async def rollback(request: Request) -> JSONResponse:
        body = await request.body()
        with rec.lock:
            status = 503 if rec.fail_next > 0 else 200
            rec.fail_next = max(0, rec.fail_next - 1)
            rec.calls.append({"headers": dict(request.headers), "body": body, "status": status})
        return JSONResponse({"ok": status == 200}, status_code=status)

    with serve(app) as base:
        rec.url = f"{base}/rollback"
        yield rec


@pytest.fixture
def traces_file(tmp_path: Path) -> Path:
    """Two days of v1 traffic before the deploy (5% slow: latency_ok's flags)."""
    path = tmp_path / "traces" / "app.jsonl"
    traffic(
        path, version="v1", start=DEPLOY - timedelta(days=2), hours=48, per_hour=50,
        slow_rate=0.05, seed=1,
    )  # fmt: skip
    return path


@pytest.fixture
def mon_settings(tmp_path: Path, traces_file: Path, receiver: Receiver) -> Settings:
    return Settings(
        warehouse=tmp_path / "warehouse.duckdb",
        traces=f"jsonl:{traces_file}",
        monitors_dir=tmp_path / "monitors",
        redaction_key="a-fixed-redaction-key-for-the-tests",
        webhook_secret=WEBHOOK_SECRET,
        rollback_url=receiver.url,
        rollback_secret=ROLLBACK_SECRET,
        rollback_backoff_s=0.0,
        rollback_attempts=2,
        lock_wait_s=10.0,
        prefect_api_url=None,  # no Prefect API: windows open and tick in-process
    )
