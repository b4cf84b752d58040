"""Decide a judge version's status and record it with its history.

The rule (`decide`), in order:

* `uncalibrated`: fewer than `calibration_min_labels` labelled items;
* `retired`: the upper bound of the rule statistic's 95% interval is below the bar;
* `at_risk`: the interval straddles the bar; under the `agreement` rule also when kappa is
  below `calibration_kappa_floor` (or undefined: the labels hold one category, so chance
  agreement cannot be told apart);
* `healthy` otherwise.

The rule statistic is `calibration_rule` (`rule_of`):

* `agreement` (the default): the agreement with the majority human label, its Wilson
  interval, against `calibration_bar` (0.80);
* `kappa`: Cohen's kappa, its paired BCa bootstrap interval (the asymptotic interval
  kappa ± 1.96 SE of Fleiss, Cohen & Everitt 1969 when the bootstrap cannot form one, as
  for a constant judge, whose kappa is 0 in every resample), against `calibration_kappa_bar`;
* `ac1`: Gwet's AC1 ± 1.96 SE (Gwet 2008), against `calibration_ac1_bar`.

With `calibration_ceiling_share` set and the human ceiling measured, the bar is that share
of the humans' own value of the same statistic (their agreement, kappa or AC1 between the
first two annotators): "retire when the upper bound of the judge's kappa interval is below
0.75 x the humans' kappa". Kappa and AC1 account for chance; agreement does not: a judge
that always says "pass" on a set that is 90% passes agrees 90% (the constant-answer
baseline, `evalkeeper.analysis.agreement.constant_baseline`) with kappa 0. Whatever the
rule, a judge whose agreement does not beat that baseline has it said in its reason.

Recording (`record`): every measurement is a `judge_calibrations` row; a version's status
change is a `judge_status_history` row; the `judges` row holds the judge's current status,
which `compare` and the monitor read (`evalkeeper.warehouse.queries.retired_judges`): a
retired judge's cells leave every verdict, with a warning. A retired judge stays retired
until a *new* version (a new prompt or model pin) is calibrated `healthy`; measuring the
retired version again records the measurement and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evalkeeper.calibration.models import JudgeCalibration, RuleStatistic, Status, StatusChange
from evalkeeper.models import canonical_json, content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame


def _ci(ci: list[float] | None) -> str:
    return f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "n/a"


def _num(x: float) -> str:
    """Two decimals, never `-0.00`."""
    return f"{round(x, 2) + 0.0:.2f}"


def evidence(m: JudgeCalibration) -> str:
    """`agreement 0.70, CI 0.61-0.78, kappa 0.41, n 120` — the short form of a measurement."""
    agreement = "n/a" if m.agreement is None else f"{m.agreement:.2f}"
    kappa = "undefined" if m.kappa is None else f"{m.kappa:.2f}"
    return f"agreement {agreement}, CI {_ci(m.agreement_ci)}, kappa {kappa}, n {m.n_items}"


@dataclass(frozen=True)
class Rule:
    """The retire rule applied to one measurement: the statistic, its interval, the bar."""

    statistic: RuleStatistic
    value: float | None
    ci: tuple[float, float] | None
    interval: str | None
    """wilson (agreement), bca or asymptotic (kappa), se (AC1 ± 1.96 SE)."""
    bar: float
    share: float | None
    """The share of the human ceiling the bar is; None for an absolute bar."""
    ceiling: float | None
    """The humans' own value of the statistic (when the bar is relative to it)."""
    no_ceiling: bool = False
    """A relative bar was asked for but no human ceiling is measured: the absolute bar."""

    @property
    def bar_text(self) -> str:
        """`the bar 0.68 (0.75 x human ceiling kappa 0.90)`."""
        if self.share is None or self.ceiling is None:
            absolute = " (no human ceiling measured: the absolute bar)" if self.no_ceiling else ""
            return f"the bar {self.bar:.2f}{absolute}"
        what = "" if self.statistic == "agreement" else f"{self.statistic} "
        return f"the bar {self.bar:.2f} ({self.share:g} x human ceiling {what}{self.ceiling:.2f})"


_Z95 = 1.959963984540054


def rule_of(m: JudgeCalibration, settings: Settings) -> Rule:
    """The rule `settings` states, applied to `m` (see the module docstring)."""
    cal = settings.calibration
    statistic: RuleStatistic = cal.rule
    value: float | None
    ci: tuple[float, float] | None = None
    interval: str | None = None
    if statistic == "kappa":
        value, bar, ceiling = m.kappa, cal.kappa_bar, m.ceiling.kappa
        if m.kappa_ci:
            ci, interval = (m.kappa_ci[0], m.kappa_ci[1]), "bca"
        elif value is not None and m.kappa_se is not None:
            half = _Z95 * m.kappa_se
            ci, interval = (value - half, value + half), "asymptotic"
    elif statistic == "ac1":
        value, bar, ceiling = m.ac1, cal.ac1_bar, m.ceiling.ac1
        if value is not None and m.ac1_se is not None:
            half = _Z95 * m.ac1_se
            ci, interval = (max(-1.0, value - half), min(1.0, value + half)), "se"
    else:
        value, bar, ceiling = m.agreement, cal.bar, m.ceiling.agreement
        if m.agreement_ci:
            ci, interval = (m.agreement_ci[0], m.agreement_ci[1]), "wilson"
    if cal.ceiling_share is None or ceiling is None:
        no_ceiling = cal.ceiling_share is not None
        return Rule(statistic, value, ci, interval, bar, None, None, no_ceiling)
    share = cal.ceiling_share
    return Rule(statistic, value, ci, interval, share * ceiling, share, ceiling)


def baseline_note(m: JudgeCalibration) -> str:
    """`the agreement 0.90 does not beat the constant-answer baseline 0.90 (always 'pass')`,
    or "" when it does (or was not measured)."""
    if m.beats_baseline is not False or m.agreement is None or m.baseline is None:
        return ""
    return (
        f"the agreement {m.agreement:.2f} does not beat the constant-answer baseline "
        f"{m.baseline:.2f} (always {m.baseline_label!r})"
    )


def decide(m: JudgeCalibration, settings: Settings) -> tuple[Status, str, float]:
    """(status, reason, bar) of one measurement; see the module docstring."""
    status, reason, bar = _decide(m, settings)
    note = baseline_note(m)
    return status, (f"{reason}; {note}" if note else reason), bar


def _decide(m: JudgeCalibration, settings: Settings) -> tuple[Status, str, float]:
    rule = rule_of(m, settings)
    bar, bar_text = rule.bar, rule.bar_text
    if m.n_items < settings.calibration.min_labels or m.agreement_ci is None:
        return (
            "uncalibrated",
            f"{m.n_items} labelled items, fewer than the {settings.calibration.min_labels} "
            "needed (EVALKEEPER_CALIBRATION_MIN_LABELS): label more items "
            "(`evalkeeper calibrate sample`)",
            bar,
        )
    undefined = (
        f"{evidence(m)}: kappa is undefined (one label throughout); label items of every kind"
    )
    said = f" (rule: {rule.statistic}{', relative' if rule.share is not None else ''})"
    if rule.statistic == "agreement":
        head = evidence(m)
    elif rule.value is None:
        return "at_risk", undefined + said, bar
    else:
        head = f"{evidence(m)}; {rule.statistic} {_num(rule.value)}, 95% {rule.interval} interval"
        head += f" [{_num(rule.ci[0])}, {_num(rule.ci[1])}]" if rule.ci else " n/a"
    if rule.ci is None:
        return "at_risk", f"{head}: no interval to hold to {bar_text}{said}", bar
    lo, hi = rule.ci
    if hi < bar:
        return "retired", f"{head}: the whole interval is below {bar_text}{said}", bar
    if lo < bar:
        return "at_risk", f"{head}: the interval straddles {bar_text}{said}", bar
    if rule.statistic == "agreement":
        floor = settings.calibration.kappa_floor
        if m.kappa is None:
            return "at_risk", undefined + said, bar
        if m.kappa < floor:
            return "at_risk", f"{evidence(m)}: kappa below the floor {floor:.2f}{said}", bar
    return "healthy", f"{head}: above {bar_text}{said}", bar


def current_statuses(warehouse: Warehouse) -> dict[str, dict[str, Any]]:
    """The `judges` rows: judge -> {prompt_version, model, status, status_reason, updated_at}."""
    frame = warehouse.query(
        "SELECT judge, prompt_version, model, status, status_reason, updated_at FROM judges"
    )
    return {r["judge"]: r for r in frame.iter_rows(named=True)}


def status_history(warehouse: Warehouse, judge: str | None = None) -> list[StatusChange]:
    """Every status change, oldest first (of one judge, or all)."""
    frame = warehouse.query(
        "SELECT judge, prompt_version, judge_model, status, reason, calibration_id, changed_at "
        "FROM judge_status_history WHERE $1::VARCHAR IS NULL OR judge = $1 "
        "ORDER BY judge, changed_at",
        [judge],
    )
    return [StatusChange.model_validate(r) for r in frame.iter_rows(named=True)]


def retired_since(warehouse: Warehouse, since: datetime) -> list[StatusChange]:
    """The judge versions whose status changed to retired at or after `since` (what a
    calibration that started then has just retired; a retired version measured again
    changes nothing, so it is not among them)."""
    frame = warehouse.query(
        "SELECT judge, prompt_version, judge_model, status, reason, calibration_id, changed_at "
        "FROM judge_status_history WHERE status = 'retired' AND changed_at >= $1 "
        "ORDER BY judge, changed_at",
        [since],
    )
    return [StatusChange.model_validate(r) for r in frame.iter_rows(named=True)]


def _version_status(warehouse: Warehouse) -> dict[tuple[str, str, str], str]:
    rows = warehouse.rows(
        "SELECT judge, prompt_version, judge_model, status FROM judge_status_history "
        "QUALIFY row_number() OVER (PARTITION BY judge, prompt_version, judge_model "
        "ORDER BY changed_at DESC) = 1"
    )
    return {(j, v, m): s for j, v, m, s in rows}


def record(
    warehouse: Warehouse, calibrations: list[JudgeCalibration], *, now: datetime | None = None
) -> list[JudgeCalibration]:
    """Store the measurements, the status changes and each judge's current status, in one
    batch. Returns the measurements with `status`/`reason` as the judge now stands (a
    retired version measured again stays retired)."""
    now = now or utcnow()
    if not calibrations:
        return []
    calibration_id = content_hash([now.isoformat(), [c.key.model_dump() for c in calibrations]])
    current = current_statuses(warehouse)
    versions = _version_status(warehouse)
    cal_rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    judges: dict[str, dict[str, Any]] = {}
    out: list[JudgeCalibration] = []
    for c in calibrations:
        status, reason = c.status, c.reason
        cur = judges.get(c.judge) or current.get(c.judge)
        same_version = (
            cur is not None and cur["prompt_version"] == c.version and cur["model"] == c.model
        )
        stays_retired = cur is not None and cur["status"] == "retired" and status != "retired"
        if stays_retired and (same_version or status != "healthy"):
            reason = (
                f"measured {status} ({reason}), but the judge stays retired: reinstating "
                "it takes a healthy calibration of a new version (a new prompt or model pin)"
            )
            status = "retired"
        key = (c.judge, c.version, c.model)
        if versions.get(key) != status:
            history.append(
                {
                    "judge": c.judge,
                    "prompt_version": c.version,
                    "judge_model": c.model,
                    "status": status,
                    "reason": reason,
                    "calibration_id": calibration_id,
                    "changed_at": now,
                }
            )
            versions[key] = status
        keep_old_version = (
            status == "retired" and cur is not None and cur["status"] == "retired" and same_version
        )
        judges[c.judge] = {
            "judge": c.judge,
            "model": cur["model"] if keep_old_version and cur else c.model,
            "prompt_version": cur["prompt_version"] if keep_old_version and cur else c.version,
            "status": status,
            "status_reason": (cur or {}).get("status_reason") if keep_old_version else evidence(c),
            "updated_at": cur["updated_at"] if keep_old_version and cur else now,
        }
        cal_rows.append(_calibration_row(c, calibration_id, now))
        out.append(c.model_copy(update={"status": status, "reason": reason}))
    warehouse.write(
        {
            "judge_calibrations": table_frame("judge_calibrations", cal_rows),
            "judge_status_history": table_frame("judge_status_history", history),
            "judges": table_frame("judges", list(judges.values())),
        },
    )  # while an analyst holds the warehouse, spooled (and read back from the spool)
    return out


def _calibration_row(c: JudgeCalibration, calibration_id: str, now: datetime) -> dict[str, Any]:
    none: list[float | None] = [None, None]
    ci: list[float | None] = list(c.agreement_ci) if c.agreement_ci else none
    kci: list[float | None] = list(c.kappa_ci) if c.kappa_ci else none
    bci: list[float | None] = list(c.baseline_ci) if c.baseline_ci else none
    rci: list[float | None] = list(c.rule_ci) if c.rule_ci else none
    return {
        "calibration_id": calibration_id,
        "judge": c.judge,
        "prompt_version": c.version,
        "judge_model": c.model,
        "quarter": c.quarter,
        "n_items": c.n_items,
        "n_ties": c.n_ties,
        "agreement": c.agreement,
        "agreement_ci_low": ci[0],
        "agreement_ci_high": ci[1],
        "kappa": c.kappa,
        "kappa_se": c.kappa_se,
        "kappa_ci_low": kci[0],
        "kappa_ci_high": kci[1],
        "ac1": c.ac1,
        "ac1_se": c.ac1_se,
        "true_pass_rate": c.true_pass_rate,
        "true_fail_rate": c.true_fail_rate,
        "ceiling_n_items": c.ceiling.n_items,
        "ceiling_agreement": c.ceiling.agreement,
        "ceiling_kappa": c.ceiling.kappa,
        "ceiling_ac1": c.ceiling.ac1,
        "ceiling_alpha": c.ceiling.alpha,
        "bar": c.bar,
        "status": c.status,
        "reason": c.reason,
        "details": canonical_json(
            {
                "labels": c.labels,
                "confusion": c.confusion,
                "disagreements": [d.model_dump() for d in c.disagreements],
            }
        ),
        "created_at": now,
        "baseline": c.baseline,
        "baseline_label": c.baseline_label,
        "baseline_ci_low": bci[0],
        "baseline_ci_high": bci[1],
        "beats_baseline": c.beats_baseline,
        "rule": c.rule,
        "rule_value": c.rule_value,
        "rule_ci_low": rci[0],
        "rule_ci_high": rci[1],
        "rule_interval": c.rule_interval,
        "rule_share": c.rule_share,
        "rule_ceiling": c.rule_ceiling,
    }
