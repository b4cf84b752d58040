"""The demo's monitoring act: the sample traffic's deploy, its window, tick by tick.

`data/traces/` holds several days of the demo agent's production traffic (`*.jsonl`) and
`deploys.json` (`[{"version", "previous", "time"}]`). The act opens the window of the last
deploy, replays its window hour by hour with an injected clock (the same ticks as
production, as of each hour), and shows the timeline and the decision with the hour it came.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from evalkeeper.monitor.tick import tick
from evalkeeper.monitor.windows import DeployEvent, open_window
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace, iso_utc

TRAFFIC_DIR = Path("data/traces")


def _service(directory: Path) -> str | None:
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return Trace.from_json_line(line, f"{path}:1").service
    return None


def traffic_dir(settings: Settings) -> Path:
    """`data/traces/` beside the datasets directory."""
    return Path(settings.datasets_dir).parent / TRAFFIC_DIR.name


async def monitoring_act(
    settings: Settings, console: Console, directory: Path | None = None
) -> Any:
    """Run the act on `directory`'s traffic (default: `traffic_dir(settings)`); returns the
    final tick's window (None if the sample traffic is not there)."""
    directory = traffic_dir(settings) if directory is None else directory
    deploys_file = directory / "deploys.json"
    service = _service(directory) if directory.is_dir() else None
    if not deploys_file.exists() or service is None:
        console.print(
            f"monitoring act skipped: no sample traffic in {directory} (*.jsonl and deploys.json)",
            highlight=False,
        )
        return None
    deploy = json.loads(deploys_file.read_text())[-1]
    settings = settings.model_copy(
        update={
            "monitor": settings.monitor.model_copy(
                update={"traces": f"jsonl:{directory.resolve()}"}
            )
        }
    )
    event = DeployEvent(
        service=service,
        version=deploy["version"],
        previous_version=deploy.get("previous"),
        deploy_id=f"demo:{service}:{deploy['version']}:{deploy['time']}",
        time=deploy["time"],
        environment="prod",
    )
    window = open_window(settings, event, "cli").window
    console.rule(f"monitoring: {service} {window.version} deployed {iso_utc(window.deployed_at)}")
    console.print(
        f"window {window.window_id}: baseline {window.previous_version} from "
        f"{iso_utc(window.baseline_start)}; evaluators "
        f"{', '.join(e.name for e in window.config.evaluators)}; one tick an hour",
        highlight=False,
        soft_wrap=True,
    )
    hours = int(window.config.window_hours)
    last = None
    for hour in range(0, hours + 1):
        summary = await tick(settings, now=window.deployed_at + timedelta(hours=hour))
        if not summary.windows:
            break
        last = next((w for w in summary.windows if w.window_id == window.window_id), None)
        if last is None:
            break
        cells = "  ".join(
            f"{e.evaluator} {e.window_flags}/{e.window_n}"
            + ("" if e.baseline_rate is None else f" (baseline {e.baseline_rate:.1%})")
            for e in last.evaluators
        )
        console.print(f"  +{hour:>2} h  {last.decision:<12} {cells}", highlight=False)
        if last.state == "closed":
            break
    if last is not None:
        style = "bold red" if last.decision == "rollback" else "bold"
        console.print(
            f"decision: [{style}]{last.decision}[/] at {iso_utc(last.tick_at)} "
            f"(+{(last.tick_at - window.deployed_at) / timedelta(hours=1):.0f} h); "
            + "; ".join(last.reasons),
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"  uv run evalkeeper monitor status {window.window_id}\n"
            '  uv run evalkeeper sql "SELECT * FROM monitor_ticks ORDER BY tick_at"',
            highlight=False,
        )
    return last
