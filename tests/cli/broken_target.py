"""A target module with a bug at import time, loaded by spec (`tests.cli.broken_target:run`)
like any user's module: its TypeError is not an ImportError, so it is no bad spec either."""

from __future__ import annotations

from typing import Any

LIMIT = len(42)  # type: ignore[arg-type]  # the bug: TypeError at import


def run(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"reply": "never reached"}
