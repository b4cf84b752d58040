"""Judge-corrected pass rates as people read them: rows of text shared by the markdown
summary (PR comment, nightly artifact), the terminal table of `compare` and the HTML report.

Each judge pass-rate cell's side shows its raw rate and interval beside the corrected rate
and interval (`evalkeeper.analysis.judge_rates.CorrectedRate`); an uninformative or
uncalibrated judge shows its status and why, never a corrected number. The one-line note
(`evalkeeper.analysis.corrected.NOTE`) says that a level is biased by a judge's errors and
a paired difference of the same judge is not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkeeper.analysis.corrected import NOTE
from evalkeeper.analysis.judge_rates import CorrectedRate, same_judge_note
from evalkeeper.analysis.models import ALL

if TYPE_CHECKING:
    from rich.table import Table

    from evalkeeper.analysis.models import Comparison

HEADERS = (
    "judge", "category", "side", "n", "raw (95% CI)", "corrected (95% CI)", "TPR", "TNR",
    "J (95% low)", "status",
)  # fmt: skip


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def with_ci(x: float | None, lo: float | None, hi: float | None) -> str:
    if x is None:
        return "–"
    if lo is None or hi is None:
        return pct(x)
    return f"{pct(x)} ({pct(lo)}, {pct(hi)})"


def raw_ci(c: Comparison, r: CorrectedRate) -> tuple[float | None, float | None]:
    """The raw rate's interval as `compare` computed it (the cell's side estimate)."""
    cell = c.cell(r.evaluator, r.category)
    side = cell.candidate if r.side == "candidate" else cell.baseline
    return side.ci_low, side.ci_high


def corrected_text(r: CorrectedRate) -> str:
    """`76.3% (68.4%, 84.2%)`, or the status when there is no corrected number."""
    if r.status != "corrected":
        return r.status
    return with_ci(r.corrected, r.ci_low, r.ci_high)


def row_cells(c: Comparison, r: CorrectedRate) -> list[Any]:
    """One row under `HEADERS`."""
    lo, hi = raw_ci(c, r)
    j = (
        "–"
        if r.youden_j is None
        else f"{r.youden_j:.2f} ({r.youden_j_ci_low:.2f})"
        if r.youden_j_ci_low is not None
        else f"{r.youden_j:.2f}"
    )
    rate = "–"
    if r.true_pass_rate is not None:
        rate = f"{r.true_pass_rate:.1%} of {r.n_human_pass}"
    fail_rate = "–"
    if r.true_fail_rate is not None:
        fail_rate = f"{r.true_fail_rate:.1%} of {r.n_human_fail}"
    return [
        r.evaluator,
        "all" if r.category == ALL else r.category,
        r.side,
        r.n_rows,
        with_ci(r.raw, lo, hi),
        corrected_text(r),
        rate,
        fail_rate,
        j,
        r.status if r.status == "corrected" else f"{r.status}: {r.reason}",
    ]


def notes(c: Comparison) -> list[str]:
    """The one-line note, and the judges whose two sides differ in version."""
    out = [NOTE]
    changed = same_judge_note(c.corrected_rates)
    if changed:
        out.append(changed)
    return out


def corrected_markdown(c: Comparison, *, max_rows: int = 40) -> list[str]:
    """The markdown section (nothing when no judge produced a pass rate)."""
    if not c.corrected_rates:
        return []
    rows = c.corrected_rates[:max_rows]
    lines = [
        "",
        "### Judge-corrected pass rates",
        "",
        *(f"> {n}" for n in notes(c)),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cells = [str(v).replace("|", "\\|") for v in row_cells(c, r)]
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    if len(c.corrected_rates) > max_rows:
        lines.append(
            f"\n…and {len(c.corrected_rates) - max_rows} more rows (`corrected_rates` in the JSON)."
        )
    return lines


def corrected_table(c: Comparison) -> Table | None:
    """The terminal table (None when no judge produced a pass rate)."""
    if not c.corrected_rates:
        return None
    from rich.table import Table

    table = Table(
        title="judge-corrected pass rates",
        caption="\n".join(notes(c)),
        caption_justify="left",
    )
    for i, name in enumerate(HEADERS):
        table.add_column(name, justify="right" if 3 <= i <= 8 else "left")
    style = {"uninformative": "yellow", "uncalibrated": "dim"}
    for r in c.corrected_rates:
        table.add_row(*(str(v) for v in row_cells(c, r)), style=style.get(r.status))
    return table
