"""Import human labels (CSV or JSONL), all or nothing, in bounded memory.

Columns: `item_id`, or `experiment_id` + `example_id` [+ `repetition`, default 0], and
`judge`, `annotator`, `label`; optional `time` (ISO 8601 with a timezone: when the label was
given) and `note`. Other columns (the annotation file's inputs and outputs) are ignored. A
row with neither annotator nor label is an item not labelled yet: counted and skipped.

Every row is checked before anything is written; any problem fails the whole file with one
`path:line: …` message per problem (the first `MAX_PROBLEMS` shown, the rest counted).
Labels are nominal: one of the judge's choices. The same annotator labelling the same item
twice keeps the latest (by `time`, then by file order, and over what is stored), and the
result says which labels were replaced.

The file is streamed, no row of it held in Python: each row is checked on its own
(fields, judge, label, time) as it is read and appended to a staging file in a temporary
folder. Then, on one connection holding the warehouse, what the checks need (the judged
runs, the drawn items and the stored labels of the file's judges) is exported to Parquet,
and a DuckDB instance of the import's own, with a memory limit (it spills to the folder),
checks the staged rows against it, keeps each annotator's latest label of an item and
compares it with the stored one. The new and changed labels are written in one transaction
(`Warehouse.write` of a Parquet file) before the connection is let go. A killed import has
written nothing; the next import removes the staging folder it left
(`evalkeeper-batch-<pid>-…`, like the warehouse's own). What still grows with the file is
DuckDB's insert of the new rows and their key: 1 M new labels peaked at 438 MiB in all,
against 2.6 GiB when every row was held in Python, and replacing 1 M stored labels at once
at 594 MiB (`benchmarks/labels_import.py`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from evalkeeper.calibration.models import ImportResult, item_id
from evalkeeper.errors import InputError
from evalkeeper.models import utcnow
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.store import STAGING_PREFIX, remove_stale_staging

MAX_PROBLEMS = 20
MAX_NOTES = 1_000
DEFAULT_CHOICES = ("pass", "fail")

# A staged row, as the import's DuckDB reads it back: its line, the item (given, or the hash
# of the run's ids), the run's ids (null for a row given by item_id: they come from
# calibration_items), the label and its time (the import's, unless `explicit`).
_STAGED = {
    "line": "BIGINT",
    "item_id": "VARCHAR",
    "by_item": "BOOLEAN",
    "judge": "VARCHAR",
    "annotator": "VARCHAR",
    "experiment_id": "VARCHAR",
    "example_id": "VARCHAR",
    "repetition": "INTEGER",
    "label": "VARCHAR",
    "labelled_at": "TIMESTAMPTZ",
    "explicit": "BOOLEAN",
    "note": "VARCHAR",
}


class LabelFileError(InputError, ValueError):
    """A label file with problems; nothing of it was imported."""

    def __init__(self, path: Path, problems: list[str], count: int | None = None) -> None:
        shown = problems[:MAX_PROBLEMS]
        self.count = len(problems) if count is None else count
        more = self.count - len(shown)
        super().__init__(
            "\n".join(shown)
            + (f"\n…and {more} more problems" if more else "")
            + f"\n{path}: nothing imported; fix the lines above and import the file again"
        )
        self.problems = shown


class _Problems:
    """The first `MAX_PROBLEMS` problems (line, message) and how many there are."""

    def __init__(self) -> None:
        self.first: list[tuple[int, str]] = []
        self.count = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.first) < MAX_PROBLEMS:
            self.first.append((line, message))


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) per data row; a string instead of a row is that line's problem."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            start = 2
            for row in reader:
                yield start, row
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


class _Stage:
    """Checked rows, appended to a JSON-lines file (no row is kept in memory; JSON keeps
    any text, new lines and quotes included, exactly)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.judges: set[str] = set()
        self._fh = path.open("w", encoding="utf-8")

    def add(self, row: tuple[Any, ...]) -> None:
        """A row of the `_STAGED` columns, in order (None for NULL)."""
        self.judges.add(row[3])
        self._fh.write(json.dumps(dict(zip(_STAGED, row, strict=True))) + "\n")
        self.rows += 1

    def close(self) -> None:
        self._fh.close()


def _check_rows(
    path: Path,
    stage: _Stage,
    problems: _Problems,
    judges: set[str],
    choices: Mapping[str, tuple[str, ...]],
    now: datetime,
) -> tuple[int, int]:
    """Check each row on its own and stage the good ones. Returns (labelled, unlabelled)."""
    read = unlabelled = 0
    now_text = now.isoformat()
    for line, row in _rows(path):
        where = f"{path}:{line}"
        if isinstance(row, str):
            problems.add(line, f"{where}: {row}")
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
            problems.add(line, f"{where}: missing field {', '.join(repr(m) for m in missing)}")
            continue
        if judge not in judges:
            known = ", ".join(sorted(judges)) or "none yet"
            problems.add(line, f"{where}: judge {judge!r} has no judged runs here (known: {known})")
            continue
        allowed = choices.get(judge, DEFAULT_CHOICES)
        if label not in allowed:
            problems.add(
                line,
                f"{where}: label {label!r} is not one of {judge}'s labels; write one of "
                f"{', '.join(allowed)}",
            )
            continue
        iid = _text(row, "item_id")
        exp = ex = None
        rep: int | None = None
        if not iid:
            exp, ex = _text(row, "experiment_id"), _text(row, "example_id")
            rep_text = _text(row, "repetition") or "0"
            if not exp or not ex:
                problems.add(line, f"{where}: give item_id, or experiment_id and example_id")
                continue
            if not rep_text.isdigit():
                problems.add(line, f'{where}: field "repetition": {rep_text!r} is not a number')
                continue
            rep = int(rep_text)
        when = now_text
        time_text = _text(row, "time")
        if time_text:
            parsed = _parse_time(time_text)
            if isinstance(parsed, str):
                problems.add(line, f"{where}: {parsed}")
                continue
            when = parsed.isoformat()
        stage.add(
            (
                line,
                iid or item_id(exp or "", ex or "", rep or 0),
                bool(iid),
                judge,
                annotator,
                exp,
                ex,
                rep,
                label,
                when,
                bool(time_text),
                _text(row, "note") or None,
            )
        )
    stage.close()
    return read, unlabelled


# What the checks read from the warehouse, for the judges of the file, exported to Parquet
# for the import's own DuckDB instance (a filtered scan; the warehouse's instance keeps what
# it read cached until the connection ends: about 50 MiB for 1 M judged runs).
_EXPORTS = {
    "judged": "SELECT evaluator, experiment_id, example_id, repetition FROM scores "
    "WHERE judge_model IS NOT NULL AND NOT skipped AND list_contains($judges, evaluator)",
    "calibration_items": "SELECT item_id, judge, experiment_id, example_id, repetition "
    "FROM calibration_items WHERE list_contains($judges, judge)",
    "stored": "SELECT item_id, judge, annotator, label, labelled_at FROM human_labels "
    "WHERE list_contains($judges, judge)",
}

# The checks, the merge and the comparison run in a DuckDB instance of the import's own,
# on those Parquet files, with a memory limit: past it, its joins and sorts spill to the
# staging folder instead of growing with the file (the warehouse's instance has no limit).
WORK_MEMORY = "128MB"

# Each staged row resolved: a row given by item_id takes the run's ids from the drawn item;
# `known` says whether the item was drawn for the judge, or whether the judge scored the run.
# `rank` 1 is an annotator's latest label of an item in the file (by time, then by line).
_RESOLVE = """
SELECT l.line, l.item_id, l.judge, l.annotator,
       coalesce(l.experiment_id, c.experiment_id) AS experiment_id,
       coalesce(l.example_id, c.example_id) AS example_id,
       coalesce(l.repetition, c.repetition) AS repetition,
       l.label, l.labelled_at, l.explicit, l.note, l.by_item,
       CASE WHEN l.by_item THEN c.item_id IS NOT NULL ELSE s.judged IS NOT NULL END AS known,
       row_number() OVER (
           PARTITION BY l.item_id, l.judge, l.annotator
           ORDER BY l.labelled_at DESC, l.line DESC
       ) AS rank
FROM staged l
LEFT JOIN calibration_items c
       ON l.by_item AND c.item_id = l.item_id AND c.judge = l.judge
LEFT JOIN (
    SELECT DISTINCT evaluator, experiment_id, example_id, repetition, true AS judged FROM judged
) s ON NOT l.by_item AND s.evaluator = l.judge AND s.experiment_id = l.experiment_id
   AND s.example_id = l.example_id AND s.repetition = l.repetition
"""

# An annotator's latest label of an item, against the stored one (the rules of the module).
_OUTCOME = """
SELECT l.*, h.label AS stored_label, h.labelled_at AS stored_at,
       CASE WHEN h.label IS NULL THEN 'new'
            WHEN h.label = l.label AND (NOT l.explicit OR h.labelled_at = l.labelled_at)
                THEN 'unchanged'
            WHEN l.labelled_at < h.labelled_at THEN 'kept'
            ELSE 'replaced' END AS outcome
FROM resolved l
LEFT JOIN stored h USING (item_id, judge, annotator)
WHERE l.rank = 1
"""

# The rows of `human_labels` to write: the new labels and those that replace a stored one.
_WRITE = """
SELECT item_id, judge, annotator, experiment_id, example_id, repetition, label, labelled_at,
       note, $source AS source, $now::TIMESTAMPTZ AS imported_at
FROM outcome
WHERE outcome IN ('new', 'replaced')
"""


def import_labels(
    warehouse: Warehouse,
    path: Path,
    *,
    choices: Mapping[str, tuple[str, ...]] | None = None,
    source: str | None = None,
) -> ImportResult:
    """Check every row of `path`, then store its labels in one transaction.

    `choices` maps a judge to its labels (default pass/fail). Raises `LabelFileError`."""
    path = Path(path)
    if not path.exists():
        raise LabelFileError(path, [f"{path}: no such file"])
    choices = choices or {}
    now = utcnow()
    judges = {
        r[0]
        for r in warehouse.rows(
            "SELECT DISTINCT evaluator FROM scores WHERE judge_model IS NOT NULL AND NOT skipped "
            "UNION SELECT DISTINCT judge FROM calibration_items"
        )
    }
    problems = _Problems()
    remove_stale_staging()  # what a killed import left
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-labels-") as tmp:
        staged = Path(tmp)
        stage = _Stage(staged / "staged.jsonl")
        read, unlabelled = _check_rows(path, stage, problems, judges, choices, now)
        counts: dict[str, int] = {}
        notes: list[str] = []
        if stage.rows == 0:
            _raise_if(path, problems)
        else:
            with warehouse.connect() as con:
                warehouse.ingest_spool()  # what the checks read may wait there
                for name, sql in _EXPORTS.items():
                    con.sql(sql, params={"judges": sorted(stage.judges)}).write_parquet(
                        str(staged / f"{name}.parquet")
                    )
                with _work_db(staged) as work:
                    counts, notes = _merge(work, path, staged, problems, source or str(path), now)
                if counts.get("new") or counts.get("replaced"):
                    rows = staged / "human_labels.parquet"
                    warehouse.write({"human_labels": rows}, spool_ok=False)
    return ImportResult(
        path=str(path),
        rows=read,
        inserted=counts.get("new", 0),
        replaced=counts.get("replaced", 0),
        unchanged=counts.get("unchanged", 0),
        kept_stored=counts.get("kept", 0),
        unlabelled=unlabelled,
        notes=notes,
    )


@contextlib.contextmanager
def _work_db(staged: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The import's own DuckDB instance, with views over the staged and exported files."""
    spill = staged / "spill"
    spill.mkdir()
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": WORK_MEMORY,
        "threads": 1,
        "temp_directory": str(spill),
        "preserve_insertion_order": False,
    }
    con = duckdb.connect(":memory:", config=config)
    try:
        columns = ", ".join(f"'{c}': '{t}'" for c, t in _STAGED.items())
        con.execute(
            f"CREATE VIEW staged AS SELECT * FROM read_json({_quoted(staged / 'staged.jsonl')}, "
            f"columns = {{{columns}}}, format = 'newline_delimited')"
        )
        for name in _EXPORTS:
            _view(con, name, staged / f"{name}.parquet")
        yield con
    finally:
        con.close()


def _view(con: duckdb.DuckDBPyConnection, name: str, file: Path) -> None:
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_quoted(file)})")


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _merge(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    staged: Path,
    problems: _Problems,
    source: str,
    now: datetime,
) -> tuple[dict[str, int], list[str]]:
    """Check the staged rows against the warehouse's (raise `LabelFileError` with every
    problem of the file), keep each annotator's latest label of an item, compare it with
    the stored one, and stage the rows to write as `human_labels.parquet`. Returns the
    count per outcome and the notes."""
    for name, sql in (("resolved", _RESOLVE), ("outcome", _OUTCOME)):
        con.sql(sql).write_parquet(str(staged / f"{name}.parquet"))
        _view(con, name, staged / f"{name}.parquet")
        if name == "resolved":
            _unknown(con, path, problems)
            _raise_if(path, problems)
    counts = dict(con.execute("SELECT outcome, count(*) FROM outcome GROUP BY ALL").fetchall())
    if counts.get("new") or counts.get("replaced"):
        con.sql(_WRITE, params={"source": source, "now": now}).write_parquet(
            str(staged / "human_labels.parquet")
        )
    return counts, _notes(con, path)


def _raise_if(path: Path, problems: _Problems) -> None:
    if problems.count:
        shown = [m for _, m in sorted(problems.first)][:MAX_PROBLEMS]
        raise LabelFileError(path, shown, problems.count)


def _unknown(con: duckdb.DuckDBPyConnection, path: Path, problems: _Problems) -> None:
    """Add the rows whose item was not drawn, or whose run the judge did not score."""
    (count,) = con.execute("SELECT count(*) FROM resolved WHERE NOT known").fetchall()[0]
    if not count:
        return
    first = con.execute(
        "SELECT line, by_item, item_id, judge, experiment_id, example_id, repetition "
        "FROM resolved WHERE NOT known ORDER BY line LIMIT ?",
        [MAX_PROBLEMS],
    ).fetchall()
    problems.count += count
    for line, by_item, iid, judge, exp, ex, rep in first:
        where = f"{path}:{line}"
        problems.first.append(
            (
                line,
                f"{where}: item_id {iid!r} was not drawn for judge {judge!r}; give "
                "experiment_id and example_id (and repetition) instead"
                if by_item
                else f"{where}: judge {judge!r} did not score experiment {exp!r} example "
                f"{ex!r} repetition {rep}; check the ids (`evalkeeper experiments`)",
            )
        )


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


_TWICE = """
WITH r AS (SELECT * FROM resolved WHERE rank > 1 ORDER BY line LIMIT $limit)
SELECT greatest(r.line, w.line), least(r.line, w.line), r.annotator, r.item_id, r.judge,
       w.label, w.line
FROM r JOIN resolved w USING (item_id, judge, annotator)
WHERE w.rank = 1
ORDER BY r.line
"""

_AGAINST_STORED = """
SELECT line, annotator, item_id, judge, label, labelled_at, stored_label, stored_at, outcome
FROM outcome WHERE outcome IN ('kept', 'replaced')
ORDER BY line LIMIT $limit
"""


def _notes(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """What was replaced and why: labels given twice in the file, then labels against the
    stored ones; the first `MAX_NOTES` by line, and how many more."""
    (twice, against) = con.execute(
        "SELECT (SELECT count(*) FROM resolved WHERE rank > 1), "
        "(SELECT count(*) FROM outcome WHERE outcome IN ('kept', 'replaced'))"
    ).fetchall()[0]
    notes: list[str] = []
    if twice:
        notes += [
            f"{path}:{line}: {annotator} labelled {iid} ({judge}) twice in this file (also "
            f"line {other}): kept {label!r} from line {kept}, the later one"
            for line, other, annotator, iid, judge, label, kept in con.sql(
                _TWICE, params={"limit": MAX_NOTES}
            ).fetchall()
        ]
    rows = con.sql(_AGAINST_STORED, params={"limit": MAX_NOTES}).fetchall() if against else []
    for line, annotator, iid, judge, label, at, old, old_at, what in rows:
        if what == "kept":
            notes.append(
                f"{path}:{line}: {annotator} labelled {iid} ({judge}) {label!r} at {_iso(at)}, "
                f"before the stored {old!r} ({_iso(old_at)}): kept the stored, later label"
            )
        else:
            notes.append(
                f"{path}:{line}: {annotator} relabelled {iid} ({judge}): {old!r} replaced by "
                f"{label!r}, the latest"
            )
    shown = notes[:MAX_NOTES]
    if twice + against > len(shown):
        shown.append(
            f"{path}: …and {twice + against - len(shown)} more labels replaced or kept as "
            "above (the counts are complete)"
        )
    return shown
