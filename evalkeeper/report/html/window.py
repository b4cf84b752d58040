"""The report of one post-deploy monitoring window (`evalkeeper report --window WIN`).

What the on-call engineer asks of a window, from what its ticks stored
(`evalkeeper.monitor.timeline`): did the flag rate rise above the baseline's bound (per
tick, per evaluator, against the rate it is tested against), how close the sequential test
came to its threshold (the group-sequential Z against its boundary, or the mixture test's
log likelihood ratio against log(1/alpha)), when the decision came, and whether the
rollback reached the deploy system (where and when, or NOT DELIVERED with the cause)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from evalkeeper.monitor.timeline import Timeline, window_timeline
from evalkeeper.report.html import charts
from evalkeeper.report.html.page import Html, Page, Section, esc, table
from evalkeeper.traces.model import iso_utc

if TYPE_CHECKING:
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse

STAT_FLOOR = -14.0
"""Statistics below this (a log likelihood ratio under ln 1e-6, a Z under -14) are drawn at
it (said in the caption): a path far below the threshold says only "no rise"."""


def build_window_report(warehouse: Warehouse, window_id: str, *, settings: Settings) -> Page:
    """Flag rate per tick per evaluator against the rate tested, the statistic against its
    threshold, the decision."""
    tl = window_timeline(warehouse, window_id)
    w = tl.window
    page = Page(
        title=f"window {w.window_id}: {w.service} {w.version}",
        verdict=w.decision,
        summary=[delivery_line(tl), *w.reasons],
        facts=_facts(tl),
    )
    none = Html('<p class="empty">no tick yet: nothing to draw</p>')
    page.sections += [
        Section(
            "Flag rate",
            [flag_rate_chart(tl) if tl.ticks else none],
            name="flag-rate",
            note="The share of scored window traces each evaluator flagged, cumulative at each "
            "tick, against the rate the window is tested against: the baseline's upper bound U "
            f"(Clopper-Pearson) plus the tolerance ({w.config.tolerance:g}). Errors are not flags.",
        ),
        Section(
            "Test statistic",
            [statistic_chart(tl) if tl.ticks else none],
            name="statistic",
            note="Per evaluator, the sequential test's statistic at each tick against its "
            "threshold (dashed): rollback once it reaches it. The group-sequential test "
            "(`spending`) draws Z, the signed root of the likelihood ratio of window against "
            "baseline, against its boundary: each analysis spends a share of alpha by the "
            "window's elapsed time, so the boundary is lower where more alpha was spent; there "
            "is no boundary before the first analysis (15 expected flags). The mixture test "
            "(`mixture`, and evaluators whose baseline has too few flags) draws log LR = ln M "
            "against ln(1/alpha). No value before the window has "
            f"{w.config.min_window} scored traces.",
        ),
        Section("Decision and delivery", _delivery_body(tl), name="delivery"),
        Section("Ticks", [_ticks_table(tl)], name="ticks"),
    ]
    return page


def _hours(tl: Timeline, when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when - tl.window.deployed_at) / timedelta(hours=1)


def _x(tl: Timeline, alt: Any) -> Any:
    """Hours since the deploy, from the deploy to the latest tick (both charts alike)."""
    last = max((float(r["hours_since_deploy"]) for r in tl.ticks), default=0.0)
    return alt.X("hours:Q", title="hours since deploy", scale=alt.Scale(domain=[0, last or 1]))


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{x:.2%}"


def _num(x: float | None) -> str | None:
    return None if x is None else f"{x:.2f}"


def _null_rate(tl: Timeline, row: dict[str, Any]) -> float | None:
    """The rate the window is tested against: the mixture test's bound U + tolerance (a row
    with an upper bound), else the group-sequential test's baseline rate + tolerance."""
    rate = row["upper_bound"] if row["upper_bound"] is not None else row["baseline_rate"]
    return None if rate is None else min(rate + tl.window.config.tolerance, 1.0)


def delivery_line(tl: Timeline) -> str:
    """One line: when the decision came and where the rollback went (or why it did not)."""
    w, rb = tl.window, tl.rollback
    if rb is None:
        if tl.decided_at is not None:
            return f"{w.decision} at {iso_utc(tl.decided_at)}: no rollback"
        return f"{w.state}, no verdict yet ({w.decision}); no rollback decided"
    head = f"rollback decided at {iso_utc(rb.decided_at)} on {rb.evaluator}"
    if rb.complete:
        when = max(d["attempted_at"] for d in tl.deliveries if d["ok"])
        return f"{head}; delivered on {', '.join(rb.delivered)} at {iso_utc(when)}"
    cause = tl.last_error or "not attempted yet"
    return f"{head}; NOT DELIVERED: {cause}"


def _facts(tl: Timeline) -> list[tuple[str, Any]]:
    w = tl.window
    c = w.config
    return [
        ("window", w.window_id),
        ("service", w.service),
        ("version", w.version),
        ("previous version", w.previous_version or "(any other version)"),
        ("deploy id", w.deploy_id),
        ("environment", w.environment),
        ("state", w.state),
        ("decision", w.decision),
        ("decided at", None if tl.decided_at is None else iso_utc(tl.decided_at)),
        ("deployed at", iso_utc(w.deployed_at)),
        ("window ends", iso_utc(w.ends_at)),
        ("baseline", f"{iso_utc(w.baseline_start)} to {iso_utc(w.baseline_end)}"),
        ("last tick", None if w.last_tick_at is None else iso_utc(w.last_tick_at)),
        (
            "policy",
            f"alpha {c.alpha:g}, tolerance {c.tolerance:g}, sample rate {c.sample_rate:g}, "
            f"min baseline {c.min_baseline}, min window {c.min_window}",
        ),
        ("opened by", w.source),
    ]


def _decision_layer(tl: Timeline, alt: Any) -> Any | None:
    hours = _hours(tl, tl.decided_at)
    if hours is None:
        return None
    data = charts.records([{"hours": hours, "label": f"{tl.window.decision} ({hours:.2f} h)"}])
    rule = alt.Chart(data).mark_rule(color="#cf222e", strokeWidth=2).encode(x="hours:Q")
    label = (
        alt.Chart(data)
        .mark_text(align="left", dx=4, dy=-4, baseline="top", color="#cf222e")
        .encode(x="hours:Q", y=alt.value(0), text="label:N")
    )
    return rule + label


def flag_rate_chart(tl: Timeline) -> Html:
    """Per evaluator: the window's flag rate per tick (a point each), the rate tested
    against (U + tolerance) as a rule over each tick's span, the decision's moment."""
    import altair as alt

    panels = []
    for name in tl.evaluators:
        rows = [r for r in tl.ticks if r["evaluator"] == name]
        points, bounds = [], []
        previous = 0.0
        for r in rows:
            hours = float(r["hours_since_deploy"])
            if r["window_rate"] is not None:
                points.append(
                    {
                        "hours": hours,
                        "rate": r["window_rate"],
                        "flags": f"{r['window_flags']}/{r['window_n']}",
                    }
                )
            bound = _null_rate(tl, r)
            if bound is not None:
                bounds.append({"from": previous, "hours": hours, "bound": bound})
            previous = hours
        x = _x(tl, alt)
        y = alt.Y("rate:Q", title="flag rate", axis=alt.Axis(format="%"))
        bound = (
            alt.Chart(charts.records(bounds))
            .mark_rule(color="#9a6700", strokeDash=[5, 3], strokeWidth=2)
            .encode(x="from:Q", x2="hours:Q", y=alt.Y("bound:Q", axis=alt.Axis(format="%")))
        )
        layers = _series_layers(tl, alt, bound, points, x, y)
        panels.append(
            alt.layer(*layers).properties(
                width=620, height=160, title=f"{name}: flag rate vs the rate tested (dashed)"
            )
        )
    chart = alt.vconcat(*panels) if panels else alt.Chart(charts.records([])).mark_point()
    return charts.to_svg(
        chart,
        name="flag-rate",
        description="Flag rate per tick (points) against the rate it is tested against, the "
        "baseline's rate (or its upper bound U) plus the tolerance (dashed); the red rule is "
        "the decision.",
    )


def statistic_chart(tl: Timeline) -> Html:
    """Per evaluator: the test's statistic per tick (points on a line), its threshold per
    tick (a dashed step line: the group-sequential boundary moves, ln(1/alpha) does not),
    and the decision's moment."""
    import altair as alt

    panels, floored = [], 0
    for name in tl.evaluators:
        rows = [r for r in tl.ticks if r["evaluator"] == name]
        points, bounds = [], []
        for r in rows:
            hours = float(r["hours_since_deploy"])
            if r["statistic"] is not None:
                floored += r["statistic"] < STAT_FLOOR
                points.append({"hours": hours, "statistic": max(r["statistic"], STAT_FLOOR)})
            if r["threshold"] is not None:
                bounds.append({"hours": hours, "threshold": r["threshold"]})
        x = _x(tl, alt)
        y = alt.Y("statistic:Q", title="statistic")
        bound = (
            alt.Chart(charts.records(bounds))
            .mark_line(color="#9a6700", strokeDash=[5, 3], strokeWidth=2, interpolate="step-after")
            .encode(x=x, y=alt.Y("threshold:Q", title="statistic"))
        )
        layers = _series_layers(tl, alt, bound, points, x, y)
        mixture = [r["upper_bound"] is not None for r in rows if r["statistic"] is not None]
        if mixture and all(mixture):
            kind = "log LR vs ln(1/alpha)"
        elif any(mixture):
            kind = "Z vs its boundary; the fast path's log LR where it decided"
        else:
            kind = "Z vs its boundary"
        panels.append(
            alt.layer(*layers).properties(width=620, height=160, title=f"{name}: {kind} (dashed)")
        )
    chart = alt.vconcat(*panels) if panels else alt.Chart(charts.records([])).mark_point()
    note = f"; {floored} value(s) below {STAT_FLOOR:g} drawn at it" if floored else ""
    return charts.to_svg(
        chart,
        name="statistic",
        description="The test statistic per tick (points) against its threshold (dashed); "
        f"the red rule is the decision{note}.",
    )


def _series_layers(
    tl: Timeline, alt: Any, bound: Any, points: list[dict[str, Any]], x: Any, y: Any
) -> list[Any]:
    """One evaluator's panel: its bound (dashed), the per-tick values as a line with a point
    each, and the decision's rule when the window decided."""
    layers = [
        bound,
        alt.Chart(charts.records(points)).mark_line(color="#1f6feb").encode(x=x, y=y),
        alt.Chart(charts.records(points))
        .mark_point(filled=True, size=45, color="#1f6feb")
        .encode(x=x, y=y),
    ]
    decision = _decision_layer(tl, alt)
    if decision is not None:
        layers.append(decision)
    return layers


def _delivery_body(tl: Timeline) -> list[Html]:
    rb = tl.rollback
    state = "none" if rb is None else "delivered" if rb.complete else "not-delivered"
    body = [Html(f'<p data-delivery="{state}">{esc(delivery_line(tl))}</p>')]
    if rb is not None:
        body.append(
            table(
                ["channel", "attempt", "attempted at", "ok", "status", "error"],
                [
                    [
                        d["channel"],
                        d["attempt"],
                        iso_utc(d["attempted_at"]),
                        "yes" if d["ok"] else "NO",
                        d["status_code"],
                        d["error"],
                    ]
                    for d in tl.deliveries
                ],
                name="deliveries",
                numeric=[1, 4],
                empty="no delivery attempted yet",
            )
        )
    return body


def _ticks_table(tl: Timeline) -> Html:
    return table(
        [
            "tick",
            "hours",
            "evaluator",
            "window flags",
            "window scored",
            "errors",
            "window rate",
            "baseline flags",
            "baseline scored",
            "bound U",
            "rate tested",
            "statistic",
            "threshold",
            "decision",
        ],
        [
            [
                iso_utc(r["tick_at"]),
                f"{float(r['hours_since_deploy']):.2f}",
                r["evaluator"],
                r["window_flags"],
                r["window_n"],
                r["window_errors"],
                _pct(r["window_rate"]),
                r["baseline_flags"],
                r["baseline_n"],
                _pct(r["upper_bound"]),
                _pct(_null_rate(tl, r)),
                _num(r["statistic"]),
                _num(r["threshold"]),
                r["decision"],
            ]
            for r in tl.ticks
        ],
        name="ticks",
        numeric=[1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        empty="no tick yet: the first tick scores the baseline and the window",
    )
