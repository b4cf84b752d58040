"""The experiment report's section of judge-corrected pass rates.

Every pass rate an LLM judge produced (each cell's baseline and candidate side) beside the
rate corrected for that judge version's calibrated errors, with both intervals, the judge's
TPR, TNR and J, and the status (`corrected`, `uninformative`, `uncalibrated` with why). A
chart draws, per judge, the overall raw and corrected rates of both sides with their
intervals. The rows are `Comparison.corrected_rates` formatted as the markdown summary and
the terminal table format them (`evalkeeper.report.corrected`). The section says the
one-line note: a level is biased by a judge's errors, a paired difference of the same judge
is not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from evalkeeper.analysis.models import ALL
from evalkeeper.report.corrected import HEADERS, notes, raw_ci, row_cells
from evalkeeper.report.html import charts
from evalkeeper.report.html.page import Html, Section, esc, table

if TYPE_CHECKING:
    from evalkeeper.analysis.models import Comparison


def corrected_chart(c: Comparison) -> Any | None:
    """Raw and corrected overall rates (points) with their 95% intervals (rules), per judge
    and side, in percent; None when no overall rate was corrected."""
    import altair as alt

    rows: list[Mapping[str, Any]] = []
    for r in c.corrected_rates:
        if r.category != ALL or r.status != "corrected" or r.raw is None:
            continue
        lo, hi = raw_ci(c, r)
        label = f"{r.evaluator} · {r.side}"
        for kind, x, a, b in (
            ("raw", r.raw, lo, hi),
            ("corrected", r.corrected, r.ci_low, r.ci_high),
        ):
            rows.append(
                {
                    "rate": label,
                    "kind": kind,
                    "x": round((x or 0.0) * 100, 4),
                    "lo": None if a is None else round(a * 100, 4),
                    "hi": None if b is None else round(b * 100, 4),
                }
            )
    if not rows:
        return None
    order = list(dict.fromkeys(r["rate"] for r in rows))
    y = alt.Y("rate:N", sort=order, title=None, axis=alt.Axis(labelLimit=220))
    offset = alt.YOffset("kind:N", sort=["raw", "corrected"])
    colour = alt.Color(
        "kind:N",
        scale=alt.Scale(domain=["raw", "corrected"], range=["#8c959f", "#0969da"]),
        legend=alt.Legend(title=None, orient="bottom"),
    )
    x_title = "pass rate (%), 95% CI"
    data = charts.records(rows)
    with_ci = [r for r in rows if r["lo"] is not None and r["hi"] is not None]
    layers = [
        alt.Chart(charts.records(with_ci))
        .mark_rule(strokeWidth=2)
        .encode(
            y=y,
            yOffset=offset,
            x=alt.X("lo:Q", title=x_title, scale=alt.Scale(domain=[0, 100])),
            x2="hi:Q",
            color=colour,
        ),
        alt.Chart(data)
        .mark_point(filled=True, size=50)
        .encode(y=y, yOffset=offset, x=alt.X("x:Q", title=x_title), color=colour),
    ]
    return alt.layer(*layers).properties(width=520, height=max(60, 30 * len(order)))


def corrected_section(c: Comparison) -> Section | None:
    """The section, or None when no judge produced a pass rate in this comparison."""
    if not c.corrected_rates:
        return None
    body: list[Html] = [Html("".join(f'<p data-note="corrected">{esc(n)}</p>' for n in notes(c)))]
    chart = corrected_chart(c)
    if chart is not None:
        body.append(
            charts.to_svg(
                chart,
                name="corrected",
                description="Raw and judge-corrected overall pass rates with their 95% "
                "intervals, per judge and side.",
            )
        )
    body.append(
        table(
            HEADERS,
            [row_cells(c, r) for r in c.corrected_rates],
            name="corrected",
            numeric=[3, 4, 5, 6, 7, 8],
        )
    )
    return Section(
        "Judge-corrected pass rates",
        body,
        name="corrected",
        note="The corrected rate is (p + TNR - 1) / (TPR + TNR - 1) (Rogan-Gladen) with the "
        "judge version's latest calibration; its interval carries the run's sampling error "
        "and the calibration's. A judge whose J = TPR + TNR - 1 is near 0 is uninformative; "
        "one without a calibration is uncalibrated: neither gets a corrected number.",
    )
