"""The scheduled deployments, declared once: `prefect.yaml` mirrors these for `prefect deploy`,
and `evalkeeper serve` serves them directly (no work pool needed).

The two never share a deployment: `serve` registers each one under its name plus
`SERVE_SUFFIX` (`nightly/nightly-full-serve`), because a deployment belongs to whoever
registered it last, and a served one has no pull steps for a work pool's worker."""

from __future__ import annotations

from typing import Any

TIMEZONE = "UTC"
SERVE_SUFFIX = "-serve"

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

CALIBRATION: dict[str, dict[str, Any]] = {
    "judge-calibration": {
        "cron": "0 3 1 1,4,7,10 *",
        "parameters": {},
        "description": "Judge calibration on the first day of each quarter, 03:00 UTC.",
    },
}
"""Declared here so that prefect.yaml is checked against it; `evalkeeper serve` serves the
nightly deployments only (deploy this one with `prefect deploy`)."""
