"""The report of one experiment against its baseline (`evalkeeper report EXP`).

It shows what `compare` decided and why: the verdict and its reasons (what made it
inconclusive, the retired judges, the skips allowed and not allowed, the baseline's
problems, the errors), the paired differences per evaluator and category as a forest plot
and a table, the incident rows that failed with both outputs, then the history and the
cost sections (`history`). The facts at the top name the experiment, its baseline, suite,
dataset, target pin, commit and branch, and the LangSmith experiment when it was uploaded.

An experiment that could not be compared (no baseline yet, nothing shared) still gets a
report: `inconclusive`, the cause and the fix, with its facts (`build_unjudged_report`).
Every number comes from the `Comparison` or the warehouse, formatted as the markdown and
terminal outputs format it (`evalkeeper.analysis.reasons`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalkeeper.analysis.models import ALL, CompareError
from evalkeeper.analysis.reasons import fmt_diff, fmt_p, fmt_value, guard_text
from evalkeeper.errors import InputError
from evalkeeper.report.html import charts
from evalkeeper.report.html.corrected import corrected_section
from evalkeeper.report.html.flaky import flaky_section
from evalkeeper.report.html.history import history_sections, usage_sections
from evalkeeper.report.html.page import Html, Page, Section, bullets, esc, link, table

if TYPE_CHECKING:
    import duckdb

    from evalkeeper.analysis.gate import GateOutcome
    from evalkeeper.analysis.models import Cell, Comparison, RowRegression
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse

HISTORY_RUNS = 20
"""Runs of the same suite and dataset the history section shows by default."""

MAX_FOREST_CELLS = 60
"""Cells the forest plot draws at most (the table lists them all): the overall cells first,
then the category cells by adjusted p-value."""

MAX_INCIDENT_ROWS = 100
"""Failed incident rows listed at most; the report says how many more there are."""

STATUS_COLOURS = {
    "regression": "#cf222e",
    "improved": "#1a7f37",
    "changed": "#9a6700",
    "unchanged": "#57606a",
    "underpowered": "#bf8700",
    "no_data": "#8c959f",
}


class UnknownExperiment(InputError, LookupError):
    """The experiment a report was asked for is not in the warehouse."""


def build_experiment_report(
    warehouse: Warehouse,
    experiment_id: str,
    *,
    settings: Settings,
    baseline: str = "auto",
    comparison: Comparison | None = None,
    history_runs: int = HISTORY_RUNS,
) -> Page:
    """The page for `experiment_id`: `comparison` when the caller has one (a flow that just
    compared), else `compare(warehouse, experiment_id, baseline)`. An experiment that
    cannot be compared with an `auto` baseline gets the `build_unjudged_report` page
    (inconclusive, the cause); one that is not in the warehouse raises
    `UnknownExperiment`, and a named baseline that cannot serve raises `CompareError`."""
    if comparison is None:
        from evalkeeper.analysis import compare

        try:
            comparison = compare(warehouse, experiment_id, baseline, settings)
        except CompareError as exc:
            if baseline != "auto":  # the baseline asked for cannot serve: the user's to fix
                raise
            return build_unjudged_report(
                warehouse, experiment_id, settings=settings, reasons=[str(exc)]
            )
    c = comparison
    with warehouse.reading() as con:
        row = _experiment(con, experiment_id)
        page = Page(
            title=f"experiment {experiment_id}",
            verdict=c.verdict,
            summary=c.reasons,
            facts=_facts(row, settings, c),
        )
        page.sections.append(_verdict_section(con, c, row))
        page.sections.append(_differences_section(c))
        if (judged := corrected_section(c)) is not None:
            page.sections.append(judged)
        page.sections.append(_incidents_section(c.row_regressions))
        page.sections += history_sections(con, c, settings, runs=history_runs)
        page.sections.append(flaky_section(con, c, settings))
        page.sections += usage_sections(con, c, settings)
    return page


def build_unjudged_report(
    warehouse: Warehouse,
    experiment_id: str,
    *,
    settings: Settings,
    reasons: Sequence[str],
    verdict: str | None = "inconclusive",
) -> Page:
    """The page of an experiment no comparison could be made for: `verdict` (inconclusive,
    or None for a first run that is not judged) with `reasons` (the cause and the fix), its
    facts and its errors."""
    from evalkeeper.warehouse.queries import error_groups

    with warehouse.reading() as con:
        row = _experiment(con, experiment_id)
        groups = error_groups(con, experiment_id)
    body = [
        Html(
            "<p>No paired comparison was made (the cause and its fix are above), so there "
            "are no differences to show. Once a baseline exists (by default the latest "
            "completed run of the same suite and dataset on "
            f"<code>{esc(settings.analysis.baseline_branch)}</code>), <code>evalkeeper report "
            f"{esc(experiment_id)}</code> compares with it; <code>--baseline EXP</code> names "
            "one.</p>"
        ),
        _errors_table(groups),
    ]
    return Page(
        title=f"experiment {experiment_id}",
        verdict=verdict,
        summary=list(reasons),
        facts=_facts(row, settings, None),
        sections=[Section("Verdict", body, name="verdict")],
    )


def build_gate_report(warehouse: Warehouse, outcome: GateOutcome, *, settings: Settings) -> Page:
    """The report of what the gate decided: its comparison, with the gate's verdict and
    reasons when the run's own problems overrode a pass; without a comparison, the
    unjudged page with the gate's reasons."""
    c = outcome.comparison
    if c is None:
        return build_unjudged_report(
            warehouse,
            outcome.experiment_id,
            settings=settings,
            reasons=outcome.reasons,
            verdict=outcome.verdict,
        )
    if outcome.verdict != c.verdict or outcome.reasons != c.reasons:
        c = c.model_copy(update={"verdict": outcome.verdict, "reasons": outcome.reasons})
    return build_experiment_report(
        warehouse, outcome.experiment_id, settings=settings, comparison=c
    )


# -- facts ----------------------------------------------------------------------------------

_EXPERIMENT_SQL = """
    SELECT experiment_id, suite, dataset, dataset_version, target_spec, agent_version, model,
           git_commit, git_branch, evaluators, repetitions, n_examples, status, started_at,
           finished_at
    FROM experiments WHERE experiment_id = ?
"""


def _experiment(con: duckdb.DuckDBPyConnection, experiment_id: str) -> dict[str, Any]:
    cur = con.execute(_EXPERIMENT_SQL, [experiment_id])
    rows = cur.fetchall()
    if not rows:
        raise UnknownExperiment(
            f"experiment {experiment_id!r}: not in the warehouse; `evalkeeper experiments` "
            "lists the recorded ones"
        )
    cols = [d[0] for d in cur.description or []]
    return dict(zip(cols, rows[0], strict=True))


def _facts(row: dict[str, Any], settings: Settings, c: Comparison | None) -> list[tuple[str, Any]]:
    from evalkeeper.integrations.langsmith.uploads import recorded_upload

    out: list[tuple[str, Any]] = [("experiment", row["experiment_id"])]
    if c is not None:
        how = (
            f"auto: latest completed run on {c.baseline_branch}"
            if c.baseline_mode == "auto"
            else "named"
        )
        out.append(("baseline", f"{c.baseline_id} ({how})"))
    else:
        out.append(("baseline", None))
    dataset = f"{row['dataset']} @ {row['dataset_version']}"
    if c is not None and c.baseline_dataset_version != row["dataset_version"]:
        dataset += f" (baseline @ {c.baseline_dataset_version})"
    out += [
        ("suite", row["suite"]),
        ("dataset", dataset),
        ("target", row["target_spec"]),
        ("agent version", row["agent_version"]),
        ("model", row["model"]),
        ("commit", row["git_commit"]),
        ("branch", row["git_branch"]),
        ("status", row["status"]),
        ("examples × repetitions", f"{row['n_examples']} × {row['repetitions']}"),
        ("started", f"{row['started_at']:%Y-%m-%d %H:%M:%S %Z}" if row["started_at"] else None),
    ]
    if c is not None:
        out.append(("shared examples", c.n_shared_examples))
    upload = recorded_upload(settings, row["experiment_id"])
    if upload is not None and upload.get("url"):
        out.append(("LangSmith", link(str(upload["url"]), str(upload.get("project") or "open"))))
    return out


# -- the verdict ----------------------------------------------------------------------------

_SKIPPED_SQL = """
    SELECT evaluator, count(*) AS n, any_value(comment) AS comment FROM scores
    WHERE experiment_id = ? AND skipped GROUP BY evaluator ORDER BY evaluator
"""


def _verdict_section(con: duckdb.DuckDBPyConnection, c: Comparison, row: dict[str, Any]) -> Section:
    from evalkeeper.warehouse.queries import retired_judges

    rule = (
        f"Benjamini-Hochberg over {len(c.cells)} cells at alpha {c.alpha:g}; a drop counts "
        f"beyond the tolerance {c.tolerance:g}; inconclusive above an error rate of "
        f"{c.max_error_rate:.0%} or a minimum detectable effect of {c.max_mde * 100:.0f} pt."
    )
    optional = {e["name"] for e in json.loads(row["evaluators"] or "[]") if e.get("optional")}
    retired = retired_judges(con, c.experiment_id)
    not_allowed = set(c.skipped_evaluators)
    skips = [
        (
            ev,
            n,
            comment,
            "retired judge"
            if ev in retired
            else "allowed (optional)"
            if ev in optional
            else "not allowed: vouches for nothing"
            if ev in not_allowed
            else "—",
        )
        for ev, n, comment in con.execute(_SKIPPED_SQL, [c.experiment_id]).fetchall()
    ]
    body: list[Html] = [
        Html(f"<p>{esc(rule)}</p>"),
    ]
    if retired:
        body += [
            Html("<h3>Retired judges</h3>"),
            table(["judge", "note"], sorted(retired.items()), name="retired-judges"),
        ]
    if skips:
        body += [
            Html("<h3>Skipped evaluators</h3>"),
            table(
                ["evaluator", "rows skipped", "why", "in the verdict"],
                skips,
                name="skipped",
                numeric=[1],
            ),
        ]
    if c.baseline_problems:
        body += [
            Html("<h3>Baseline problems</h3>"),
            bullets(c.baseline_problems, name="baseline-problems"),
        ]
    if c.warnings:
        body += [Html("<h3>Warnings</h3>"), bullets(c.warnings, name="warnings")]
    body += [
        Html("<h3>Errors</h3>"),
        Html(
            f"<p>score errors: baseline {c.errors_baseline}, candidate {c.errors_candidate} · "
            f"target errors: baseline {c.run_errors_baseline}, candidate "
            f"{c.run_errors_candidate} (errored rows are left out of the tests)</p>"
        ),
        _errors_table(c.error_groups),
    ]
    return Section("Verdict", body, name="verdict")


def _errors_table(groups: Sequence[Any], limit: int = 20) -> Html:
    rows = [(g.where, g.error, g.count, g.example_id or None) for g in groups[:limit]]
    more = (
        Html(f'<p class="note">…and {len(groups) - limit} more causes.</p>')
        if len(groups) > limit
        else Html("")
    )
    return Html(
        table(
            ["where", "error", "rows", "e.g. example"],
            rows,
            name="errors",
            numeric=[2],
            empty="no errors",
        )
        + more
    )


# -- the paired differences -----------------------------------------------------------------


CELL_HEADERS = (
    "evaluator", "category", "n", "baseline", "candidate", "diff", "95% CI", "p", "q (BH)",
    "MDE", "status",
)  # fmt: skip


def cell_row(x: Cell) -> list[Any]:
    """One row of the differences table, formatted as the markdown summary formats it."""
    ci = (
        f"{fmt_diff(x.diff_ci_low, x.metric)} to {fmt_diff(x.diff_ci_high, x.metric)}"
        if x.diff_ci_low is not None and x.diff_ci_high is not None
        else "–"
    )
    return [
        x.evaluator,
        "all" if x.category == ALL else x.category,
        x.n_examples,
        fmt_value(x.baseline.mean, x.metric),
        fmt_value(x.candidate.mean, x.metric),
        fmt_diff(x.diff, x.metric),
        ci,
        fmt_p(x.p_value),
        fmt_p(x.p_adjusted),
        fmt_diff(x.mde, x.metric)[1:] if x.mde is not None else "–",
        x.status,
    ]


def _label(x: Cell) -> str:
    return x.evaluator if x.category == ALL else f"{x.evaluator} / {x.category}"


def forest_cells(c: Comparison) -> list[Cell]:
    """The cells the forest plot draws: those with a difference, the overall cells first,
    then the rest by adjusted p-value, at most `MAX_FOREST_CELLS`."""
    drawn = [x for x in c.cells if x.diff is not None]
    drawn.sort(
        key=lambda x: (
            x.category != ALL,
            x.p_adjusted if x.p_adjusted is not None else 2.0,
            x.evaluator,
            x.category,
        )
    )
    return drawn[:MAX_FOREST_CELLS]


def forest_chart(cells: Sequence[Cell], metric: str) -> Any:
    """Difference (point) and 95% CI (rule) per cell, a zero line, coloured by status.
    Pass rates are drawn in percentage points, mean values as they are."""
    import altair as alt

    scale = 100.0 if metric == "pass_rate" else 1.0
    unit = "pt" if metric == "pass_rate" else ""
    rows: list[Mapping[str, Any]] = [
        {
            "cell": _label(x),
            "status": x.status,
            "diff": round((x.diff or 0.0) * scale, 4),
            "lo": None if x.diff_ci_low is None else round(x.diff_ci_low * scale, 4),
            "hi": None if x.diff_ci_high is None else round(x.diff_ci_high * scale, 4),
        }
        for x in cells
    ]
    order = [r["cell"] for r in rows]
    statuses = sorted({r["status"] for r in rows})
    colour = alt.Color(
        "status:N",
        scale=alt.Scale(domain=statuses, range=[STATUS_COLOURS[s] for s in statuses]),
        legend=alt.Legend(title="status", orient="bottom"),
    )
    y = alt.Y("cell:N", sort=order, title=None, axis=alt.Axis(labelLimit=220))
    base = alt.Chart(charts.records(rows)).encode(y=y)
    with_ci: list[Mapping[str, Any]] = [
        r for r in rows if r["lo"] is not None and r["hi"] is not None
    ]
    title = f"candidate − baseline{f' ({unit})' if unit else ''}, 95% CI"
    layers = []
    if with_ci:
        layers.append(
            alt.Chart(charts.records(with_ci))
            .mark_rule(strokeWidth=2)
            .encode(y=y, x=alt.X("lo:Q", title=title), x2="hi:Q", color=colour)
        )
    layers.append(
        base.mark_point(filled=True, size=50).encode(x=alt.X("diff:Q", title=title), color=colour)
    )
    zero = (
        alt.Chart(charts.records([{"zero": 0}]))
        .mark_rule(color="#1d2330", strokeDash=[4, 3])
        .encode(x="zero:Q")
    )
    return alt.layer(zero, *layers).properties(width=520, height=max(60, 18 * len(rows)))


def _differences_section(c: Comparison) -> Section:
    drawn = forest_cells(c)
    body: list[Html] = []
    for metric, name, what in (
        ("pass_rate", "forest", "pass rates"),
        ("mean_value", "forest-mean", "mean values"),
    ):
        cells = [x for x in drawn if x.metric == metric]
        if cells:
            body.append(
                Html(
                    charts.to_svg(
                        forest_chart(cells, metric),
                        name=name,
                        description=f"Paired difference of {what} per evaluator and category "
                        "with its 95% confidence interval; the dashed line is no change.",
                    )
                )
            )
    left = len([x for x in c.cells if x.diff is not None]) - len(drawn)
    no_data = len([x for x in c.cells if x.diff is None])
    notes = []
    if left > 0:
        notes.append(f"{left} more cells are in the table, not drawn.")
    if no_data:
        notes.append(f"{no_data} cells have no paired data (not drawn).")
    if notes:
        body.append(Html(f'<p class="note">{esc(" ".join(notes))}</p>'))
    body.append(
        table(
            CELL_HEADERS,
            [cell_row(x) for x in c.cells],
            name="cells",
            numeric=[2, 3, 4, 5, 6, 7, 8, 9],
            empty="no cell was compared",
        )
    )
    return Section(
        "Paired differences",
        body,
        name="differences",
        note="Candidate minus baseline on the examples both scored; q is the "
        "Benjamini-Hochberg adjusted p-value; MDE is the smallest drop detectable "
        "with 80% power.",
    )


# -- the incident rows ----------------------------------------------------------------------


def _pre(text: str | None) -> Html:
    return Html(f"<pre>{esc(text)}</pre>") if text else esc(None)


INCIDENT_HEADERS = (
    "example", "incident", "category", "evaluator", "passed", "baseline output",
    "candidate output", "baseline comment", "candidate comment", "guard",
)  # fmt: skip


def incident_row(r: RowRegression) -> list[Any]:
    return [
        r.example_id,
        r.incident_id,
        r.category,
        r.evaluator,
        f"{r.baseline_pass_rate:.0%} → {r.candidate_pass_rate:.0%}",
        _pre(r.baseline_output),
        _pre(r.candidate_output),
        _pre(r.baseline_comment),
        _pre(r.candidate_comment),
        guard_text(r),
    ]


def _incidents_section(rows: Sequence[RowRegression]) -> Section:
    shown = rows[:MAX_INCIDENT_ROWS]
    body = [
        table(
            INCIDENT_HEADERS,
            [incident_row(r) for r in shown],
            name="incidents",
            empty="no critical or incident row that passed in the baseline fails now",
        )
    ]
    if len(rows) > len(shown):
        body.append(
            Html(
                f'<p class="note" data-more="{len(rows) - len(shown)}">…and '
                f"{len(rows) - len(shown)} more failed rows (`evalkeeper compare "
                "--format json` lists them all).</p>"
            )
        )
    return Section(
        "Failed incident rows",
        body,
        name="incidents",
        note="Critical or incident examples that passed in the baseline and fail now; each "
        "is a regression by itself, unless its history shows it flaky (the guard column: a "
        "flaky row gates when k of every N repetitions fail). Outputs are cut to their first "
        "characters.",
    )
