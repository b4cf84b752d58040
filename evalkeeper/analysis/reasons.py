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
        out.append(row_reason(d, settings))
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


def _history(h: dict[str, Any] | None) -> str:
    if not h or not h["observations"]:
        return "no earlier run of this pin scored it"
    return (
        f"passed {h['passes']} of {h['observations']} in {h['runs']} earlier run(s) of this "
        f"pin, {fmt_value(h['pass_rate'], 'pass_rate')} "
        f"[{fmt_value(h['ci_low'], 'pass_rate')}, {fmt_value(h['ci_high'], 'pass_rate')}]"
    )


def row_reason(d: dict[str, Any], settings: Settings) -> str:
    """One guarded row that flipped, in words: why it gates, or why a flaky one does not
    (`evalkeeper.analysis.stability`)."""
    inc = f" (incident {d['incident_id']})" if d["incident_id"] else ""
    guard = d.get("guard", "regression")
    where = f"on `{d['evaluator']}`"
    if guard == "regression":
        return (
            f"critical example {d['example_id']}{inc} passed in the baseline and fails now {where}"
        )
    k, n = settings.analysis.flaky_gate_fails, settings.analysis.flaky_gate_of
    fails = f"failed {d['candidate_fails']} of {d['candidate_repetitions']} repetition(s)"
    head = (
        f"flaky critical example {d['example_id']}{inc} passed in the baseline and {fails} "
        f"now {where} (history: {_history(d.get('history'))})"
    )
    if guard == "flaky_regression":
        return f"{head}: at least {k} of every {n} failed, so it gates"
    if guard == "flaky_tolerated":
        return (
            f"{head}: fewer than {k} of every {n} failed, within its history, so it does not "
            "gate (EVALKEEPER_FLAKY_GATE_FAILS / _OF)"
        )
    return (
        f"{head}: too few repetitions for the {k}-of-{n} rule, so it cannot be judged; run "
        f"with --repetitions {n} or more"
    )


GUARD_TEXT = {
    "regression": "gates",
    "flaky_regression": "flaky: gates",
    "flaky_tolerated": "flaky: does not gate",
    "flaky_undecided": "flaky: too few repetitions",
}


def guard_text(r: RowRegression) -> str:
    """What the guard made of a flipped row, short: `gates`, or `flaky: …` with the
    candidate's failures and the row's history interval."""
    text = GUARD_TEXT[r.guard]
    h = r.history
    if r.guard == "regression" or h is None:
        return text
    return (
        f"{text} ({r.candidate_fails}/{r.candidate_repetitions} failed; history "
        f"{fmt_value(h.pass_rate, 'pass_rate')} [{fmt_value(h.ci_low, 'pass_rate')}, "
        f"{fmt_value(h.ci_high, 'pass_rate')}] over {h.observations})"
    )
