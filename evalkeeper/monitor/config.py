"""A service's monitor configuration: `data/monitors/SERVICE.toml` (the `monitors_dir` setting).

```toml
sample_rate = 0.2            # share of traces scored (keyed hash of the trace id)
window_hours = 24            # how long a window watches (48 at most)
tick_minutes = 15            # how often a tick is expected (the schedule's interval)
alpha = 0.05                 # false-rollback rate, split across the evaluators
tolerance = 0.0              # a rise of the flag rate up to this is accepted
method = "spending"          # the test: "spending" (group-sequential) or "mixture"
min_baseline = 200           # fewer baseline traces: inconclusive from the start
min_window = 50              # fewer window traces at the end: inconclusive
max_error_rate = 0.2         # more evaluator errors: inconclusive (never a rollback)
baseline_days = 7            # the baseline: the previous version's traces of these days
baseline_mode = "before"     # or "same_hours": the window's hours of each previous day
rollback_command = "…"       # optional: run on a rollback decision (payload on stdin)

[[evaluators]]
name = "latency_ok"
args = { threshold_s = 2.0 }

[[evaluators]]
name = "tool_error"
```

A service without a file gets `latency_ok` and `tool_error` at sample rate 1 and the
defaults above. Only reference-free evaluators can watch live traffic: a reference
evaluator (`exact_match`, `factual_match`, …) is refused with the list of those that can.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalkeeper import registry
from evalkeeper.errors import InputError
from evalkeeper.models import EvaluatorRef
from evalkeeper.settings import Settings

DEFAULT_EVALUATORS = ("latency_ok", "tool_error")
MAX_WINDOW_HOURS = 48.0
# evaluators that need a reference answer cannot score live traffic
REFERENCE_FREE_KINDS = ("heuristic", "structural", "judge", "groundedness")
NEEDS_REFERENCE = ("factual_match", "tool_call_correct")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class MonitorConfigError(InputError, ValueError):
    """A monitor config that cannot be used; the message names the file and the fix."""


class MonitorConfig(BaseModel):
    """How one service's deploys are watched."""

    model_config = ConfigDict(extra="forbid")

    evaluators: list[EvaluatorRef] = Field(
        default_factory=lambda: [EvaluatorRef(name=n) for n in DEFAULT_EVALUATORS],
        description="The online evaluators (reference-free) and their arguments.",
    )
    sample_rate: float = Field(1.0, gt=0, le=1, description="Share of traces scored.")
    window_hours: float = Field(
        24.0, gt=0, le=MAX_WINDOW_HOURS, description="How long a window watches (hours)."
    )
    tick_minutes: float = Field(15.0, gt=0, description="Interval between ticks (minutes).")
    alpha: float = Field(0.05, gt=0, lt=1, description="False-rollback rate of the window.")
    tolerance: float = Field(0.0, ge=0, lt=1, description="Accepted rise of a flag rate.")
    method: Literal["spending", "mixture"] = Field(
        "spending",
        description="The rollback test: `spending` (group-sequential, alpha spent over the "
        "window's time) or `mixture` (the earlier test, valid at any looks; for rare flags).",
    )
    min_baseline: int = Field(200, ge=1, description="Fewest baseline traces per evaluator.")
    min_window: int = Field(50, ge=1, description="Fewest window traces for `stable`.")
    max_error_rate: float = Field(
        0.2, ge=0, le=1, description="Above this share of evaluator errors: inconclusive."
    )
    baseline_days: float = Field(7.0, gt=0, description="Days of baseline before the deploy.")
    baseline_mode: Literal["before", "same_hours"] = Field(
        "before",
        description="`before`: the whole period before the deploy; `same_hours`: only the "
        "window's hours of day on each previous day.",
    )
    rollback_command: str | None = Field(
        None, description="Run on a rollback decision (overrides EVALKEEPER_ROLLBACK_COMMAND)."
    )


def config_path(settings: Settings, service: str) -> Path:
    if not _SERVICE.match(service):
        raise MonitorConfigError(
            f"service {service!r}: use letters, digits, '.', '_' or '-' (it names "
            f"{settings.monitor.monitors_dir}/SERVICE.toml)"
        )
    return settings.monitor.monitors_dir / f"{service}.toml"


def load_config(settings: Settings, service: str) -> MonitorConfig:
    """The service's config from its TOML file, or the defaults when there is none."""
    path = config_path(settings, service)
    if not path.exists():
        config = MonitorConfig()
    else:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise MonitorConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
        try:
            config = MonitorConfig.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise MonitorConfigError(f"{path}: {problems}") from None
    check_online(config, str(path))
    return config


def check_online(config: MonitorConfig, where: str) -> None:
    """Every evaluator is registered and reference-free; MonitorConfigError otherwise."""
    if not config.evaluators:
        raise MonitorConfigError(f"{where}: no evaluators; list at least one [[evaluators]]")
    names = [e.name for e in config.evaluators]
    if len(set(names)) != len(names):
        raise MonitorConfigError(f"{where}: an evaluator is listed twice ({names})")
    known = registry.available()
    online = sorted(
        n
        for n, r in known.items()
        if r.kind in REFERENCE_FREE_KINDS and not r.summary and n not in NEEDS_REFERENCE
    )
    for name in names:
        reg = known.get(name)
        if reg is None:
            raise MonitorConfigError(
                f"{where}: unknown evaluator {name!r}; online evaluators: {', '.join(online)}"
            )
        if name not in online:
            raise MonitorConfigError(
                f"{where}: evaluator {name!r} ({reg.kind}{', summary' if reg.summary else ''}) "
                f"needs a reference or a whole experiment, not live traffic; use one of "
                f"{', '.join(online)}"
            )
