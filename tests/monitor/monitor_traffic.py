"""Synthetic agent traffic for the monitor tests: trace lines appended to a JSONL file.

A trace is slow (3 s, over `latency_ok`'s 1.2 s budget: a flag) with probability
`slow_rate`, fast (0.3 s) otherwise; `error_rate` of them end with a tool error. Draws
are seeded, so a test gets the same traffic every run.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from evalkeeper.traces.model import iso_utc

SERVICE = "scheduler"


def traffic(
    path: Path,
    *,
    version: str,
    start: datetime,
    hours: float,
    per_hour: int,
    slow_rate: float,
    seed: int,
    error_rate: float = 0.0,
    service: str = SERVICE,
) -> int:
    """Append `hours * per_hour` traces of `version`, evenly spread from `start`."""
    rng = random.Random(seed)
    n = int(hours * per_hour)
    step = timedelta(hours=hours) / max(n, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for i in range(n):
            slow = rng.random() < slow_rate
            failed = rng.random() < error_rate
            row = {
                "trace_id": f"{version}-{seed}-{i:06d}",
                "time": iso_utc(start + step * i),
                "service": service,
                "environment": "prod",
                "version": version,
                "inputs": {"message": f"book a slot {i}"},
                "outputs": {"reply": "Booked."},
                "latency_ms": 3000.0 if slow else 300.0,
                "tool_calls": [{"name": "book_slot", "args": {"slot": i}}],
            }
            if failed:
                row["error"] = "tool book_slot: 503 from the calendar API"
            fh.write(json.dumps(row) + "\n")
    return n
