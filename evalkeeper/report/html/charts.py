"""Charts as static SVG: an Altair chart (Vega-Lite) rendered by vl-convert, inlined.

No script reaches the report: vl-convert runs Vega in its own embedded engine and returns
the SVG, whose marks (`<g class="mark-…">`) are plain DOM a browser draws from disk. Altair
and vl-convert are imported on first use, so a command that draws nothing pays nothing.

Data goes in as records (`alt.Data(values=…)`), never as a frame: a chart's data is what
is drawn, already aggregated by the report builder (a histogram's bins, not 10,000 rows).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from evalkeeper.report.html.page import Html

_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE[^>]*>\s*)?")
_SVG_OPEN = re.compile(r"<svg\b([^>]*)>")


def to_svg(chart: Any, *, name: str, description: str = "") -> Html:
    """`chart` (an Altair chart, or a Vega-Lite spec as a dict) as an inline `<figure>`.

    The SVG keeps its viewBox and trades its fixed width for a maximum, so it shrinks to
    a phone's width and never grows past its drawn size; `name` becomes `data-chart` (what tests and readers look for) and
    `description` the caption and the SVG's accessible label."""
    import vl_convert as vlc

    spec: Mapping[str, Any] = chart if isinstance(chart, Mapping) else chart.to_dict()
    svg = _PROLOGUE.sub("", vlc.vegalite_to_svg(dict(spec)))
    label = html.escape(description or name, quote=True)

    def responsive(match: re.Match[str]) -> str:
        width = re.search(r'\swidth="([\d.]+)"', match.group(1))
        attrs = re.sub(r'\s(width|height)="[^"]*"', "", match.group(1))
        cap = f' style="max-width:{width.group(1)}px"' if width else ""
        return (
            f'<svg{attrs}{cap} role="img" aria-label="{label}" preserveAspectRatio="xMinYMin meet">'
        )

    svg = _SVG_OPEN.sub(responsive, svg, count=1)
    caption = f"<figcaption>{html.escape(description)}</figcaption>" if description else ""
    return Html(
        f'<figure class="chart" data-chart="{html.escape(name, quote=True)}">{svg}{caption}</figure>'
    )


def records(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Rows (dicts of plain values) as Altair inline data."""
    import altair as alt

    return alt.Data(values=[dict(r) for r in rows])
