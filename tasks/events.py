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

`emit_judge_retired(change, ...)` sends `evalkeeper.judge.retired` (resource
`evalkeeper.judge.<name>`) for a judge version the calibration flow has just retired.

Every payload carries a one-line `summary` and, where a report belongs to it, the
`report_path` the flows write it to (`default_report_path`): the alerts the automations of
`deployments/alerts.py` send are made of them (docs/alerts.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from evalkeeper.calibration.models import StatusChange
from evalkeeper.monitor.rollback import ROLLBACK_EVENT, UNDELIVERED_EVENT, EventEmitter
from evalkeeper.report.html import default_report_path
from evalkeeper.settings import Settings

INCONCLUSIVE_EVENT = "evalkeeper.verdict.inconclusive"
REGRESSION_EVENT = "evalkeeper.verdict.regression"
VERDICT_EVENTS = {"inconclusive": INCONCLUSIVE_EVENT, "regression": REGRESSION_EVENT}
JUDGE_RETIRED_EVENT = "evalkeeper.judge.retired"
ALERT_EVENTS = {
    "regression": REGRESSION_EVENT,
    "inconclusive": INCONCLUSIVE_EVENT,
    "rollback-decided": ROLLBACK_EVENT,
    "rollback-undelivered": UNDELIVERED_EVENT,
    "judge-retired": JUDGE_RETIRED_EVENT,
}
"""The events an alert can be set up for (`evalkeeper alerts setup --events`), by name."""
_NAMESPACE = uuid.UUID("0c7d8f3a-51b6-4f0e-8a44-6d2b7e9c1f35")


def verdict_summary(verdict: str, payload: dict[str, Any]) -> str:
    """`regression: experiment E (suite full, dataset D) against baseline B: first reason`."""
    reasons = payload.get("reasons") or []
    baseline = payload.get("baseline_id")
    return (
        f"{verdict}: experiment {payload.get('experiment_id')} (suite {payload.get('suite')}, "
        f"dataset {payload.get('dataset')})"
        + (f" against baseline {baseline}" if baseline else "")
        + (f": {reasons[0]}" if reasons else "")
        + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
    )


def emit_verdict(
    verdict: str, experiment_id: str, payload: dict[str, Any], settings: Settings | None = None
) -> None:
    """Emit the event of a verdict that is not pass (`VERDICT_EVENTS`) for `experiment_id`;
    the payload gains its `summary` and the experiment's `report_path` (with `settings`)."""
    from prefect.events import emit_event

    payload = {**payload, "experiment_id": experiment_id, "verdict": verdict}
    payload.setdefault("summary", verdict_summary(verdict, payload))
    if settings is not None:
        payload.setdefault(
            "report_path", str(default_report_path(settings, "experiment", experiment_id))
        )
    emit_event(
        event=VERDICT_EVENTS[verdict],
        resource={
            "prefect.resource.id": f"evalkeeper.experiment.{experiment_id}",
            "prefect.resource.name": experiment_id,
        },
        payload=payload,
    )


def judge_retired_payload(
    change: StatusChange, settings: Settings, quarter: str | None, measured: str | None = None
) -> dict[str, Any]:
    """The `evalkeeper.judge.retired` payload of one status change to retired: `quarter` is
    the calibration's (None: each version's latest, whose report is `calibration-latest`),
    `measured` the quarter of the labels that retired it."""
    return {
        "judge": change.judge,
        "prompt_version": change.prompt_version,
        "judge_model": change.judge_model,
        "status": change.status,
        "reason": change.reason,
        "calibration_id": change.calibration_id,
        "changed_at": change.changed_at.isoformat(),
        "quarter": measured or quarter,
        "summary": f"judge {change.judge} retired (prompt {change.prompt_version}, model "
        f"{change.judge_model}): {change.reason}; it leaves every verdict until a new "
        "version is calibrated healthy",
        "report_path": str(default_report_path(settings, "calibration", quarter or "latest")),
    }


def emit_judge_retired(
    change: StatusChange, settings: Settings, quarter: str | None, measured: str | None = None
) -> None:
    """Emit `JUDGE_RETIRED_EVENT` for one judge version calibration has just retired (its id
    derived from the version and the calibration: a retried task sends it once)."""
    from prefect.events import emit_event

    key = f"{change.judge}:{change.prompt_version}:{change.judge_model}:{change.calibration_id}"
    emit_event(
        event=JUDGE_RETIRED_EVENT,
        resource={
            "prefect.resource.id": f"evalkeeper.judge.{change.judge}",
            "prefect.resource.name": change.judge,
        },
        payload=judge_retired_payload(change, settings, quarter, measured),
        id=uuid.uuid5(_NAMESPACE, f"retired:{key}"),
    )


def window_extras(settings: Settings, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a window's event (a rollback decided or undelivered) gains for its alert: the
    window's `report_path` and, for the decision, a one-line `summary`."""
    out: dict[str, Any] = {}
    window_id = payload.get("window_id")
    if event not in (ROLLBACK_EVENT, UNDELIVERED_EVENT):
        return out
    if window_id:
        out["report_path"] = str(default_report_path(settings, "window", str(window_id)))
    if event == ROLLBACK_EVENT and "summary" not in payload:
        reasons = payload.get("reasons") or []
        out["summary"] = (
            f"rollback decided for {payload.get('service')} {payload.get('version')} "
            f"(window {window_id}): roll back to {payload.get('rollback_to')}"
            + (f": {reasons[0]}" if reasons else "")
        )
    return out


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

        payload = {**payload, **window_extras(settings, event, payload)}
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
