"""The `evalkeeper` command line. Each submodule registers its commands on `app`."""

from __future__ import annotations

from evalkeeper.cli.app import app, main

# Command modules register themselves on import.
from evalkeeper.cli import run as _run  # noqa: F401  isort: skip

__all__ = ["app", "main"]
