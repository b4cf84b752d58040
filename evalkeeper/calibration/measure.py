"""Measure each judge version against the humans, per quarter of the labels.

For every labelled item the judge scored (no error, not skipped): the majority human label
(an even split is a tie: counted in `n_ties`, left out); then agreement of the judge's
verdict with it (Wilson interval), Cohen's kappa (asymptotic SE and a paired, seeded BCa
bootstrap interval), Gwet's AC1 (SE), the confusion table, and the true-pass and true-fail
rates (of the items humans passed, the share the judge passed; of those they failed, the
share it failed), and the constant-answer baseline (the agreement of a judge always giving
the commonest majority human label, with its Wilson interval) the agreement must beat. The human ceiling comes from the items with two or more labels: the first
two labels (annotators in name order) give agreement, kappa and AC1; Krippendorff's alpha
uses every label. The status follows from `evalkeeper.calibration.status.decide`.

A label's quarter is the quarter of its `time` (or of its import when it had none). Without
a quarter, each judge version is measured on its latest quarter with labels.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from evalkeeper.analysis.agreement import (
    constant_baseline,
    krippendorff_alpha_nominal,
    pair_agreement,
)
from evalkeeper.calibration.models import Ceiling, Disagreement, JudgeCalibration, quarter_of
from evalkeeper.calibration.status import decide, rule_of
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

_LABELS_SQL = """
    SELECT l.item_id, l.judge, l.annotator, l.label, l.labelled_at, l.experiment_id,
           l.example_id, l.repetition, s.evaluator_version AS prompt_version, s.judge_model,
           s.category, s.comment,
           coalesce(json_extract_string(s.details, '$.verdict'),
                    CASE WHEN s.passed THEN 'pass' ELSE 'fail' END) AS verdict,
           s.created_at AS scored_at
    FROM human_labels l
    JOIN scores s ON s.evaluator = l.judge AND s.experiment_id = l.experiment_id
         AND s.example_id = l.example_id AND s.repetition = l.repetition
    WHERE NOT s.skipped AND s.error IS NULL AND s.passed IS NOT NULL
      AND s.judge_model IS NOT NULL AND ($1::VARCHAR IS NULL OR l.judge = $1)
    ORDER BY l.judge, l.item_id, l.annotator
"""


def measure(
    warehouse: Warehouse,
    settings: Settings,
    *,
    judge: str | None = None,
    quarter: str | None = None,
    choices: Mapping[str, tuple[str, ...]] | None = None,
) -> list[JudgeCalibration]:
    """One `JudgeCalibration` per judge version (and quarter) with labels, sorted by judge.

    `choices` maps a judge to its labels, pass label first (default pass/fail)."""
    frame = warehouse.query(_LABELS_SQL, [judge])
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    last_scored: dict[tuple[str, str, str], Any] = {}
    for row in frame.iter_rows(named=True):
        q = quarter_of(row["labelled_at"])
        if quarter is not None and q != quarter:
            continue
        key = (row["judge"], row["prompt_version"], row["judge_model"])
        groups[(*key, q)].append(row)
        if key not in last_scored or row["scored_at"] > last_scored[key]:
            last_scored[key] = row["scored_at"]
    if quarter is None:  # the latest quarter of each version
        latest: dict[tuple[str, str, str], str] = {}
        for j, v, m, q in groups:
            latest[(j, v, m)] = max(q, latest.get((j, v, m), q))
        groups = {k: rows for k, rows in groups.items() if latest[k[:3]] == k[3]}
    out = []
    for (j, v, m, q), rows in groups.items():
        picked = (choices or {}).get(j, ("pass", "fail"))
        out.append(
            measure_one(rows, settings, judge=j, version=v, model=m, quarter=q, choices=picked)
        )
    # a judge's versions in the order they were last used: the current one decides last
    out.sort(key=lambda c: (c.judge, last_scored[(c.judge, c.version, c.model)]))
    return out


def measure_one(
    rows: list[dict[str, Any]],
    settings: Settings,
    *,
    judge: str,
    version: str,
    model: str,
    quarter: str,
    choices: tuple[str, ...] = ("pass", "fail"),
) -> JudgeCalibration:
    """The measurement of one judge version from its label rows (one per item x annotator)."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_item[r["item_id"]].append(r)
    seen = {r["label"] for r in rows} | {r["verdict"] for r in rows}
    labels = list(choices) + sorted(seen - set(choices))
    code = {label: i for i, label in enumerate(labels)}
    judge_codes: list[int] = []
    human_codes: list[int] = []
    ties = 0
    disagreements: list[Disagreement] = []
    units: list[list[int]] = []
    pairs: list[tuple[int, int]] = []
    for iid in sorted(by_item):
        item = sorted(by_item[iid], key=lambda r: r["annotator"])
        votes = [r["label"] for r in item]
        if len(votes) >= 2:
            units.append([code[v] for v in votes])
            pairs.append((code[votes[0]], code[votes[1]]))
        counts = Counter(votes).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            ties += 1
            continue
        majority, verdict = counts[0][0], item[0]["verdict"]
        judge_codes.append(code[verdict])
        human_codes.append(code[majority])
        if verdict != majority:
            first = item[0]
            disagreements.append(
                Disagreement(
                    item_id=iid,
                    experiment_id=first["experiment_id"],
                    example_id=first["example_id"],
                    repetition=first["repetition"],
                    category=first["category"],
                    judge_verdict=verdict,
                    human_label=majority,
                    human_labels={r["annotator"]: r["label"] for r in item},
                    reasoning=first["comment"],
                )
            )
    q = len(labels)
    pa = pair_agreement(
        judge_codes,
        human_codes,
        q,
        seed=settings.seed,
        n_resamples=settings.calibration.bootstrap_resamples,
    )
    table = pa.confusion
    human_pass = int(table[:, 0].sum())
    human_fail = int(table[:, 1:].sum())
    ceiling = _ceiling(pairs, units, q)
    base = constant_baseline(human_codes, q)
    m = JudgeCalibration(
        judge=judge,
        version=version,
        model=model,
        quarter=quarter,
        n_items=pa.n_items,
        n_ties=ties,
        labels=labels,
        agreement=pa.agreement.value,
        agreement_ci=list(pa.agreement.ci) if pa.agreement.ci else None,
        kappa=pa.kappa.value,
        kappa_se=pa.kappa.se,
        kappa_ci=list(pa.kappa.ci) if pa.kappa.ci else None,
        ac1=pa.ac1.value,
        ac1_se=pa.ac1.se,
        confusion=table.tolist(),
        true_pass_rate=int(table[0, 0]) / human_pass if human_pass else None,
        true_fail_rate=int(table[1:, 1:].sum()) / human_fail if human_fail else None,
        ceiling=ceiling,
        bar=settings.calibration.bar,
        status="uncalibrated",
        reason="",
        disagreements=disagreements,
        baseline=base.agreement.value,
        baseline_label=None if base.label is None else labels[base.label],
        baseline_ci=list(base.agreement.ci) if base.agreement.ci else None,
        beats_baseline=(
            None
            if pa.agreement.value is None or base.agreement.value is None
            else pa.agreement.value > base.agreement.value
        ),
    )
    rule = rule_of(m, settings)
    status, reason, bar = decide(m, settings)
    return m.model_copy(
        update={
            "status": status,
            "reason": reason,
            "bar": bar,
            "rule": rule.statistic,
            "rule_value": rule.value,
            "rule_ci": list(rule.ci) if rule.ci else None,
            "rule_interval": rule.interval,
            "rule_share": rule.share,
            "rule_ceiling": rule.ceiling,
        }
    )


def _ceiling(pairs: list[tuple[int, int]], units: list[list[int]], q: int) -> Ceiling:
    if not pairs:
        return Ceiling(n_items=0, agreement=None, kappa=None, ac1=None, alpha=None)
    pa = pair_agreement([a for a, _ in pairs], [b for _, b in pairs], q)
    return Ceiling(
        n_items=len(pairs),
        agreement=pa.agreement.value,
        kappa=pa.kappa.value,
        ac1=pa.ac1.value,
        alpha=krippendorff_alpha_nominal(units, q),
    )
