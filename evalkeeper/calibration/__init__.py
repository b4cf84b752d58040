"""Judge calibration: draw judged runs for human labels, import the labels, measure each
judge version's agreement with the humans, and retire the judges below the bar.

Public API:

* ``sample_items(warehouse, settings, judge, *, n=None, since=None, double_share=None,
  out_dir=None, choices=("pass", "fail")) -> SampleResult`` — a seeded, stratified draw;
  writes the annotation files (CSV and JSONL) and records the items.
* ``import_labels(warehouse, path, *, choices=None, source=None) -> ImportResult`` — all
  or nothing; raises `LabelFileError` with `path:line` messages.
* ``measure(warehouse, settings, *, judge=None, quarter=None, choices=None)
  -> list[JudgeCalibration]`` — every coefficient, the ceiling, the constant-answer
  baseline, the decided status and the rule that decided it.
* ``record(warehouse, calibrations) -> list[JudgeCalibration]`` — stores the measurements,
  the status history and each judge's current status (what gates read).
* ``judges_with_runs(warehouse) -> list[str]`` — the judges that scored something.
* ``status_history(warehouse, judge=None) -> list[StatusChange]``.
* ``retired_since(warehouse, since) -> list[StatusChange]`` — the versions retired since
  then (what the calibration flow alerts on).

The statistics themselves are in `evalkeeper.analysis.agreement`. Which judges are retired
now is a question to the warehouse: `evalkeeper.warehouse.queries.retired_judges`.
"""

from evalkeeper.calibration.labels import LabelFileError, import_labels
from evalkeeper.calibration.measure import measure
from evalkeeper.calibration.models import (
    STATUSES,
    Ceiling,
    Disagreement,
    ImportResult,
    JudgeCalibration,
    JudgeVersion,
    SampleResult,
    Status,
    StatusChange,
    item_id,
    previous_quarter,
    quarter_bounds,
    quarter_of,
)
from evalkeeper.calibration.sampling import SampleError, judges_with_runs, sample_items
from evalkeeper.calibration.status import (
    Rule,
    current_statuses,
    decide,
    record,
    retired_since,
    rule_of,
    status_history,
)

__all__ = [
    "STATUSES",
    "Ceiling",
    "Disagreement",
    "ImportResult",
    "JudgeCalibration",
    "JudgeVersion",
    "LabelFileError",
    "Rule",
    "SampleError",
    "SampleResult",
    "Status",
    "StatusChange",
    "current_statuses",
    "decide",
    "import_labels",
    "item_id",
    "judges_with_runs",
    "measure",
    "previous_quarter",
    "quarter_bounds",
    "quarter_of",
    "record",
    "retired_since",
    "rule_of",
    "sample_items",
    "status_history",
]
