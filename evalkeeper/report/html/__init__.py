"""Self-contained HTML reports: one file, opened from disk, no server, no network.

`page` lays out a report (inline CSS, sections, tables); `charts` renders Altair charts to
static SVG with vl-convert, so the file holds no script at all. The report builders (an
experiment, a monitoring window, a calibration) gather their numbers from the warehouse
and hand them to these two."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkeeper.settings import Settings

REPORTS_DIR = "reports"
"""Where the flows write their reports: a folder beside the warehouse file."""


def default_report_path(settings: Settings, kind: str, ident: str) -> Path:
    """`<warehouse folder>/reports/<kind>-<ident>.html` (`experiment`, `window`,
    `calibration`); characters a file name should not hold become `_`."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ident).strip("._") or "report"
    return Path(settings.warehouse).parent / REPORTS_DIR / f"{kind}-{safe}.html"
