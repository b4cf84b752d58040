"""The demo's last word: the HTML reports it wrote, named so a reader can open them.

One per act: the v2 experiment against v1, the monitoring window, the judge calibration.
Each is written beside the warehouse (`reports/`) as `evalkeeper report` writes it; a report
that cannot be written is said with its cause, and the demo goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkeeper.report.html import default_report_path
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from evalkeeper.analysis import Comparison
    from evalkeeper.calibration.models import JudgeCalibration
    from evalkeeper.report.html.page import Page


@dataclass(frozen=True)
class Written:
    """One report: what it is about, and its file (or why there is none)."""

    about: str
    path: Path | None
    problem: str | None = None


def _write(about: str, build: Callable[[], Page], path: Path) -> Written:
    try:
        return Written(about, build().write(path))
    except Exception as exc:  # the demo says it and goes on
        return Written(about, None, f"{type(exc).__name__}: {exc}")


def write_reports(
    settings: Settings,
    *,
    experiment: str | None = None,
    baseline: str | None = None,
    comparison: Comparison | None = None,
    window_id: str | None = None,
    calibrations: list[JudgeCalibration] | None = None,
) -> list[Written]:
    """The reports of the acts that ran (each argument given when its act did)."""
    wh = Warehouse.from_settings(settings)
    out: list[Written] = []
    if experiment is not None:
        from evalkeeper.report.html.experiment import build_experiment_report

        out.append(
            _write(
                f"experiment {experiment}" + (f" vs {baseline}" if baseline else ""),
                lambda: build_experiment_report(
                    wh,
                    experiment,
                    settings=settings,
                    baseline=baseline or "auto",
                    comparison=comparison,
                ),
                default_report_path(settings, "experiment", experiment),
            )
        )
    if window_id is not None:
        from evalkeeper.report.html.window import build_window_report

        out.append(
            _write(
                f"monitoring window {window_id}",
                lambda: build_window_report(wh, window_id, settings=settings),
                default_report_path(settings, "window", window_id),
            )
        )
    if calibrations is not None:
        from evalkeeper.report.html.calibration import build_calibration_report

        out.append(
            _write(
                "judge calibration",
                lambda: build_calibration_report(wh, settings=settings, calibrations=calibrations),
                default_report_path(settings, "calibration", "latest"),
            )
        )
    return out
