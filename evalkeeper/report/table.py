"""A comparison as a terminal table (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkeeper.analysis.models import Comparison
from evalkeeper.analysis.reasons import fmt_diff, fmt_p, fmt_s, fmt_value

if TYPE_CHECKING:
    from rich.table import Table


def render_table(c: Comparison) -> Table:
    """Every cell as a rich table; the verdict is the title and the reasons the caption."""
    from rich.table import Table

    colour = {"pass": "green", "regression": "red", "inconclusive": "yellow"}[c.verdict]
    table = Table(
        title=f"[bold {colour}]{c.verdict.upper()}[/]  {c.experiment_id} vs {c.baseline_id}",
        caption="\n".join(c.reasons + [f"warning: {w}" for w in c.warnings]),
        caption_justify="left",
    )
    for name, justify in [
        ("evaluator", "left"),
        ("category", "left"),
        ("n", "right"),
        ("baseline (95% CI)", "right"),
        ("candidate (95% CI)", "right"),
        ("Δ (95% CI)", "right"),
        ("test", "left"),
        ("p", "right"),
        ("p BH", "right"),
        ("MDE", "right"),
        ("errors b/c", "right"),
        ("status", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    style = {"regression": "red", "improved": "green", "underpowered": "yellow"}
    for x in c.cells:
        m = x.metric
        table.add_row(
            x.evaluator,
            x.category,
            str(x.n_examples),
            f"{fmt_value(x.baseline.mean, m)} ({fmt_value(x.baseline.ci_low, m)}, {fmt_value(x.baseline.ci_high, m)})",
            f"{fmt_value(x.candidate.mean, m)} ({fmt_value(x.candidate.ci_low, m)}, {fmt_value(x.candidate.ci_high, m)})",
            f"{fmt_diff(x.diff, m)} ({fmt_diff(x.diff_ci_low, m)}, {fmt_diff(x.diff_ci_high, m)})",
            x.test,
            fmt_p(x.p_value),
            fmt_p(x.p_adjusted),
            fmt_diff(x.mde, m)[1:] if x.mde is not None else "–",
            f"{x.errors_baseline}/{x.errors_candidate}",
            x.status,
            style=style.get(x.status),
        )
    lat = c.latency
    table.add_section()
    table.add_row(
        "latency",
        "p50 / p95",
        str(lat.candidate.n),
        f"{fmt_s(lat.baseline.p50_s)} / {fmt_s(lat.baseline.p95_s)}",
        f"{fmt_s(lat.candidate.p50_s)} / {fmt_s(lat.candidate.p95_s)}",
        "",
        f"p95 ≤ {lat.threshold_p95_s:g} s",
        "",
        "",
        "",
        f"{c.run_errors_baseline}/{c.run_errors_candidate}",
        "above threshold" if lat.crossed else "ok",
        style="red" if lat.crossed else None,
    )
    return table
