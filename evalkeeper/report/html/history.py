"""The experiment report's sections read from the warehouse beyond the comparison: the pass
rate per evaluator over the last runs of the same suite and dataset, the rows that flip
between runs, the latency distribution against the budget, judge calls, tokens and cost.

The numbers come aggregated from `evalkeeper.warehouse.history` (a row per run and
evaluator, per latency bin, per judge); this module only lays them out and draws them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkeeper.report.html import charts
from evalkeeper.report.html.page import Html, Section, esc, table
from evalkeeper.warehouse import history as wh_history

if TYPE_CHECKING:
    import duckdb

    from evalkeeper.analysis.models import Comparison
    from evalkeeper.settings import Settings

FLIPS_SHOWN = 50
"""The flipping rows listed; the others are counted."""
LATENCY_BINS = 40
ROLE_COLOURS = {"baseline": "#9a6700", "candidate": "#cf222e"}
SIDE_COLOURS = {"baseline": "#8c96a8", "candidate": "#2f6fdb"}


def pct(p: float | None) -> str:
    """A rate as a percentage with one decimal (`72.5%`); None is an em dash."""
    return "—" if p is None else f"{100 * p:.1f}%"


def seconds(s: float | None) -> str:
    return "—" if s is None else f"{s:.3f} s"


def usd(cost: float, fresh: int, unpriced: int) -> str:
    """A judge's spend: exact when every fresh call has a cost, `unknown` when none has,
    a lower bound naming the unpriced calls otherwise (an unknown price is never $0)."""
    if unpriced == 0:
        return f"${cost:.4f}"
    if unpriced >= fresh:
        return f"unknown ({unpriced} calls without a price)"
    return f"≥ ${cost:.4f} ({unpriced} calls without a price)"


def _run_label(i: int, started: datetime) -> str:
    return f"#{i} {started:%m-%d %H:%M}"


def _role(experiment_id: str, comparison: Comparison) -> str:
    if experiment_id == comparison.experiment_id:
        return "candidate"
    return "baseline" if experiment_id == comparison.baseline_id else ""


def history_sections(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings, *, runs: int
) -> list[Section]:
    """Pass rate per evaluator over the last `runs` runs (interval bands, the baseline
    marked), and the rows that flip between runs."""
    hist = wh_history.history_runs(
        con, comparison.experiment_id, comparison.baseline_id, limit=runs
    )
    ids = hist["experiment_id"].to_list()
    labels = {
        eid: _run_label(i, started)
        for i, (eid, started) in enumerate(
            zip(ids, hist["started_at"].to_list(), strict=True), start=1
        )
    }
    evaluators = list(comparison.evaluators)
    rates = wh_history.pass_rates(con, ids, evaluators)
    where = f"suite {comparison.suite} on dataset {comparison.dataset}"
    return [
        _pass_rate_section(hist, labels, rates, comparison, where, runs),
        _flips_section(con, ids, labels, evaluators, where),
    ]


def _pass_rate_section(
    hist: Any,
    labels: dict[str, str],
    rates: Any,
    comparison: Comparison,
    where: str,
    runs: int,
) -> Section:
    charted = sorted(
        {r["evaluator"] for r in rates.iter_rows(named=True) if r["pass_rate"] is not None}
    )
    by_key = {(r["experiment_id"], r["evaluator"]): r for r in rates.iter_rows(named=True)}
    points: list[Mapping[str, Any]] = [
        {
            "run": labels[r["experiment_id"]],
            "evaluator": r["evaluator"],
            "rate": r["pass_rate"],
            "lo": r["ci_low"],
            "hi": r["ci_high"],
            "role": _role(r["experiment_id"], comparison),
        }
        for r in rates.iter_rows(named=True)
        if r["pass_rate"] is not None
    ]
    extra = "" if len(hist) <= runs else " (and the baseline, older than those)"
    caption = (
        f"Pass rate per evaluator over the last {min(len(hist), runs)} completed runs of "
        f"{where}{extra}, oldest first; the band is the 95% Wilson score interval (rows "
        "taken as independent; errored and skipped rows left out, as in the pass_rate_trend "
        "view). Dashed rules: the baseline and this run. Each evaluator has its own "
        "vertical scale."
    )
    body: list[Html] = []
    if points:
        body.append(
            Html(
                charts.to_svg(
                    _pass_rate_chart(points, list(labels.values())),
                    name="pass-rate-history",
                    description=caption,
                )
            )
        )
    roles = {eid: _role(eid, comparison) for eid in labels}
    rows = []
    for r in hist.iter_rows(named=True):
        eid = r["experiment_id"]
        cells: list[Any] = [
            labels[eid].split(" ")[0],
            eid,
            f"{r['started_at']:%Y-%m-%d %H:%M}",
            r["git_branch"],
            (r["git_commit"] or "")[:12] or None,
            roles[eid],
        ]
        for ev in charted:
            x = by_key.get((eid, ev))
            cells.append(
                "—"
                if x is None or x["pass_rate"] is None
                else f"{pct(x['pass_rate'])} [{100 * x['ci_low']:.1f}, {100 * x['ci_high']:.1f}] "
                f"n={x['n']}" + _errors(x["n_errors"])
            )
        rows.append(cells)
    body.append(
        table(
            ["run", "experiment", "started (UTC)", "branch", "commit", "role", *charted],
            rows,
            name="history",
            empty="no earlier runs of this suite and dataset",
        )
    )
    unrated = sorted(set(comparison.evaluators) - set(charted))
    note = f"Runs of {where}: the latest completed ones started no later than this run." + (
        f" Without a pass/fail (not charted): {', '.join(unrated)}." if unrated else ""
    )
    return Section("History", body, name="history", note=note)


def _errors(n: int) -> str:
    return "" if not n else f", {n} error" + ("s" if n > 1 else "")


def _pass_rate_chart(points: list[Mapping[str, Any]], order: Sequence[str]) -> Any:
    import altair as alt

    x = alt.X("run:O", sort=list(order), title="run (oldest first)", axis=alt.Axis(labelAngle=-40))
    base = alt.Chart(charts.records(points))
    band = base.mark_area(opacity=0.22, color="#2f6fdb").encode(
        x=x,
        y=alt.Y("lo:Q", title="pass rate", scale=alt.Scale(zero=False, clamp=True)),
        y2="hi:Q",
    )
    line = base.mark_line(point=True, color="#2f6fdb").encode(x=x, y="rate:Q")
    marked = (
        base.transform_filter("datum.role != ''")
        .mark_rule(strokeDash=[4, 3], strokeWidth=1.5)
        .encode(
            x=x,
            color=alt.Color(
                "role:N",
                title="marked",
                scale=alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values())),
            ),
        )
    )
    return (
        alt.layer(band, line, marked)
        .properties(width=620, height=110)
        .facet(row=alt.Row("evaluator:N", title=None, header=alt.Header(labelOrient="top")))
        .resolve_scale(y="independent")  # each evaluator's own range: a 2-point drop shows
    )


def _flips_section(
    con: duckdb.DuckDBPyConnection,
    ids: list[str],
    labels: dict[str, str],
    evaluators: list[str],
    where: str,
) -> Section:
    found = wh_history.flips(con, ids, evaluators, limit=FLIPS_SHOWN)
    marks = {True: "✓", False: "✗"}
    rows = []
    for r in found.top.iter_rows(named=True):
        at = dict(zip(r["positions"], r["passes"], strict=True))
        pattern = "".join(marks[at[i]] if i in at else "·" for i in range(1, len(ids) + 1))
        rows.append(
            [
                r["example_id"],
                r["evaluator"],
                r["flips"],
                r["runs"],
                "pass" if r["last_passed"] else "fail",
                pattern,
            ]
        )
    more = found.total_rows - len(rows)
    summary = (
        f"{found.total_rows} (example, evaluator) rows changed between pass and fail across "
        f"these {len(ids)} runs ({found.total_flips} changes in all)"
        + (f"; the {len(rows)} that changed most are listed, {more} more are not." if more else ".")
    )
    note = (
        "A row passes in a run when every scored repetition passed; errored and skipped "
        "rows are not scored there (· in the pattern, oldest run first: ✓ pass, ✗ fail). "
        "A flip is a change between two consecutive runs that scored it."
    )
    body = [
        Html(f'<p data-summary="flips">{esc(summary)}</p>'),
        table(
            ["example", "evaluator", "flips", "runs scored", "last", "pattern (oldest first)"],
            rows,
            name="flips",
            numeric=[2, 3],
            empty=f"no row changed between pass and fail in these runs of {where}",
        ),
    ]
    return Section("Rows that flip", body, name="flips", note=note)


def usage_sections(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings
) -> list[Section]:
    """Latency distribution against the p95 budget; judge calls, tokens and cost."""
    return [_latency_section(con, comparison), _judge_section(con, comparison)]


def _latency_section(con: duckdb.DuckDBPyConnection, comparison: Comparison) -> Section:
    lat = comparison.latency
    budget = lat.threshold_p95_s
    found = wh_history.latency_bins(
        con,
        comparison.experiment_id,
        comparison.baseline_id,
        budget_s=budget,
        n_bins=LATENCY_BINS,
    )
    w = found.width_s
    bars: list[Mapping[str, Any]] = [
        {
            "side": "candidate" if r["cand"] else "baseline",
            "start": r["bin"] * w,
            "end": (r["bin"] + 1) * w,
            "n": r["n"],
        }
        for r in found.bins.iter_rows(named=True)
    ]
    p95s: list[Mapping[str, Any]] = [
        {"side": side, "p95": s.p95_s}
        for side, s in (("baseline", lat.baseline), ("candidate", lat.candidate))
        if s.p95_s is not None
    ]
    caption = (
        f"Target latency of the non-errored runs, {LATENCY_BINS} bins of {w:.3f} s (the last "
        f"also holds every slower run); solid red rule: the p95 budget ({budget:g} s); "
        "dashed rules: each side's p95."
    )
    body: list[Html] = []
    if bars:
        body.append(
            Html(
                charts.to_svg(
                    _latency_chart(bars, p95s, budget), name="latency", description=caption
                )
            )
        )
    rows = []
    for side, eid, s, counts in (
        ("candidate", comparison.experiment_id, lat.candidate, found.candidate),
        ("baseline", comparison.baseline_id, lat.baseline, found.baseline),
    ):
        within = None if s.p95_s is None else ("yes" if s.p95_s <= budget else "no: above")
        rows.append(
            [
                side,
                eid,
                counts.n,
                counts.errors,
                counts.unmeasured,
                seconds(s.p50_s),
                seconds(s.p95_s),
                seconds(budget),
                within,
            ]
        )
    body.append(
        table(
            ["side", "experiment", "runs", "errored (left out)", "no latency", "p50", "p95",
             "p95 budget", "within budget"],
            rows,
            name="latency",
            numeric=[2, 3, 4, 5, 6, 7],
        )
    )  # fmt: skip
    note = (
        "p50 and p95 as the comparison computed them (linear interpolation over the "
        "non-errored runs); the budget is EVALKEEPER_LATENCY_P95_S."
        + (" The candidate's p95 newly crossed the budget." if lat.newly_crossed else "")
    )
    return Section("Latency", body, name="latency", note=note)


def _latency_chart(
    bars: list[Mapping[str, Any]], p95s: list[Mapping[str, Any]], budget: float
) -> Any:
    import altair as alt

    colour = alt.Color(
        "side:N",
        title="side",
        scale=alt.Scale(domain=list(SIDE_COLOURS), range=list(SIDE_COLOURS.values())),
    )
    hist = (
        alt.Chart(charts.records(bars))
        .mark_bar(opacity=0.55)
        .encode(
            x=alt.X("start:Q", title="latency (s)"),
            x2="end:Q",
            y=alt.Y("n:Q", title="runs", stack=None),
            y2=alt.datum(0),
            color=colour,
        )
    )
    layers = [hist]
    if p95s:
        layers.append(
            alt.Chart(charts.records(p95s))
            .mark_rule(strokeDash=[5, 3], strokeWidth=2)
            .encode(x="p95:Q", color=colour)
        )
    limit = alt.Chart(charts.records([{"budget": budget, "label": f"p95 budget {budget:g} s"}]))
    layers.append(limit.mark_rule(color="#cf222e", strokeWidth=2).encode(x="budget:Q"))
    layers.append(
        limit.mark_text(align="right", dx=-4, dy=4, color="#cf222e", baseline="top").encode(
            x="budget:Q", y=alt.value(0), text="label:N"
        )
    )
    return alt.layer(*layers).properties(width=620, height=220)


def _judge_section(con: duckdb.DuckDBPyConnection, comparison: Comparison) -> Section:
    sides = (("candidate", comparison.experiment_id), ("baseline", comparison.baseline_id))
    usage = wh_history.judge_usage(con, [eid for _, eid in sides])
    rows = []
    for side, eid in sides:
        mine = [r for r in usage.iter_rows(named=True) if r["experiment_id"] == eid]
        for r in mine:
            rows.append(_usage_row(side, r["judge"], r["models"], r))
        if len(mine) > 1:
            total = {
                k: sum(r[k] for r in mine)
                for k in ("votes", "fresh", "cached", "errors", "prompt_tokens",
                          "completion_tokens", "cost_usd", "unpriced")
            }  # fmt: skip
            rows.append(_usage_row(side, "all judges", "", total))
    note = (
        "One row per judge vote: fresh votes made a request to the model, cached ones were "
        "answered from the judge cache (or an identical call in flight) and cost nothing "
        "now. Tokens and cost count the fresh votes; errored votes are counted, never "
        "dropped. A fresh vote without a known price makes the cost unknown, not $0."
    )
    body = [
        table(
            ["side", "judge", "model", "votes", "fresh calls", "cached", "errors",
             "prompt tokens", "completion tokens", "cost (USD)"],
            rows,
            name="judge-usage",
            numeric=[3, 4, 5, 6, 7, 8],
            empty="no LLM judge was called in this run or its baseline",
        )
    ]  # fmt: skip
    return Section("Judge calls, tokens and cost", body, name="judge-usage", note=note)


def _usage_row(side: str, judge: str, models: str, r: dict[str, Any]) -> list[Any]:
    return [
        side,
        judge,
        models,
        r["votes"],
        r["fresh"],
        r["cached"],
        r["errors"],
        f"{r['prompt_tokens']:,}",
        f"{r['completion_tokens']:,}",
        usd(float(r["cost_usd"]), int(r["fresh"]), int(r["unpriced"])),
    ]
