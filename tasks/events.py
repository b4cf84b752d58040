"""Prefect events for the monitor: the Prefect side of the core's `EventEmitter`.

It lives with the Prefect tasks, not in a face: the monitor tasks emit with it, and both
faces (`evalkeeper listen`'s deploy webhooks, the CLI's `monitor` commands) import it
lazily, as they import the flows; the core never imports it (nor Prefect).

`prefect_emitter(settings)` is an `evalkeeper.monitor.rollback.EventEmitter` that sends one
event to the Prefect API named by `PREFECT_API_URL` (over Prefect's own events client, a
websocket), or None when no API is configured. Event ids are given by the caller
(deterministic per window), so an event sent twice is one event to Prefect.
"""

from __future__ import annotations

import uuid
from typing import Any

from evalkeeper.monitor.rollback import EventEmitter
from evalkeeper.settings import Settings


def prefect_emitter(settings: Settings) -> EventEmitter | None:
    """An emitter to the configured Prefect API; None without one."""
    url = settings.monitor.prefect_api_url
    if not url:
        return None

    async def emit(
        event: str, resource_id: str, payload: dict[str, Any], event_id: uuid.UUID
    ) -> None:
        from prefect.events.clients import PrefectEventsClient
        from prefect.events.schemas.events import Event

        async with PrefectEventsClient(api_url=url) as client:
            await client.emit(
                Event(
                    event=event,
                    resource={"prefect.resource.id": resource_id},
                    payload=payload,
                    id=event_id,
                )
            )

    return emit
