"""Import human labels (CSV or JSONL), all or nothing.

Columns: `item_id`, or `experiment_id` + `example_id` [+ `repetition`, default 0], and
`judge`, `annotator`, `label`; optional `time` (ISO 8601 with a timezone: when the label was
given) and `note`. Other columns (the annotation file's inputs and outputs) are ignored. A
row with neither annotator nor label is an item not labelled yet: counted and skipped.

Every row is checked before anything is written; any problem fails the whole file with one
`path:line: …` message per problem. Labels are nominal: one of the judge's choices. The same
annotator labelling the same item twice keeps the latest (by `time`, then by file order,
and over what is stored), and the result says which labels were replaced.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from evalkeeper.calibration.models import ImportResult, item_id
from evalkeeper.errors import InputError
from evalkeeper.models import utcnow
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame

MAX_PROBLEMS = 20
DEFAULT_CHOICES = ("pass", "fail")


class LabelFileError(InputError, ValueError):
    """A label file with problems; nothing of it was imported."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__(
            "\n".join(shown)
            + (f"\n…and {more} more problems" if more else "")
            + f"\n{path}: nothing imported; fix the lines above and import the file again"
        )
        self.problems = problems


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) per data row; a string instead of a row is that line's problem."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            start = 2
            for row in reader:
                yield start, dict(row)
                start = reader.line_num + 1
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, f"not JSON ({exc.msg}); write one object a line"
                    continue
                yield n, value if isinstance(value, dict) else "not a JSON object"
    else:
        raise LabelFileError(
            path, [f"{path}: not a .csv or .jsonl file; export the labels as CSV or JSONL"]
        )


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _parse_time(text: str) -> datetime | str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return f'field "time": {text!r} is not ISO 8601; write e.g. 2026-11-30T14:03:00Z'
    if when.tzinfo is None:
        return f'field "time": {text!r} has no timezone; write e.g. 2026-11-30T14:03:00Z'
    return when


def import_labels(
    warehouse: Warehouse,
    path: Path,
    *,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    source: str | None = None,
) -> ImportResult:
    """Validate every row of `path`, then store its labels in one transaction.

    `choices` maps a judge to its labels (default pass/fail). Raises `LabelFileError`."""
    path = Path(path)
    if not path.exists():
        raise LabelFileError(path, [f"{path}: no such file"])
    choices = choices or {}
    now = utcnow()
    items = {
        (r[0], r[1]): (r[2], r[3], r[4])
        for r in warehouse.rows(
            "SELECT item_id, judge, experiment_id, example_id, repetition FROM calibration_items"
        )
    }
    judged = {
        (r[0], r[1], r[2], int(r[3]))
        for r in warehouse.rows(
            "SELECT DISTINCT evaluator, experiment_id, example_id, repetition FROM scores "
            "WHERE judge_model IS NOT NULL AND NOT skipped"
        )
    }
    judges = {j for j, *_ in judged} | {j for _, j in items}
    problems: list[str] = []
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    notes: list[str] = []
    read = unlabelled = 0
    for line, row in _rows(path):
        where = f"{path}:{line}"
        if isinstance(row, str):
            problems.append(f"{where}: {row}")
            continue
        judge, annotator, label = _text(row, "judge"), _text(row, "annotator"), _text(row, "label")
        if not annotator and not label:
            unlabelled += 1
            continue
        read += 1
        missing = [
            k for k, v in (("judge", judge), ("annotator", annotator), ("label", label)) if not v
        ]
        if missing:
            problems.append(f"{where}: missing field {', '.join(repr(m) for m in missing)}")
            continue
        if judge not in judges:
            known = ", ".join(sorted(judges)) or "none yet"
            problems.append(f"{where}: judge {judge!r} has no judged runs here (known: {known})")
            continue
        allowed = choices.get(judge, DEFAULT_CHOICES)
        if label not in allowed:
            problems.append(
                f"{where}: label {label!r} is not one of {judge}'s labels; write one of "
                f"{', '.join(allowed)}"
            )
            continue
        iid = _text(row, "item_id")
        if iid:
            if (iid, judge) not in items:
                problems.append(
                    f"{where}: item_id {iid!r} was not drawn for judge {judge!r}; give "
                    "experiment_id and example_id (and repetition) instead"
                )
                continue
            exp, ex, rep = items[(iid, judge)]
        else:
            exp, ex = _text(row, "experiment_id"), _text(row, "example_id")
            rep_text = _text(row, "repetition") or "0"
            if not exp or not ex:
                problems.append(f"{where}: give item_id, or experiment_id and example_id")
                continue
            if not rep_text.isdigit():
                problems.append(f'{where}: field "repetition": {rep_text!r} is not a number')
                continue
            rep = int(rep_text)
            if (judge, exp, ex, rep) not in judged:
                problems.append(
                    f"{where}: judge {judge!r} did not score experiment {exp!r} example "
                    f"{ex!r} repetition {rep}; check the ids (`evalkeeper experiments`)"
                )
                continue
            iid = item_id(exp, ex, rep)
        when: datetime | str = now
        explicit = bool(_text(row, "time"))
        if explicit:
            when = _parse_time(_text(row, "time"))
            if isinstance(when, str):
                problems.append(f"{where}: {when}")
                continue
        key = (iid, judge, annotator)
        new = {
            "item_id": iid,
            "judge": judge,
            "annotator": annotator,
            "experiment_id": exp,
            "example_id": ex,
            "repetition": rep,
            "label": label,
            "labelled_at": when,
            "note": _text(row, "note") or None,
            "source": source or str(path),
            "imported_at": now,
            "_line": line,
            "_explicit": explicit,
        }
        old = latest.get(key)
        if old is not None:
            keep_new = new["labelled_at"] >= old["labelled_at"]
            winner, loser = (new, old) if keep_new else (old, new)
            notes.append(
                f"{path}:{new['_line']}: {annotator} labelled {iid} ({judge}) twice in this file "
                f"(also line {old['_line']}): kept {winner['label']!r} from line {winner['_line']}"
                f", the later one"
            )
            latest[key] = winner
            del loser
        else:
            latest[key] = new
    if problems:
        raise LabelFileError(path, problems)
    stored = {
        (r[0], r[1], r[2]): (r[3], r[4])
        for r in warehouse.rows(
            "SELECT item_id, judge, annotator, label, labelled_at FROM human_labels"
        )
    }
    to_write: list[dict[str, Any]] = []
    inserted = replaced = unchanged = kept = 0
    for key, row in latest.items():
        before = stored.get(key)
        if before is None:
            inserted += 1
        elif before[0] == row["label"] and (
            not row["_explicit"] or before[1] == row["labelled_at"]
        ):
            unchanged += 1
            continue
        elif row["labelled_at"] < before[1]:
            kept += 1
            notes.append(
                f"{path}:{row['_line']}: {key[2]} labelled {key[0]} ({key[1]}) "
                f"{row['label']!r} at {row['labelled_at'].isoformat()}, before the stored "
                f"{before[0]!r} ({before[1].isoformat()}): kept the stored, later label"
            )
            continue
        else:
            replaced += 1
            notes.append(
                f"{path}:{row['_line']}: {key[2]} relabelled {key[0]} ({key[1]}): "
                f"{before[0]!r} replaced by {row['label']!r}, the latest"
            )
        to_write.append({k: v for k, v in row.items() if not k.startswith("_")})
    if to_write:
        warehouse.write({"human_labels": table_frame("human_labels", to_write)}, spool_ok=False)
    return ImportResult(
        path=str(path),
        rows=read,
        inserted=inserted,
        replaced=replaced,
        unchanged=unchanged,
        kept_stored=kept,
        unlabelled=unlabelled,
        notes=notes,
    )
