"""Prefect events: the monitor's (the Prefect side of the core's `EventEmitter`) and the
verdicts' (`emit_verdict`).

It lives with the Prefect tasks, not in a face: the monitor tasks emit with it, and both
faces (`evalkeeper listen`'s deploy webhooks, the CLI's `monitor` commands) import it
lazily, as they import the flows; the core never imports it (nor Prefect).

`prefect_emitter(settings)` is an `evalkeeper.monitor.rollback.EventEmitter` that sends one
event to the Prefect API named by `PREFECT_API_URL` (over Prefect's own events client, a
websocket), or None when no API is configured. Event ids are given by the caller
(deterministic per window), so an event sent twice is one event to Prefect.

`emit_verdict(verdict, experiment_id, payload)` sends, from inside a flow run (Prefect's own
`emit_event`, which relates it to the run), `evalkeeper.verdict.inconclusive` or
`evalkeeper.verdict.regression` (resource `evalkeeper.experiment.<id>`): what an automation
listens for when a nightly or gate run's verdict is not pass.
"""

from __future__ import annotations

import uuid
from typing import Any

from evalkeeper.monitor.rollback import EventEmitter
from evalkeeper.settings import Settings

INCONCLUSIVE_EVENT = "evalkeeper.verdict.inconclusive"
REGRESSION_EVENT = "evalkeeper.verdict.regression"
VERDICT_EVENTS = {"inconclusive": INCONCLUSIVE_EVENT, "regression": REGRESSION_EVENT}


def emit_verdict(verdict: str, experiment_id: str, payload: dict[str, Any]) -> None:
    """Emit the event of a verdict that is not pass (`VERDICT_EVENTS`) for `experiment_id`."""
    from prefect.events import emit_event

    emit_event(
        event=VERDICT_EVENTS[verdict],
        resource={
            "prefect.resource.id": f"evalkeeper.experiment.{experiment_id}",
            "prefect.resource.name": experiment_id,
        },
        payload=payload,
    )


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
