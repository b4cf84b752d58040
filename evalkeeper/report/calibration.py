"""What a calibration report looks like: a terminal table, markdown (the Prefect artifact, a
PR comment), JSON (`{"judges": [...]}`), and the disagreements to revise a prompt from."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from evalkeeper.calibration.models import JudgeCalibration

STATUS_STYLE = {"healthy": "green", "at_risk": "yellow", "retired": "red", "uncalibrated": "dim"}


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "n/a" if not ci else f"{ci[0]:.2f}–{ci[1]:.2f}"


def summary_rows(cals: list[JudgeCalibration]) -> list[dict[str, str]]:
    """One row of text per judge version: what the table and the markdown show."""
    return [
        {
            "judge": c.judge,
            "version": f"{c.version} @ {c.model}",
            "quarter": c.quarter,
            "n": f"{c.n_items}" + (f" (+{c.n_ties} ties)" if c.n_ties else ""),
            "agreement": f"{_f(c.agreement)} [{_ci(c.agreement_ci)}]",
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
        }
        for c in cals
    ]


def calibration_table(cals: list[JudgeCalibration]) -> Table:
    t = Table(title="Judge calibration: agreement with the majority human label (95% CIs)")
    rows = summary_rows(cals)
    for col in rows[0] if rows else ("judge", "status"):
        t.add_column(col, no_wrap=col in ("agreement", "kappa", "status"))
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "")
        t.add_row(*[f"[{style}]{v}[/]" if k == "status" else v for k, v in r.items()])
    return t


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
