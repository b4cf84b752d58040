"""The scheduled deployments, declared once: `prefect.yaml` mirrors these for `prefect deploy`,
and `evalkeeper serve` serves them directly (no work pool needed)."""

from __future__ import annotations

from typing import Any

TIMEZONE = "UTC"

NIGHTLY: dict[str, dict[str, Any]] = {
    "nightly-full": {
        "cron": "0 2 * * *",
        "parameters": {"suite": "full"},
        "description": "Full suite every night at 02:00 UTC.",
    },
    "nightly-smoke": {
        "cron": "0 */4 * * *",
        "parameters": {"suite": "smoke"},
        "description": "Smoke suite every 4 hours.",
    },
}
