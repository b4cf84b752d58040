"""Environment defaults for Prefect, set before Prefect is imported.

No Prefect import here: the core stays orchestration-free. The faces and the flow/task
packages call `configure()` first. A value the user has set is never overridden.
"""

from __future__ import annotations

import os

DEFAULTS = {
    # no network here; Prefect's telemetry must not try to phone home
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # the ephemeral server creates its database on first use: ~25 s on a fresh machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
