"""The judge calibration report (`evalkeeper report --calibration [--quarter Q]`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkeeper.report.html.page import Page
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse


def build_calibration_report(
    warehouse: Warehouse, *, settings: Settings, quarter: str | None = None
) -> Page:
    """Per judge: agreement with its interval against the bar and the human ceiling, kappa
    and AC1, the confusion matrix, the disagreements."""
    raise NotImplementedError("the calibration report is not built yet")
