"""The report of one post-deploy monitoring window (`evalkeeper report --window WIN`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkeeper.report.html.page import Page
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse


def build_window_report(warehouse: Warehouse, window_id: str, *, settings: Settings) -> Page:
    """Flag rate per tick per evaluator against the bound, the e-value path, the decision."""
    raise NotImplementedError("the window report is not built yet")
