"""The HTTP face (`evalkeeper listen`): an ASGI app receiving OTLP traces."""

from __future__ import annotations

from evalkeeper.http.app import TraceSink, create_app

__all__ = ["TraceSink", "create_app"]
