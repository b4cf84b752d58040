"""The PR-comment-ready markdown summary of a comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkeeper.analysis.models import Comparison
from evalkeeper.analysis.reasons import fmt_diff, fmt_p, fmt_s, fmt_value, guard_text
from evalkeeper.models import ErrorGroup
from evalkeeper.report.corrected import corrected_markdown

if TYPE_CHECKING:
    from evalkeeper.analysis.gate import GateOutcome

_ICON = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}


def render_markdown(c: Comparison, *, max_cells: int = 25) -> str:
    """A PR-comment-ready summary: verdict, reasons, changed cells, regressed critical rows
    (with incident ids), latency, errors, power and warnings."""
    lines = [
        f"## {_ICON[c.verdict]} evalkeeper verdict: **{c.verdict.upper()}**",
        "",
        f"Candidate `{c.experiment_id}` vs baseline `{c.baseline_id}`"
        f" ({f'auto: latest completed run on `{c.baseline_branch}`' if c.baseline_mode == 'auto' else 'named'})"
        f" · suite `{c.suite}` · dataset `{c.dataset}` · {c.n_shared_examples} shared examples"
        f" · alpha {c.alpha:g} after Benjamini-Hochberg · tolerance {c.tolerance:g}",
        "",
    ]
    lines += [f"- {r}" for r in c.reasons]
    changed = [x for x in c.cells if x.regressed or x.status == "improved" or x.diff]
    changed.sort(key=lambda x: (not x.regressed, x.p_adjusted if x.p_adjusted is not None else 2))
    lines += ["", "### Cells that changed", ""]
    if changed:
        lines += [
            "| | evaluator | category | n | baseline | candidate | Δ (95% CI) | p (BH) | MDE |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for x in changed[:max_cells]:
            icon = {"regression": "❌", "improved": "⬆️", "underpowered": "⚠️"}.get(x.status, "")
            ci = (
                f" ({fmt_diff(x.diff_ci_low, x.metric)}, {fmt_diff(x.diff_ci_high, x.metric)})"
                if x.diff_ci_low is not None
                else ""
            )
            lines.append(
                f"| {icon} | `{x.evaluator}` | {x.category} | {x.n_examples} | "
                f"{fmt_value(x.baseline.mean, x.metric)} | {fmt_value(x.candidate.mean, x.metric)} | "
                f"{fmt_diff(x.diff, x.metric)}{ci} | {fmt_p(x.p_adjusted)} | "
                f"{fmt_diff(x.mde, x.metric)[1:] if x.mde is not None else '–'} |"
            )
        if len(changed) > max_cells:
            lines.append(f"\n…and {len(changed) - max_cells} more changed cells (see the JSON).")
    else:
        lines.append("No cell changed.")
    lines += corrected_markdown(c)
    if c.row_regressions:
        lines += [
            "",
            "### Critical rows that passed before and fail now",
            "",
            "| example | incident | evaluator | baseline output | candidate output | why | guard |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in c.row_regressions:
            lines.append(
                f"| `{r.example_id}` | {r.incident_id or '–'} | `{r.evaluator}` | "
                f"{_md_cell(r.baseline_output)} | {_md_cell(r.candidate_output)} | "
                f"{_md_cell(r.candidate_comment)} | {guard_text(r)} |"
            )
    lat = c.latency
    mark = " ❌ above threshold" if lat.crossed else ""
    lines += [
        "",
        "### Latency",
        "",
        f"p50 {fmt_s(lat.baseline.p50_s)} → {fmt_s(lat.candidate.p50_s)} · "
        f"p95 {fmt_s(lat.baseline.p95_s)} → {fmt_s(lat.candidate.p95_s)} "
        f"(threshold {lat.threshold_p95_s:g} s){mark}",
        "",
        "### Errors",
        "",
        f"score errors: baseline {c.errors_baseline}, candidate {c.errors_candidate} · "
        f"target errors: baseline {c.run_errors_baseline}, candidate {c.run_errors_candidate}"
        " (errored rows are left out of the tests)",
    ]
    lines += error_lines(c.error_groups)
    if c.underpowered:
        lines += [
            "",
            "> **Underpowered:** some cells cannot detect a drop of "
            f"{c.max_mde * 100:.0f} points at 80% power; a non-significant result there "
            "is not evidence of no change. Add examples or repetitions.",
        ]
    if c.warnings:
        lines += ["", "### Warnings", ""] + [f"- {w}" for w in c.warnings]
    return "\n".join(lines) + "\n"


def error_lines(groups: list[ErrorGroup], *, limit: int = 10) -> list[str]:
    """The candidate's errors grouped by cause, as a markdown table (nothing when none)."""
    if not groups:
        return []
    out = [
        "",
        "| where | error | rows | e.g. example |",
        "|---|---|---:|---|",
    ]
    for g in groups[:limit]:
        out.append(
            f"| `{g.where}` | {_md_cell(g.error, 200)} | {g.count} | "
            f"{f'`{g.example_id}`' if g.example_id else '–'} |"
        )
    if len(groups) > limit:
        out.append(f"\n…and {len(groups) - limit} more causes (`evalkeeper run --json`).")
    return out


def render_gate(outcome: GateOutcome) -> str:
    """The gate's summary: the comparison's, or why no comparison could be made."""
    c = outcome.comparison
    if c is not None and outcome.verdict == c.verdict:
        return render_markdown(c)
    if c is not None:  # the run's own failures overrode the comparison's pass
        c = c.model_copy(update={"verdict": outcome.verdict, "reasons": outcome.reasons})
        return render_markdown(c)
    lines = [
        f"## {_ICON[outcome.verdict]} evalkeeper verdict: **{outcome.verdict.upper()}**",
        "",
        f"Candidate `{outcome.experiment_id}`: no comparison could be made.",
        "",
    ]
    lines += [f"- {r}" for r in outcome.reasons]
    if outcome.error_groups:
        lines += ["", "### Errors", *error_lines(outcome.error_groups)]
    return "\n".join(lines) + "\n"


def _md_cell(text: str | None, limit: int = 120) -> str:
    if not text:
        return "–"
    text = text.replace("|", "\\|").replace("\n", " ")
    return "`" + (text if len(text) <= limit else text[: limit - 1] + "…") + "`"
