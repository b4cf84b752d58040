"""What a calibration report looks like: a terminal table, markdown (the Prefect artifact, a
PR comment), JSON (`{"judges": [...]}`), and the disagreements to revise a prompt from.

Next to the agreement each shows the constant-answer baseline (what always giving the
commonest human label would agree; a judge not above it is flagged `not beaten`), and the
rule that decided the status (its statistic, 95% interval, bar and, for a bar relative to
the humans, their ceiling)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from evalkeeper.calibration.models import JudgeCalibration

STATUS_STYLE = {"healthy": "green", "at_risk": "yellow", "retired": "red", "uncalibrated": "dim"}


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{round(x, digits) + 0.0:.{digits}f}"  # never -0.00


def _ci(ci: list[float] | None) -> str:
    return "n/a" if not ci else f"{_f(ci[0])}–{_f(ci[1])}"


def summary_rows(cals: list[JudgeCalibration]) -> list[dict[str, str]]:
    """One row of text per judge version: what the table and the markdown show."""
    return [
        {
            "judge": c.judge,
            "version": f"{c.version} @ {c.model}",
            "quarter": c.quarter,
            "n": f"{c.n_items}" + (f" (+{c.n_ties} ties)" if c.n_ties else ""),
            "agreement": f"{_f(c.agreement)} [{_ci(c.agreement_ci)}]",
            "baseline": baseline_text(c),
            "kappa": f"{_f(c.kappa)} [{_ci(c.kappa_ci)}]",
            "AC1": f"{_f(c.ac1)} ± {_f(None if c.ac1_se is None else 1.96 * c.ac1_se)}",
            "TPR/TNR": f"{_f(c.true_pass_rate)}/{_f(c.true_fail_rate)}",
            "ceiling": (
                f"{_f(c.ceiling.agreement)} κ {_f(c.ceiling.kappa)} (n {c.ceiling.n_items})"
                if c.ceiling.n_items
                else "n/a"
            ),
            "bar": _f(c.bar),
            "status": c.status,
            "rule": rule_text(c),
        }
        for c in cals
    ]


NOT_BEATEN = "not beaten"
"""What the baseline cell says when the agreement does not beat the constant answer."""


def baseline_text(c: JudgeCalibration) -> str:
    """`0.90 [0.86–0.93] always pass`, `… not beaten` when the agreement is not above it."""
    if c.baseline is None:
        return "n/a"
    text = f"{_f(c.baseline)} [{_ci(c.baseline_ci)}] always {c.baseline_label}"
    return f"{text} {NOT_BEATEN}" if c.beats_baseline is False else text


def rule_text(c: JudgeCalibration) -> str:
    """The rule that decided: `kappa 0.00 [0.00–0.00] asymptotic, bar 0.60 = 0.75 × ceiling
    0.80` (the statistic, its 95% interval and its kind, the bar, the ceiling if relative)."""
    bar = f"bar {_f(c.bar)}"
    if c.rule_share is not None and c.rule_ceiling is not None:
        bar += f" = {c.rule_share:g} × ceiling {_f(c.rule_ceiling)}"
    return f"{c.rule} {_f(c.rule_value)} [{_ci(c.rule_ci)}] {c.rule_interval or 'no'}, {bar}"


def calibration_table(cals: list[JudgeCalibration]) -> Table:
    t = Table(title="Judge calibration: agreement with the majority human label (95% CIs)")
    rows = summary_rows(cals)
    for col in rows[0] if rows else ("judge", "status"):
        t.add_column(col, no_wrap=col in ("agreement", "kappa", "status"))
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "")
        t.add_row(*[_styled(k, v, style) for k, v in r.items()])
    return t


def _styled(key: str, value: str, status_style: str) -> str:
    if key == "status":
        return f"[{status_style}]{value}[/]"
    if key == "baseline" and value.endswith(NOT_BEATEN):
        return f"[bold red]{value}[/]"
    return value


def disagreements_table(c: JudgeCalibration, limit: int = 20) -> Table:
    t = Table(title=f"{c.judge}: {len(c.disagreements)} disagreements with the humans")
    for col in ("item", "example", "judge", "humans", "judge's reasoning"):
        t.add_column(col, no_wrap=col != "judge's reasoning")
    for d in c.disagreements[:limit]:
        humans = ", ".join(f"{a}: {lab}" for a, lab in d.human_labels.items())
        t.add_row(d.item_id, d.example_id, d.judge_verdict, humans, d.reasoning or "")
    return t


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def calibration_markdown(cals: list[JudgeCalibration], *, disagreements: int = 10) -> str:
    """One row per judge, then each judge's reasons and first disagreements."""
    rows = summary_rows(cals)
    if not rows:
        return "## Judge calibration\n\nNo labelled items yet: nothing measured.\n"
    cols = list(rows[0])
    lines = [
        "## Judge calibration",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in rows]
    lines.append("")
    for c in cals:
        lines.append(f"- **{c.judge}** `{c.status}`: {_cell(c.reason)}")
    for c in cals:
        if c.beats_baseline is False:
            lines.append(
                f"- **{c.judge}**: **does not beat the constant-answer baseline**: agreement "
                f"{_f(c.agreement)}, a judge always saying `{c.baseline_label}` agrees "
                f"{_f(c.baseline)}"
            )
    for c in cals:
        if not c.disagreements or not disagreements:
            continue
        lines += ["", f"### {c.judge}: disagreements ({len(c.disagreements)})", ""]
        lines += ["| item | example | judge | humans | reasoning |", "|---|---|---|---|---|"]
        for d in c.disagreements[:disagreements]:
            humans = ", ".join(f"{a}: {lab}" for a, lab in d.human_labels.items())
            lines.append(
                f"| {d.item_id} | {_cell(d.example_id)} | {d.judge_verdict} | {_cell(humans)} "
                f"| {_cell(d.reasoning or '')} |"
            )
    return "\n".join(lines) + "\n"


def calibration_json(cals: list[JudgeCalibration]) -> str:
    payload: dict[str, Any] = {"judges": [c.model_dump(mode="json") for c in cals]}
    return json.dumps(payload, indent=2)
