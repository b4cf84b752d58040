"""`evalkeeper monitor …`: post-deploy monitoring windows. Command modules
(`monitor_windows`, `monitor_backtest`) add to `monitor_app`."""

from __future__ import annotations

import typer

from evalkeeper.cli.app import app

monitor_app = typer.Typer(
    name="monitor",
    help="Post-deploy monitoring: watch online evaluators after a deploy, roll back once.",
    no_args_is_help=True,
)
app.add_typer(monitor_app, name="monitor")
