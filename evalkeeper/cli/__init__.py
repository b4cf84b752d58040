"""The `evalkeeper` command line. Each submodule registers its commands on `app`."""

from __future__ import annotations

import evalkeeper.cli.alerts
import evalkeeper.cli.analysis
import evalkeeper.cli.calibrate
import evalkeeper.cli.flaky
import evalkeeper.cli.judges
import evalkeeper.cli.langsmith
import evalkeeper.cli.listen
import evalkeeper.cli.monitor
import evalkeeper.cli.monitor_backtest
import evalkeeper.cli.monitor_windows
import evalkeeper.cli.plan
import evalkeeper.cli.promote
import evalkeeper.cli.replay
import evalkeeper.cli.report

# Command modules register themselves on import.
import evalkeeper.cli.run
import evalkeeper.cli.traces
from evalkeeper.cli.app import app, main

import evalkeeper.cli.demo  # isort: skip
import evalkeeper.cli.serve  # noqa: F401  isort: skip

__all__ = ["app", "main"]
