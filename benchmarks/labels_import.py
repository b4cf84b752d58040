"""Peak memory and time of importing 1,000,000 human labels (`evalkeeper calibrate import`).

    uv run python benchmarks/labels_import.py [--labels 1000000] [--annotators 1]
                                              [--base /tmp/labels-base]

A warehouse is built with `--labels / --annotators` runs judged by `factual_match`; the label
file is a CSV of the documented import format (`experiment_id,example_id,repetition,judge,
annotator,label`, about 46 bytes a label). The import runs as the real command in a fresh
child process (`python -m evalkeeper.cli calibrate import FILE --warehouse W`), three times:
into no labels (every label new: the goal's figure), the same file again (every label
unchanged), then the file with every label changed (every stored label replaced). The child's
peak RSS is its `ru_maxrss` from `os.wait4` (interpreter, imports and DuckDB included).
Goal: under 500 MiB for 1 M labels.

`--base DIR` also runs the first import with the code of another checkout (its own `.venv`,
e.g. `git worktree add /tmp/labels-base 8039296 && cd /tmp/labels-base && uv sync --frozen`)
on a copy of the same warehouse, and reports the ratio of the two peaks.

Prints a table (labels, file MB, peak MiB, seconds, labels/s per run), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, table

from evalkeeper.warehouse import Warehouse

GOAL_MIB = 500.0
JUDGE = "factual_match"


def build_warehouse(path: Path, runs: int) -> None:
    """`runs` runs of one experiment, each judged by JUDGE (a judge model pinned)."""
    with Warehouse(path).connect(checkpoint=True) as con:
        con.execute(
            f"""
            INSERT INTO scores
            SELECT 'bench', 'ex-' || lpad(i::VARCHAR, 7, '0'), 0, '{JUDGE}', 'v1', 'h', 1.0,
                   (hash(i) % 100) >= 20, 'reasoning', NULL, false, NULL,
                   TIMESTAMPTZ '2026-11-01 00:00:00+00', 'dv', 'cat-' || (i % 6),
                   'bench:target', NULL, NULL, 'bench-judge-2026-01-01', 'abc'
            FROM range({runs}) r(i)
            """
        )


def write_labels(path: Path, runs: int, annotators: int, *, flip: bool = False) -> int:
    """The label file: every run labelled by each annotator (`flip`: every label the
    other way). Returns the labels written."""
    n = 0
    with path.open("w", newline="") as fh:
        fh.write("experiment_id,example_id,repetition,judge,annotator,label\n")
        for a in range(annotators):
            lines = []
            for i in range(runs):
                label = "fail" if ((i * 7 + a) % 5 == 0) != flip else "pass"
                lines.append(f"bench,ex-{i:07d},0,{JUDGE},ann-{a + 1},{label}\n")
            fh.writelines(lines)
            n += runs
    return n


def import_once(python: Path, cwd: Path, labels: Path, warehouse: Path) -> dict[str, Any]:
    """One `calibrate import` in a fresh child: its exit code, wall time and peak RSS."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("VIRTUAL_ENV", None)
    cmd = [str(python), "-m", "evalkeeper.cli", "calibrate", "import", str(labels)]
    cmd += ["--warehouse", str(warehouse)]
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.stderr.write(text)
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
    stored = Warehouse(warehouse).rows("SELECT count(*) FROM human_labels")[0][0]
    return {
        "peak_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "seconds": wall,
        "stored": int(stored),
        "said": text.strip().splitlines()[-1] if text.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--annotators", type=int, default=1, help="labels per judged run")
    parser.add_argument(
        "--base", type=Path, help="a checkout of the code to compare with (with its .venv)"
    )
    args = parser.parse_args()
    runs = args.labels // args.annotators
    with tempfile.TemporaryDirectory(prefix="evalkeeper-bench-labels-") as tmp:
        d = Path(tmp)
        template = d / "template.duckdb"
        build_warehouse(template, runs)
        labels = d / "labels.csv"
        n = write_labels(labels, runs, args.annotators)
        file_mb = labels.stat().st_size / 1e6
        python = Path(sys.executable)
        results: list[tuple[str, dict[str, Any]]] = []
        wh = d / "w.duckdb"
        shutil.copy(template, wh)
        results.append(("new labels", import_once(python, ROOT, labels, wh)))
        results.append(("same file again", import_once(python, ROOT, labels, wh)))
        flipped = d / "flipped.csv"
        write_labels(flipped, runs, args.annotators, flip=True)
        results.append(("every label changed", import_once(python, ROOT, flipped, wh)))
        base: dict[str, Any] | None = None
        if args.base is not None:
            base_wh = d / "base.duckdb"
            shutil.copy(template, base_wh)
            base_python = args.base.resolve() / ".venv" / "bin" / "python"
            base = import_once(base_python, args.base.resolve(), labels, base_wh)
            results.append((f"new labels, {args.base}", base))
    for name, r in results:
        assert r["stored"] == n, (name, r)
    print(f"labels import: {n:,} labels ({file_mb:,.1f} MB of CSV), {runs:,} judged runs\n")
    print(
        table(
            ["run", "labels", "file MB", "peak MiB", "seconds", "labels/s"],
            [
                [name, n, file_mb, r["peak_mib"], r["seconds"], round(n / r["seconds"])]
                for name, r in results
            ],
        )
    )
    first = results[0][1]
    peak = results[0][1]["peak_mib"]
    print(f"\nthe import said: {first['said']}")
    print(
        f"peak RSS {peak:,.0f} MiB (goal < {GOAL_MIB:,.0f} MiB: {'met' if peak < GOAL_MIB else 'MISSED'})"
    )
    summary: dict[str, Any] = {
        "labels": n,
        "file_mb": round(file_mb, 1),
        "peak_mib": round(peak, 1),
        "seconds": round(first["seconds"], 2),
        "labels_per_s": round(n / first["seconds"]),
        "again_peak_mib": round(results[1][1]["peak_mib"], 1),
        "again_seconds": round(results[1][1]["seconds"], 2),
        "changed_peak_mib": round(results[2][1]["peak_mib"], 1),
        "changed_seconds": round(results[2][1]["seconds"], 2),
        "goal_mib": GOAL_MIB,
    }
    if base is not None:
        summary["base_peak_mib"] = round(base["peak_mib"], 1)
        summary["base_seconds"] = round(base["seconds"], 2)
        summary["peak_ratio_vs_base"] = round(peak / base["peak_mib"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
