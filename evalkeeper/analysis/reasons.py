"""The verdict's reasons in words, and the number formats every report shares."""

from __future__ import annotations

from typing import Any

from evalkeeper.analysis.models import ALL, Cell, Metric, RowRegression
from evalkeeper.analysis.stats import Verdict
from evalkeeper.settings import Settings


def fmt_value(x: float | None, metric: Metric) -> str:
    if x is None:
        return "–"
    return f"{x:.1%}" if metric == "pass_rate" else f"{x:.3f}"


def fmt_diff(x: float | None, metric: Metric) -> str:
    if x is None:
        return "–"
    return f"{x * 100:+.1f} pt" if metric == "pass_rate" else f"{x:+.3f}"


def fmt_p(p: float | None) -> str:
    return "–" if p is None else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def fmt_s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f} s"


def where(c: Cell) -> str:
    return f"`{c.evaluator}`" + ("" if c.category == ALL else f" / {c.category}")


def verdict_reasons(
    cells: list[Cell],
    rows: list[RowRegression] | list[dict[str, Any]],
    verdict: Verdict,
    settings: Settings,
    max_mde: float,
) -> list[str]:
    out: list[str] = []
    for r in rows:
        d = r if isinstance(r, dict) else r.model_dump()
        inc = f" (incident {d['incident_id']})" if d["incident_id"] else ""
        out.append(
            f"critical example {d['example_id']}{inc} passed in the baseline and fails now "
            f"on `{d['evaluator']}`"
        )
    for c in cells:
        if c.regressed:
            out.append(
                f"{where(c)}: {fmt_value(c.baseline.mean, c.metric)} → "
                f"{fmt_value(c.candidate.mean, c.metric)} ({fmt_diff(c.diff, c.metric)}, "
                f"{c.n_worse} worse / {c.n_better} better, p_adj = {fmt_p(c.p_adjusted)} "
                f"< {settings.analysis.alpha:g})"
            )
    if verdict == "inconclusive":
        for c in cells:
            if c.category != ALL:
                continue
            for side, rate in (
                ("baseline", c.error_rate_baseline),
                ("candidate", c.error_rate_candidate),
            ):
                if rate > settings.analysis.max_error_rate:
                    out.append(
                        f"{where(c)}: error rate {rate:.0%} on the {side} is above "
                        f"{settings.analysis.max_error_rate:.0%}"
                    )
            if c.n_examples == 0:
                out.append(f"{where(c)}: no example scored on both sides")
            elif c.underpowered:
                out.append(
                    f"{where(c)}: underpowered — with {c.n_examples} paired examples the "
                    f"smallest drop detectable (80% power) is {fmt_diff(c.mde, c.metric)[1:]}"
                    f", above {max_mde * 100:.0f} pt; no significant change is not evidence "
                    "of no change"
                )
    if verdict == "pass":
        overall = [c for c in cells if c.category == ALL and c.mde is not None]
        worst = max((c.mde or 0.0) for c in overall) if overall else None
        out.append(
            f"no significant drop in any of {len(cells)} cells (BH, alpha {settings.analysis.alpha:g}, "
            f"tolerance {settings.analysis.tolerance:g}) and no critical row regressed"
            + (f"; detectable drop ≤ {worst * 100:.1f} pt" if worst is not None else "")
        )
    return out
