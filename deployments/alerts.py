"""The alert automations, declared once: for each evalkeeper event an on-call person should
hear of, a Prefect automation whose `send-notification` action sends a message, rendered
from the event (Jinja), through a Prefect notification block: a Slack incoming webhook
(`SlackWebhook`) or any webhook (`CustomWebhookNotificationBlock`, JSON
`{"text", "subject", "body"}`).

`setup(channel, url, keys)` makes (or brings up to date) the channel's block and one
automation per event key, and deletes the channel's automations of keys no longer asked
for: running it twice leaves the same blocks and automations. `list_alerts()` and
`remove(channel)` read and delete them. `evalkeeper alerts` is the command line over these
(docs/alerts.md). Every object is found by its name, which starts with `evalkeeper-alert`.

The webhook URL is a secret: the Slack block holds it as a `SecretStr`, the generic block
in its `secrets` (its `url` field is the placeholder `{{url}}`), and nothing here prints
more of it than `mask_url` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from evalkeeper.errors import InputError
from tasks.events import ALERT_EVENTS

Channel = Literal["slack", "webhook"]
CHANNELS: tuple[Channel, ...] = ("slack", "webhook")
PREFIX = "evalkeeper-alert"
BLOCKS: dict[Channel, tuple[str, str]] = {
    "slack": ("slack-webhook", "evalkeeper-alerts-slack"),
    "webhook": ("custom-webhook", "evalkeeper-alerts-webhook"),
}
"""Per channel: the Prefect block type's slug and the block document's name."""


class AlertSetupError(InputError):
    """An alert cannot be set up as asked (an unknown event, a URL that cannot be one, no
    Prefect API): the message names the fix."""


@dataclass(frozen=True)
class Alert:
    """One alert: the event it listens for, and its message's Jinja templates."""

    key: str
    event: str
    description: str
    subject: str
    body: str


_TAIL = (
    "{% if event.payload.report_path %}report: {{ event.payload.report_path }}\n{% endif %}"
    "event: {{ event.event }} {{ event.id }}"
)
_ENV = "{% if event.payload.environment %} ({{ event.payload.environment }}){% endif %}\n"
_REASONS = "{% for r in event.payload.reasons %}- {{ r }}\n{% endfor %}"


def _verdict_body(verdict: str) -> str:
    """The message of a verdict's alert (regression, inconclusive)."""
    return (
        "{{ event.payload.summary }}\n"
        f"verdict: {verdict} ({{{{ event.payload.flow }}}} flow)\n"
        "experiment: {{ event.payload.experiment_id }}, baseline: "
        "{{ event.payload.baseline_id or 'none' }}\n"
        "suite: {{ event.payload.suite }}, dataset: {{ event.payload.dataset }}\n"
        "reasons:\n" + _REASONS + _TAIL
    )


ALERTS: dict[str, Alert] = {
    a.key: a
    for a in (
        Alert(
            key="regression",
            event=ALERT_EVENTS["regression"],
            description="A nightly or gate run's verdict is regression.",
            subject="evalkeeper: REGRESSION in experiment {{ event.payload.experiment_id }}",
            body=_verdict_body("regression"),
        ),
        Alert(
            key="inconclusive",
            event=ALERT_EVENTS["inconclusive"],
            description="A nightly or gate run's verdict is inconclusive.",
            subject="evalkeeper: INCONCLUSIVE verdict for experiment "
            "{{ event.payload.experiment_id }}",
            body=_verdict_body("inconclusive"),
        ),
        Alert(
            key="rollback-decided",
            event=ALERT_EVENTS["rollback-decided"],
            description="A monitoring window decided to roll a deploy back.",
            subject="evalkeeper: ROLLBACK decided for {{ event.payload.service }} "
            "{{ event.payload.version }}",
            body="{{ event.payload.summary }}\n"
            "window: {{ event.payload.window_id }}, deploy: {{ event.payload.deploy_id }}"
            + _ENV
            + "roll back {{ event.payload.version }} to {{ event.payload.rollback_to }}, "
            "decided at {{ event.payload.decided_at }}\n"
            "reasons:\n" + _REASONS + _TAIL,
        ),
        Alert(
            key="rollback-undelivered",
            event=ALERT_EVENTS["rollback-undelivered"],
            description="A rollback decision could not be delivered on a channel.",
            subject="evalkeeper: rollback of {{ event.payload.service }} "
            "{{ event.payload.version }} NOT DELIVERED",
            body="{{ event.payload.summary }}\n"
            "window: {{ event.payload.window_id }}, deploy: {{ event.payload.deploy_id }}"
            + _ENV
            + "not delivered on: {{ event.payload.missing | join(', ') }}; delivered on: "
            "{{ event.payload.delivered | join(', ') or 'nothing' }}\n"
            "every tick retries it; `evalkeeper monitor status` shows where it stands\n"
            "reasons for the rollback:\n" + _REASONS + _TAIL,
        ),
        Alert(
            key="judge-retired",
            event=ALERT_EVENTS["judge-retired"],
            description="Calibration retired a judge version.",
            subject="evalkeeper: judge {{ event.payload.judge }} RETIRED",
            body="{{ event.payload.summary }}\n"
            "judge: {{ event.payload.judge }} (prompt {{ event.payload.prompt_version }}, "
            "model {{ event.payload.judge_model }}), labels of {{ event.payload.quarter }}\n"
            "reason: {{ event.payload.reason }}\n" + _TAIL,
        ),
    )
}


def parse_keys(events: str | None) -> list[str]:
    """`regression,judge-retired` -> the keys, in `ALERTS` order; None or `all`: every one."""
    if events is None or events.strip() == "all":
        return list(ALERTS)
    asked = [e.strip() for e in events.split(",") if e.strip()]
    unknown = [e for e in asked if e not in ALERTS]
    if unknown or not asked:
        raise AlertSetupError(
            f"--events {events!r}: unknown event {', '.join(unknown) or '(none given)'}; "
            f"use a comma-separated list of {', '.join(ALERTS)} (or all)"
        )
    return [k for k in ALERTS if k in asked]


def mask_url(url: str | SecretStr) -> str:
    """`https://hooks.slack.com/…`: the scheme and host, never the path (the token)."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    parts = urlsplit(raw)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…" if parts.netloc else "…"


def check_url(url: SecretStr, flag: str) -> None:
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AlertSetupError(
            f"{flag} {mask_url(url)}: not an http(s) URL; give the webhook's full URL, "
            "e.g. https://hooks.slack.com/services/T…/B…/…"
        )


def automation_name(key: str, channel: Channel) -> str:
    return f"{PREFIX}-{key}-{channel}"


def make_block(channel: Channel, url: SecretStr) -> Any:
    """The channel's notification block (not saved)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    if channel == "slack":
        return SlackWebhook(url=url)
    return CustomWebhookNotificationBlock(
        name=BLOCKS["webhook"][1],
        url="{{url}}",
        secrets={"url": url.get_secret_value()},
        json_data={
            "text": "{{subject}}\n{{body}}",
            "subject": "{{subject}}",
            "body": "{{body}}",
            "source": "evalkeeper",
        },
    )


def make_automation(alert: Alert, channel: Channel, block_id: Any) -> Any:
    """The automation of one alert on one channel: every event of its name, one message."""
    from datetime import timedelta

    from prefect.automations import AutomationCore, EventTrigger, SendNotification

    return AutomationCore(
        name=automation_name(alert.key, channel),
        description=f"evalkeeper alert ({channel}): {alert.description}",
        enabled=True,
        trigger=EventTrigger(
            expect={alert.event},
            match={"prefect.resource.id": "evalkeeper.*"},
            posture="Reactive",
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(block_document_id=block_id, subject=alert.subject, body=alert.body)
        ],
    )


@dataclass
class Change:
    """What `setup` or `remove` did to one object."""

    kind: Literal["block", "automation"]
    name: str
    action: Literal["created", "updated", "deleted", "unchanged"]
    detail: str = ""


async def _ours(client: Any) -> list[Any]:
    return [a for a in await client.read_automations() if a.name.startswith(PREFIX + "-")]


async def setup(channel: Channel, url: SecretStr, keys: list[str]) -> list[Change]:
    """Save the channel's block (overwritten in place) and one automation per key (updated
    in place when one of its name exists); delete the channel's other alert automations."""
    from prefect.client.orchestration import get_client

    check_url(url, "--slack-webhook" if channel == "slack" else "--webhook")
    slug, block_name = BLOCKS[channel]
    changes: list[Change] = []
    async with get_client() as client:
        existed = await _block_id(client, slug, block_name)
        block_id = await make_block(channel, url).asave(block_name, overwrite=True)
        changes.append(
            Change("block", block_name, "updated" if existed else "created", mask_url(url))
        )
        current: dict[str, list[Any]] = {}
        for a in await _ours(client):
            current.setdefault(a.name, []).append(a)
        for key in keys:
            name = automation_name(key, channel)
            wanted = make_automation(ALERTS[key], channel, block_id)
            found = current.pop(name, [])
            if found:
                await client.update_automation(found[0].id, wanted)
                for extra in found[1:]:  # made by hand or by a race: one is enough
                    await client.delete_automation(extra.id)
                changes.append(Change("automation", name, "updated", ALERTS[key].event))
            else:
                await client.create_automation(wanted)
                changes.append(Change("automation", name, "created", ALERTS[key].event))
        for name, stale in current.items():
            if name.endswith(f"-{channel}"):
                for a in stale:
                    await client.delete_automation(a.id)
                changes.append(Change("automation", name, "deleted", "not among --events"))
    return changes


async def _block_id(client: Any, slug: str, name: str) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    try:
        doc = await client.read_block_document_by_name(
            name, block_type_slug=slug, include_secrets=False
        )
    except ObjectNotFound:
        return None
    return doc.id


async def list_alerts() -> list[dict[str, Any]]:
    """One row per alert automation: its name, event, channel, state and masked URL."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    urls: dict[Any, str] = {}
    async with get_client() as client:
        for channel, (slug, name) in BLOCKS.items():
            if (block_id := await _block_id(client, slug, name)) is None:
                continue
            try:
                if channel == "slack":
                    urls[block_id] = mask_url((await SlackWebhook.aload(name)).url)
                else:
                    block = await CustomWebhookNotificationBlock.aload(name)
                    urls[block_id] = mask_url(block.secrets.get_secret_value().get("url", ""))
            except (ObjectNotFound, ValueError) as exc:
                urls[block_id] = f"(block {name} unreadable: {type(exc).__name__})"
        rows = []
        for a in sorted(await _ours(client), key=lambda a: a.name):
            action = next((x for x in a.actions if x.type == "send-notification"), None)
            block_id = getattr(action, "block_document_id", None)
            rows.append(
                {
                    "automation": a.name,
                    "event": ", ".join(sorted(getattr(a.trigger, "expect", None) or [])),
                    "channel": a.name.rsplit("-", 1)[-1],
                    "enabled": a.enabled,
                    "url": urls.get(block_id, "(block missing: run `evalkeeper alerts setup`)"),
                }
            )
    return rows


async def remove(channels: list[Channel]) -> list[Change]:
    """Delete the alert automations and blocks of `channels`."""
    from prefect.client.orchestration import get_client

    changes: list[Change] = []
    async with get_client() as client:
        for a in await _ours(client):
            if any(a.name.endswith(f"-{c}") for c in channels):
                await client.delete_automation(a.id)
                changes.append(Change("automation", a.name, "deleted"))
        for channel in channels:
            slug, name = BLOCKS[channel]
            if (block_id := await _block_id(client, slug, name)) is not None:
                await client.delete_block_document(block_id)
                changes.append(Change("block", name, "deleted"))
    return changes
