"""The experiment report's section on flaky rows: the (example, evaluator) rows of this
run's dataset version that flip under a target pin, each with its pass rate and Wilson
interval over every repetition and run of that pin (`evalkeeper.analysis.stability`, counts
from the `row_stability` view), this run's pin first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkeeper.analysis.stability import classify_rows
from evalkeeper.report.html.history import pct
from evalkeeper.report.html.page import Html, Section, esc, table
from evalkeeper.warehouse.stability import pin_of, stability_rows

if TYPE_CHECKING:
    import duckdb

    from evalkeeper.analysis.models import Comparison
    from evalkeeper.settings import Settings

FLAKY_SHOWN = 50
"""The flaky rows listed; the others are counted."""

HEADERS = (
    "example", "evaluator", "incident", "pin", "runs", "observations", "passes", "fails",
    "pass rate", "interval",
)  # fmt: skip


def interval(r: dict[str, Any]) -> str:
    """`[30.1%, 66.9%]`: the Wilson interval as the section shows it."""
    return f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]"


def pin_label(r: dict[str, Any], this: tuple[str, str | None, str | None]) -> str:
    pin = (r["target_spec"], r["agent_version"], r["model"])
    extra = [x for x in (r["agent_version"], r["model"]) if x]
    text = str(r["target_spec"]) + (f" ({', '.join(extra)})" if extra else "")
    return f"{text} · this run" if pin == this else text


def flaky_rows(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings
) -> tuple[list[dict[str, Any]], tuple[str, str | None, str | None]]:
    """The flaky rows of the candidate's dataset version (every pin, the candidate's first,
    then by pass rate) with the settings' thresholds, and the candidate's pin."""
    this = pin_of(con, comparison.experiment_id)
    frame = stability_rows(
        con, dataset=comparison.dataset, dataset_version=comparison.dataset_version
    )
    rows = [
        r for r in classify_rows(frame.to_dicts(), settings.analysis) if r["stability"] == "flaky"
    ]
    rows.sort(
        key=lambda r: (
            (r["target_spec"], r["agent_version"], r["model"]) != this,
            r["pass_rate"],
            r["example_id"],
            r["evaluator"],
        )
    )
    return rows, this


def flaky_section(
    con: duckdb.DuckDBPyConnection, comparison: Comparison, settings: Settings
) -> Section:
    rows, this = flaky_rows(con, comparison, settings)
    shown = rows[:FLAKY_SHOWN]
    a = settings.analysis
    summary = (
        f"{len(rows)} (example, evaluator) rows of dataset {comparison.dataset} (version "
        f"{comparison.dataset_version[:12]}) both passed and failed under the same target pin"
        + (
            f"; {len(shown)} listed, {len(rows) - len(shown)} more not."
            if len(rows) > len(shown)
            else "."
        )
    )
    note = (
        f"A row is flaky when it was seen both passing and failing under one pin and is not "
        f"stable: its fail (or pass) rate's upper bound is above {a.flaky_tolerance:g}. The "
        f"interval is the {a.flaky_confidence:.0%} Wilson interval on the pass rate over every "
        "scored repetition of every run of that pin; errored rows are left out. A flaky "
        f"incident row gates only when {a.flaky_gate_fails} of every {a.flaky_gate_of} "
        "candidate repetitions fail (`evalkeeper flaky` lists them all)."
    )
    body = [
        Html(f'<p data-summary="flaky">{esc(summary)}</p>'),
        table(
            HEADERS,
            [
                [
                    r["example_id"],
                    r["evaluator"],
                    r["incident_id"] or ("critical" if r["critical"] else None),
                    pin_label(r, this),
                    r["runs"],
                    r["observations"],
                    r["passes"],
                    r["fails"],
                    pct(r["pass_rate"]),
                    interval(r),
                ]
                for r in shown
            ],
            name="flaky",
            numeric=[4, 5, 6, 7, 8],
            empty="no row of this dataset version flipped under one pin",
        ),
    ]
    return Section("Flaky rows", body, name="flaky", note=note)
