"""The judge calibration report (`evalkeeper report --calibration [--quarter Q]`).

The numbers are `evalkeeper.calibration.measure`'s (what `calibrate report` prints and the
calibration flow records), laid out for a reviewer: per judge version the agreement with
the majority human label and its Wilson interval against the bar, the human ceiling and the
constant-answer baseline (flagged when the agreement does not beat it), the retire rule
that decided (statistic, interval, bar, ceiling),
kappa (BCa interval) and AC1 (± 1.96 SE), the confusion matrix, and the items where the
judge and the humans differ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from evalkeeper.errors import InputError
from evalkeeper.report.calibration import summary_rows
from evalkeeper.report.html import charts
from evalkeeper.report.html.page import Html, Page, Section, bullets, table

if TYPE_CHECKING:
    from evalkeeper.calibration.models import JudgeCalibration
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse

DISAGREEMENTS_SHOWN = 25
"""Disagreements shown per judge version; the rest are counted ("N more")."""

STATUS_ORDER = ("retired", "at_risk", "uncalibrated", "healthy")


class BadQuarter(InputError, ValueError):
    """`--quarter` is not a quarter such as 2026Q4."""


def normal_quarter(quarter: str | None) -> str | None:
    """`2026q4` / `2026-Q4` as `2026Q4`; `BadQuarter` naming the fix otherwise."""
    if quarter is None:
        return None
    from evalkeeper.calibration import quarter_bounds

    try:
        quarter_bounds(quarter)
    except ValueError as exc:
        raise BadQuarter(f"--quarter: {exc}") from None
    return quarter.strip().upper().replace("-", "")


def build_calibration_report(
    warehouse: Warehouse,
    *,
    settings: Settings,
    quarter: str | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    calibrations: list[JudgeCalibration] | None = None,
) -> Page:
    """Per judge: agreement with its interval against the bar and the human ceiling, kappa
    and AC1, the confusion matrix, the disagreements.

    `calibrations` when the caller has just measured (the calibration flow); else
    `measure(warehouse, settings, quarter=quarter, choices=choices)`, as `calibrate report`."""
    quarter = normal_quarter(quarter)
    if calibrations is None:
        from evalkeeper.calibration import measure

        calibrations = measure(warehouse, settings, quarter=quarter, choices=choices)
    cals = calibrations
    quarters = sorted({c.quarter for c in cals})
    statuses = {c.status for c in cals}
    verdict = next((s for s in STATUS_ORDER if s in statuses), None)
    page = Page(
        title="judge calibration" + (f" {quarter}" if quarter else ""),
        verdict=verdict,
        summary=[f"{c.judge} ({_key(c)}): {c.status}: {c.reason}" for c in cals]
        or [
            "No labelled items"
            + (f" in {quarter}" if quarter else "")
            + ": draw some with `evalkeeper calibrate sample --judge NAME` and import the "
            "labels with `evalkeeper calibrate import FILE`."
        ],
        facts=[
            ("quarter", quarter or ("each version's latest: " + ", ".join(quarters) or "—")),
            ("judge versions", len(cals)),
            ("labelled items", sum(c.n_items for c in cals)),
            ("bar", ", ".join(sorted({f"{c.bar:.2f}" for c in cals})) or None),
            ("retire rule", ", ".join(sorted({_rule_name(c) for c in cals})) or None),
        ],
    )
    if not cals:
        return page
    page.sections += [
        Section(
            "Agreement",
            [agreement_chart(cals), _judges_table(cals), _not_beaten(cals)],
            name="agreement",
            note="Agreement of the judge's verdict with the majority human label (ties left "
            "out), with its 95% Wilson interval, against the bar the judge is held to and the "
            "human ceiling (how often two annotators agree on the doubly labelled items), "
            "and the constant-answer baseline: the agreement of a judge that always gives the "
            "commonest human label (one always saying pass on a set that is 90% passes agrees "
            "90%). A judge not above it is flagged 'not beaten'. The rule column says which "
            "statistic, interval and bar decided the status.",
        ),
        Section(
            "Kappa and AC1",
            [coefficients_chart(cals)],
            name="kappa-ac1",
            note="Cohen's kappa with its 95% paired BCa bootstrap interval, and Gwet's AC1 "
            "± 1.96 SE (steadier than kappa when one label dominates); the ceiling's kappa "
            "between the first two annotators for comparison.",
        ),
        Section(
            "Confusion matrix",
            [confusion_chart(cals), _confusion_table(cals)],
            name="confusion",
            note="Items by the judge's label (rows) and the majority human label (columns).",
        ),
        Section(
            "Disagreements",
            _disagreements(cals),
            name="disagreements",
            note="Items where the judge's answer and the majority human label differ: "
            + "; ".join(f"{c.judge} {c.version[:8]}: {len(c.disagreements)}" for c in cals)
            + f" (the first {DISAGREEMENTS_SHOWN} of each shown).",
        ),
    ]
    return page


def _rule_name(c: JudgeCalibration) -> str:
    """`kappa, relative to the human ceiling` / `agreement, absolute`."""
    return f"{c.rule}, " + (
        "relative to the human ceiling" if c.rule_share is not None else "absolute"
    )


def _not_beaten(cals: list[JudgeCalibration]) -> Html:
    return bullets(
        [
            f"{_label(c)}: agreement {c.agreement:.2f} does not beat the constant-answer "
            f"baseline {c.baseline:.2f} (always {c.baseline_label})"
            for c in cals
            if c.beats_baseline is False and c.agreement is not None and c.baseline is not None
        ],
        name="baseline-not-beaten",
    )


def _key(c: JudgeCalibration) -> str:
    return f"{c.version[:12]} @ {c.model}, {c.quarter}"


def _label(c: JudgeCalibration) -> str:
    return f"{c.judge} {c.version[:8]}"


def agreement_chart(cals: list[JudgeCalibration]) -> Html:
    """Per judge version: the agreement (point) and its interval (rule), the bar (tick)
    and the human ceiling (diamond)."""
    import altair as alt

    rows: list[dict[str, Any]] = []
    for c in cals:
        lo, hi = c.agreement_ci or (None, None)
        rows.append(
            {
                "judge": _label(c),
                "agreement": c.agreement,
                "lo": lo,
                "hi": hi,
                "bar": c.bar if c.rule == "agreement" else None,
                "ceiling": c.ceiling.agreement,
                "baseline": c.baseline,
                "status": c.status,
            }
        )
    y = alt.Y("judge:N", title=None, sort=None)
    x_scale = alt.Scale(domain=[0, 1])
    measured = [r for r in rows if r["agreement"] is not None]
    ceilings = [r for r in rows if r["ceiling"] is not None]
    bars = [r for r in rows if r["bar"] is not None]
    baselines = [r for r in rows if r["baseline"] is not None]
    chart = alt.layer(
        alt.Chart(charts.records(bars))
        .mark_tick(color="#cf222e", thickness=3, size=22)
        .encode(x=alt.X("bar:Q", scale=x_scale), y=y),
        alt.Chart(charts.records(baselines))
        .mark_point(shape="square", size=90, color="#6e7781", filled=True)
        .encode(x=alt.X("baseline:Q", scale=x_scale), y=y),
        alt.Chart(charts.records(ceilings))
        .mark_point(shape="diamond", size=110, color="#8250df", filled=True)
        .encode(x=alt.X("ceiling:Q", scale=x_scale), y=y),
        alt.Chart(charts.records(measured))
        .mark_rule(strokeWidth=2, color="#1f6feb")
        .encode(x=alt.X("lo:Q", scale=x_scale, title="agreement"), x2="hi:Q", y=y),
        alt.Chart(charts.records(measured))
        .mark_point(filled=True, size=70, color="#1f6feb")
        .encode(x=alt.X("agreement:Q", scale=x_scale, title="agreement"), y=y),
    ).properties(width=560, height=max(60, 34 * len(rows)))
    return charts.to_svg(
        chart,
        name="agreement",
        description="Agreement with the majority human label (blue, with its 95% interval) "
        "against the bar (red tick, when the agreement rule decides), the human ceiling "
        "(purple diamond) and the constant-answer baseline (grey square).",
    )


def coefficients_chart(cals: list[JudgeCalibration]) -> Html:
    """Kappa (BCa interval) and AC1 (± 1.96 SE) per judge version, the ceiling's kappa."""
    import altair as alt

    rows: list[dict[str, Any]] = []
    for c in cals:
        if c.kappa is not None:
            lo, hi = c.kappa_ci or (c.kappa, c.kappa)
            rows.append(
                {"judge": _label(c), "coefficient": "kappa", "value": c.kappa, "lo": lo, "hi": hi}
            )
        if c.ac1 is not None:
            half = 1.96 * (c.ac1_se or 0.0)
            rows.append(
                {
                    "judge": _label(c),
                    "coefficient": "AC1",
                    "value": c.ac1,
                    "lo": max(-1.0, c.ac1 - half),
                    "hi": min(1.0, c.ac1 + half),
                }
            )
        if c.ceiling.kappa is not None:
            rows.append(
                {
                    "judge": _label(c),
                    "coefficient": "ceiling kappa",
                    "value": c.ceiling.kappa,
                    "lo": c.ceiling.kappa,
                    "hi": c.ceiling.kappa,
                }
            )
    bars = [
        {"judge": _label(c), "coefficient": "kappa" if c.rule == "kappa" else "AC1", "bar": c.bar}
        for c in cals
        if c.rule in ("kappa", "ac1")
    ]
    y = alt.Y("judge:N", title=None, sort=None)
    offset = alt.YOffset("coefficient:N", sort=["kappa", "AC1", "ceiling kappa"])
    color = alt.Color("coefficient:N", title=None, sort=["kappa", "AC1", "ceiling kappa"])
    x_scale = alt.Scale(domain=[-1, 1])
    chart = alt.layer(
        alt.Chart(charts.records(bars))
        .mark_tick(color="#cf222e", thickness=3, size=14)
        .encode(x=alt.X("bar:Q", scale=x_scale), y=y, yOffset=offset),
        alt.Chart(charts.records(rows))
        .mark_rule(strokeWidth=2)
        .encode(
            x=alt.X("lo:Q", scale=x_scale, title="coefficient"),
            x2="hi:Q",
            y=y,
            yOffset=offset,
            color=color,
        ),
        alt.Chart(charts.records(rows))
        .mark_point(filled=True, size=60)
        .encode(x=alt.X("value:Q", scale=x_scale), y=y, yOffset=offset, color=color),
    ).properties(width=560, height=max(80, 48 * len(cals)))
    return charts.to_svg(
        chart,
        name="kappa-ac1",
        description="Cohen's kappa (95% BCa interval), Gwet's AC1 (± 1.96 SE) and the human "
        "ceiling's kappa per judge version; the bar (red tick) when the kappa or AC1 rule "
        "decides.",
    )


def confusion_chart(cals: list[JudgeCalibration]) -> Html:
    """One heatmap per judge version: items per (judge label, human label), counts printed."""
    import altair as alt

    panels = []
    for c in cals:
        cells = [
            {"judge says": j, "humans say": h, "items": c.confusion[a][b]}
            for a, j in enumerate(c.labels)
            for b, h in enumerate(c.labels)
        ]
        base = alt.Chart(charts.records(cells)).encode(
            x=alt.X("humans say:N", sort=list(c.labels)),
            y=alt.Y("judge says:N", sort=list(c.labels)),
        )
        panels.append(
            alt.layer(
                base.mark_rect().encode(
                    color=alt.Color("items:Q", scale=alt.Scale(scheme="blues"), legend=None)
                ),
                base.mark_text(fontSize=13).encode(text="items:Q"),
            ).properties(width=44 * len(c.labels), height=40 * len(c.labels), title=_label(c))
        )
    return charts.to_svg(
        alt.hconcat(*panels),
        name="confusion",
        description="Items by the judge's label (rows) and the majority human label (columns).",
    )


def _judges_table(cals: list[JudgeCalibration]) -> Html:
    rows = summary_rows(cals)
    cols = list(rows[0])
    return table(cols, [[r[k] for k in cols] for r in rows], name="judges")


def _confusion_table(cals: list[JudgeCalibration]) -> Html:
    return table(
        ["judge", "version", "judge says", "humans say", "items"],
        [
            [c.judge, c.version[:12], j, h, c.confusion[a][b]]
            for c in cals
            for a, j in enumerate(c.labels)
            for b, h in enumerate(c.labels)
        ],
        name="confusion",
        numeric=[4],
    )


def _disagreements(cals: list[JudgeCalibration]) -> list[Html]:
    out: list[Html] = []
    shown = [(c, d) for c in cals for d in c.disagreements[:DISAGREEMENTS_SHOWN]]
    out.append(
        table(
            [
                "judge",
                "item",
                "example",
                "category",
                "judge answer",
                "humans (majority)",
                "human labels",
                "judge's reasoning",
            ],
            [
                [
                    c.judge,
                    d.item_id,
                    d.example_id,
                    d.category,
                    d.judge_verdict,
                    d.human_label,
                    ", ".join(f"{a}: {lab}" for a, lab in d.human_labels.items()),
                    d.reasoning,
                ]
                for c, d in shown
            ],
            name="disagreements",
            empty="none: every judge agrees with the majority human label on every item",
        )
    )
    more = [
        f"{c.judge} ({c.version[:12]}): {len(c.disagreements) - DISAGREEMENTS_SHOWN} more "
        f"(`evalkeeper calibrate report --judge {c.judge} --format json` lists them all)"
        for c in cals
        if len(c.disagreements) > DISAGREEMENTS_SHOWN
    ]
    out.append(bullets(more, name="more-disagreements"))
    return out
