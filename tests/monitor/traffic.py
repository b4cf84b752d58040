"""Recorded traffic for monitor tests: a JSONL trace file whose tool-error rate can change."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from evalkeeper.traces.model import iso_utc

DEPLOY = datetime.fromisoformat("2026-11-30T12:00:00+00:00")


def write_traffic(
    path: Path,
    *,
    before_rate: float,
    after_rate: float,
    per_hour: int = 200,
    hours_before: float = 48.0,
    hours_after: float = 24.0,
    seed: int = 1,
    service: str = "agent",
    deploy: datetime = DEPLOY,
) -> Path:
    """Traces every 3600/per_hour s from `hours_before` before `deploy` to `hours_after`
    after it; each has one tool call that fails with the rate of its side."""
    rng = np.random.default_rng(seed)
    step = 3600.0 / per_hour
    n_before, n_after = int(hours_before * per_hour), int(hours_after * per_hour)
    lines = []
    for i in range(-n_before, n_after):
        when = deploy + timedelta(seconds=i * step)
        rate = before_rate if i < 0 else after_rate
        call: dict[str, object] = {"name": "book_slot", "args": {"slot": i % 7}}
        if rng.random() < rate:
            call["error"] = "HTTP 503 from the booking API"
        lines.append(
            json.dumps(
                {
                    "trace_id": f"{service}-{i + n_before:06d}",
                    "time": iso_utc(when),
                    "service": service,
                    "version": "v1" if i < 0 else "v2",
                    "inputs": {"message": "book me in"},
                    "outputs": {"reply": "done"},
                    "latency_ms": 300.0,
                    "tool_calls": [call],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path
