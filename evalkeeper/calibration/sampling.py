"""Draw judged runs for human labels, and write the annotation files.

An item is one judged run (experiment, example, repetition) of one judge version, not drawn
for that judge before. The draw is seeded and stratified by the judge's verdict and the
example's category, with proportional allocation (largest remainders, at least one item
per stratum while the sample allows): the sample keeps the judge's own mix of verdicts, so
agreement on it estimates agreement on the judge's traffic without weights.

Without `n` the size comes from the target interval: the fewest labels whose 95% Wilson
interval at the expected agreement is within `calibration_half_width` (about 200 for plus
or minus 5 points at 85%).

A share of the items (`calibration_double_share`, 20%) gets two copies in the file, for two
different annotators: the human ceiling is measured on them. The files (CSV and JSONL, the
same rows) carry the item's inputs, output, reference and retrieved context, empty
`annotator`, `label` and `note` columns, and never the judge's verdict; filled in, either
file is what `evalkeeper calibrate import` reads.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from evalkeeper.analysis.agreement import labels_for_half_width
from evalkeeper.calibration.models import SampleResult, item_id
from evalkeeper.errors import InputError
from evalkeeper.models import canonical_json, content_hash, utcnow
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.tables import table_frame

ANNOTATION_COLUMNS = (
    "item_id", "judge", "copy", "choices", "annotator", "label", "note", "experiment_id",
    "example_id", "repetition", "category", "inputs", "outputs", "reference_outputs", "context",
)  # fmt: skip

_JUDGED_SQL = """
    SELECT s.experiment_id, s.example_id, s.repetition, s.category,
           s.evaluator_version AS prompt_version, s.judge_model,
           coalesce(json_extract_string(s.details, '$.verdict'),
                    CASE WHEN s.passed THEN 'pass' ELSE 'fail' END) AS verdict,
           CAST(r.outputs AS VARCHAR) AS outputs, CAST(x.inputs AS VARCHAR) AS inputs,
           CAST(x.reference_outputs AS VARCHAR) AS reference_outputs, s.created_at
    FROM scores s
    LEFT JOIN runs r USING (experiment_id, example_id, repetition)
    LEFT JOIN examples x ON x.dataset_version = s.dataset_version AND x.example_id = s.example_id
    WHERE s.evaluator = $1 AND NOT s.skipped AND s.error IS NULL AND s.passed IS NOT NULL
      AND s.judge_model IS NOT NULL AND ($2::TIMESTAMPTZ IS NULL OR s.created_at >= $2)
"""


class SampleError(InputError, ValueError):
    """A sample that cannot be drawn as asked; the message names the fix."""


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of `n` over strata of `sizes` (largest remainders), at least
    one per non-empty stratum when `n` allows, never more than a stratum holds."""
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0:
        return {k: 0 for k in sizes}
    floor = {
        k: 1 if v and n >= len([s for s in sizes.values() if s]) else 0 for k, v in sizes.items()
    }
    rest = n - sum(floor.values())
    room = {k: sizes[k] - floor[k] for k in sizes}
    room_total = sum(room.values())
    quota = {k: rest * room[k] / room_total if room_total else 0.0 for k in sizes}
    alloc = {k: floor[k] + int(quota[k]) for k in sizes}
    by_remainder = sorted(sizes, key=lambda k: (-(quota[k] - int(quota[k])), k))
    i = 0
    while sum(alloc.values()) < n:
        k = by_remainder[i % len(by_remainder)]
        if alloc[k] < sizes[k]:
            alloc[k] += 1
        i += 1
    return alloc


def _context(inputs: Any, outputs: Any) -> Any:
    for source in (outputs, inputs):
        if isinstance(source, dict) and source.get("context"):
            return source["context"]
    return None


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def sample_items(
    warehouse: Warehouse,
    settings: Settings,
    judge: str,
    *,
    n: int | None = None,
    since: datetime | None = None,
    double_share: float | None = None,
    out_dir: Path | None = None,
    choices: tuple[str, ...] = ("pass", "fail"),
) -> SampleResult:
    """Draw items of `judge`'s latest version, write the annotation files, record the items."""
    share = settings.calibration.double_share if double_share is None else double_share
    if not 0 <= share <= 1:
        raise SampleError(f"--double {share}: a share between 0 and 1 (e.g. 0.2)")
    frame = warehouse.query(_JUDGED_SQL, [judge, since])
    if not frame.height:
        where = f" since {since.isoformat()}" if since else ""
        raise SampleError(
            f"judge {judge!r}: no judged runs{where} in {warehouse.path} to draw from. Run a "
            "suite with this judge configured (EVALKEEPER_JUDGE_BASE_URL, EVALKEEPER_JUDGE_MODEL)"
            + (", or use an earlier --since" if since else "")
        )
    latest = frame.sort("created_at").row(-1, named=True)
    version, model = latest["prompt_version"], latest["judge_model"]
    frame = frame.filter(
        (pl.col("prompt_version") == version) & (pl.col("judge_model") == model)
    ).sort(["experiment_id", "example_id", "repetition"])
    drawn = {
        r[0]
        for r in warehouse.rows("SELECT item_id FROM calibration_items WHERE judge = ?", [judge])
    }
    rows = [
        {**r, "item_id": item_id(r["experiment_id"], r["example_id"], r["repetition"])}
        for r in frame.iter_rows(named=True)
    ]
    rows = [r for r in rows if r["item_id"] not in drawn]
    if not rows:
        raise SampleError(
            f"judge {judge!r} (prompt {version}, model {model}): every judged run was drawn "
            "before. Run the suite again for new items, or import the labels you have."
        )
    if n is None:
        n = labels_for_half_width(
            settings.calibration.expected_agreement, settings.calibration.half_width
        )
        sized_by = (
            f"{n} labels for a 95% interval of ±{settings.calibration.half_width * 100:g} points "
            f"at {settings.calibration.expected_agreement:.0%} expected agreement"
        )
    else:
        sized_by = f"--n {n}"
    if n < 1:
        raise SampleError(f"--n {n}: draw at least one item")
    strata: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        strata[f"{r['verdict']}/{r['category']}"].append(r)
    alloc = allocate({k: len(v) for k, v in strata.items()}, n)
    rng = random.Random(f"{settings.seed}:{judge}:{version}:{model}")
    chosen: list[dict[str, Any]] = []
    for key in sorted(strata):
        chosen.extend(rng.sample(strata[key], alloc[key]))
    chosen.sort(key=lambda r: r["item_id"])
    n_double = round(share * len(chosen))
    doubles = {r["item_id"] for r in rng.sample(chosen, n_double)}
    now = utcnow()
    sample_id = (
        f"{now:%Y%m%dT%H%M%SZ}-{content_hash([judge, version, [r['item_id'] for r in chosen]], 8)}"
    )
    lines = _annotation_rows(chosen, doubles, judge, choices)
    out = out_dir or settings.annotations_path
    files = write_annotation_files(lines, out / f"{judge}-{sample_id}")
    warehouse.write(
        {
            "calibration_items": table_frame(
                "calibration_items",
                [
                    {
                        "item_id": r["item_id"],
                        "judge": judge,
                        "prompt_version": version,
                        "judge_model": model,
                        "experiment_id": r["experiment_id"],
                        "example_id": r["example_id"],
                        "repetition": r["repetition"],
                        "category": r["category"],
                        "judge_verdict": r["verdict"],
                        "copies": 2 if r["item_id"] in doubles else 1,
                        "sample_id": sample_id,
                        "sampled_at": now,
                    }
                    for r in chosen
                ],
            )
        }
    )
    return SampleResult(
        sample_id=sample_id,
        judge=judge,
        n_items=len(chosen),
        n_double=n_double,
        n_available=len(rows),
        sized_by=sized_by + ("" if n <= len(rows) else f"; only {len(rows)} available"),
        strata={k: v for k, v in sorted(alloc.items()) if v},
        files=[str(f) for f in files],
    )


def _annotation_rows(
    chosen: list[dict[str, Any]], doubles: set[str], judge: str, choices: tuple[str, ...]
) -> list[dict[str, Any]]:
    lines = []
    for r in chosen:
        inputs, outputs = _loads(r["inputs"]), _loads(r["outputs"])
        for copy in (1, 2) if r["item_id"] in doubles else (1,):
            lines.append(
                {
                    "item_id": r["item_id"],
                    "judge": judge,
                    "copy": copy,
                    "choices": "|".join(choices),
                    "annotator": "",
                    "label": "",
                    "note": "",
                    "experiment_id": r["experiment_id"],
                    "example_id": r["example_id"],
                    "repetition": r["repetition"],
                    "category": r["category"],
                    "inputs": inputs,
                    "outputs": outputs,
                    "reference_outputs": _loads(r["reference_outputs"]),
                    "context": _context(inputs, outputs),
                }
            )
    return lines


def write_annotation_files(lines: list[dict[str, Any]], stem: Path) -> list[Path]:
    """`stem.csv` (JSON text in the structured columns) and `stem.jsonl`, the same rows."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = stem.with_suffix(".csv"), stem.with_suffix(".jsonl")
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=ANNOTATION_COLUMNS)
        writer.writeheader()
        for line in lines:
            writer.writerow(
                {
                    k: (canonical_json(v) if isinstance(v, dict | list) else v)
                    for k, v in line.items()
                }
            )
    with jsonl_path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
    return [csv_path, jsonl_path]


def judges_with_runs(warehouse: Warehouse) -> list[str]:
    """Every judge with scored (judged) runs in the warehouse."""
    return [
        r[0]
        for r in warehouse.rows(
            "SELECT DISTINCT evaluator FROM scores WHERE judge_model IS NOT NULL AND NOT "
            "skipped AND error IS NULL ORDER BY 1"
        )
    ]
