"""Decide a judge version's status and record it with its history.

The rule (`decide`), in order:

* `uncalibrated`: fewer than `calibration_min_labels` labelled items;
* `retired`: the upper bound of the agreement's 95% interval is below the bar;
* `at_risk`: the interval straddles the bar, or kappa is below `calibration_kappa_floor`
  (or undefined: the labels hold one category, so chance agreement cannot be told apart);
* `healthy` otherwise.

The bar is `calibration_bar` (0.80), or, with `calibration_ceiling_share` set and a measured
human ceiling, that share of the humans' own agreement.

Recording (`record`): every measurement is a `judge_calibrations` row; a version's status
change is a `judge_status_history` row; the `judges` row holds the judge's current status,
which `compare` and the monitor read (`evalkeeper.warehouse.queries.retired_judges`): a
retired judge's cells leave every verdict, with a warning. A retired judge stays retired
until a *new* version (a new prompt or model pin) is calibrated `healthy`; measuring the
retired version again records the measurement and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evalkeeper.calibration.models import JudgeCalibration, Status, StatusChange
from evalkeeper.models import canonical_json, content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame


def _ci(ci: list[float] | None) -> str:
    return f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "n/a"


def evidence(m: JudgeCalibration) -> str:
    """`agreement 0.70, CI 0.61-0.78, kappa 0.41, n 120` — the short form of a measurement."""
    agreement = "n/a" if m.agreement is None else f"{m.agreement:.2f}"
    kappa = "undefined" if m.kappa is None else f"{m.kappa:.2f}"
    return f"agreement {agreement}, CI {_ci(m.agreement_ci)}, kappa {kappa}, n {m.n_items}"


def decide(m: JudgeCalibration, settings: Settings) -> tuple[Status, str, float]:
    """(status, reason, bar) of one measurement; see the module docstring."""
    bar = settings.calibration.bar
    bar_text = f"the bar {bar:.2f}"
    share = settings.calibration.ceiling_share
    if share is not None and m.ceiling.agreement is not None:
        bar = share * m.ceiling.agreement
        bar_text = f"the bar {bar:.2f} ({share:g} x human ceiling {m.ceiling.agreement:.2f})"
    if m.n_items < settings.calibration.min_labels or m.agreement_ci is None:
        return (
            "uncalibrated",
            f"{m.n_items} labelled items, fewer than the {settings.calibration.min_labels} "
            "needed (EVALKEEPER_CALIBRATION_MIN_LABELS): label more items "
            "(`evalkeeper calibrate sample`)",
            bar,
        )
    lo, hi = m.agreement_ci
    if hi < bar:
        return "retired", f"{evidence(m)}: the whole interval is below {bar_text}", bar
    if lo < bar:
        return "at_risk", f"{evidence(m)}: the interval straddles {bar_text}", bar
    floor = settings.calibration.kappa_floor
    if m.kappa is None:
        return (
            "at_risk",
            f"{evidence(m)}: kappa is undefined (one label throughout); label items of every kind",
            bar,
        )
    if m.kappa < floor:
        return "at_risk", f"{evidence(m)}: kappa below the floor {floor:.2f}", bar
    return "healthy", f"{evidence(m)}: above {bar_text}", bar


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
    }
