"""`evalkeeper alerts`: set up, list and remove the Prefect automations that send
evalkeeper's events (regression, inconclusive, rollback decided, rollback undelivered,
judge retired) to a Slack incoming webhook or a generic webhook (docs/alerts.md).

The automations and notification blocks live on the Prefect server of `PREFECT_API_URL`;
the definitions are `deployments/alerts.py`, imported (with Prefect) only when a command
runs. A webhook URL is a secret: it is stored in the block as a secret and printed only as
its scheme and host."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from pydantic import SecretStr

from evalkeeper import orchestration_env
from evalkeeper.cli.app import app, console, output_format
from evalkeeper.errors import InputError
from evalkeeper.report.output import ROW_FORMATS, emit_rows

alerts_app = typer.Typer(
    name="alerts",
    help="Alerts: send regressions, rollbacks and retired judges to Slack or a webhook.",
    no_args_is_help=True,
)
app.add_typer(alerts_app, name="alerts")

T = TypeVar("T")


class NoPrefectApi(InputError):
    """No Prefect server to keep the automations on, or it cannot be reached."""


def _api_url() -> str:
    orchestration_env.configure()
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise NoPrefectApi(
            "PREFECT_API_URL is not set: alerts are automations on a Prefect server; start "
            "one (`prefect server start`) and set PREFECT_API_URL (e.g. "
            "http://127.0.0.1:4200/api), then run this again"
        )
    return str(url)


def _run(make: Coroutine[Any, Any, T]) -> T:
    """Run one call against the Prefect API; an unreachable API is the user's to fix."""
    import httpx

    url = _api_url()
    try:
        return asyncio.run(make)
    except httpx.TransportError as exc:
        raise NoPrefectApi(
            f"Prefect API at {url}: cannot connect ({type(exc).__name__}); start it with "
            "`prefect server start` or set PREFECT_API_URL to the running server's API"
        ) from exc
    finally:
        make.close()


def _print_changes(changes: list[Any]) -> None:
    for c in changes:
        console.print(f"{c.kind} {c.name}: {c.action}" + (f" ({c.detail})" if c.detail else ""))


@alerts_app.command("setup")
def setup_command(
    slack_webhook: Annotated[
        str | None,
        typer.Option(
            "--slack-webhook",
            help="A Slack incoming webhook URL (https://hooks.slack.com/services/…).",
            show_default=False,
        ),
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help='Any webhook URL: each alert is POSTed as JSON {"text", "subject", "body"}.',
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        str,
        typer.Option(
            "--events",
            help="Comma-separated: regression, inconclusive, rollback-decided, "
            "rollback-undelivered, judge-retired; or all.",
        ),
    ] = "all",
) -> None:
    """Create or update the alert automations of a channel, or of both (idempotent: running
    it again updates them in place; events left out of --events lose their automation on
    the channels given)."""
    from deployments.alerts import Channel, parse_keys, setup

    asked: list[tuple[Channel, str | None]] = [("slack", slack_webhook), ("webhook", webhook)]
    given = [(channel, url) for channel, url in asked if url is not None]
    if not given:
        raise InputError("give --slack-webhook URL, --webhook URL or both")
    keys = parse_keys(events)
    _api_url()
    for channel, url in given:
        _print_changes(_run(setup(channel, SecretStr(url), keys)))


@alerts_app.command("list")
def list_command(
    format: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or markdown.")
    ] = "table",
) -> None:
    """Show the alert automations: event, channel, enabled, and the URL's host."""
    from deployments.alerts import list_alerts

    fmt = output_format(format, ("table", *ROW_FORMATS))
    rows = _run(list_alerts())
    if not rows and fmt == "table":
        console.print("no alerts set up: run `evalkeeper alerts setup --slack-webhook URL`")
        return
    emit_rows(rows, fmt, ["automation", "event", "channel", "enabled", "url"], console=console)


@alerts_app.command("remove")
def remove_command(
    channel: Annotated[str, typer.Option("--channel", help="slack, webhook or all.")] = "all",
) -> None:
    """Delete the alert automations and notification blocks of a channel (or all)."""
    from deployments.alerts import CHANNELS, remove

    if channel not in (*CHANNELS, "all"):
        raise InputError(f"--channel {channel!r}: use slack, webhook or all")
    chosen = list(CHANNELS) if channel == "all" else [c for c in CHANNELS if c == channel]
    changes = _run(remove(chosen))
    _print_changes(changes)
    if not changes:
        console.print("nothing to remove")
