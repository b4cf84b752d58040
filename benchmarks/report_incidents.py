"""Benchmark the experiment report: its size and its time for a large comparison.

    uv run python benchmarks/report_incidents.py [--path DIR] [--days 30] [--pair-examples 10000]
                                       [--critical-every 5]

Builds the warehouse of `benchmarks/analysis.py` (nightly runs of the same suite and dataset
for the history, and two experiments of 10,000 examples x 5 evaluators x 3 repetitions), then
makes one example in `--critical-every` critical, passing in the baseline and failing in the
candidate on `ev1`: thousands of failed incident rows, the worst case for the report's size.
Times `compare`, building the page, writing it and loading it in headless Chromium (the
system's `chromium`, from `file://`, network blocked), prints a table and ends with one JSON
line: ``{"report_mib": …, "build_s": …, "write_s": …, "load_s": …, "cells": …,
"failed_rows": …}``. Goals: under 5 MiB, loaded in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.analysis import build
from evalkeeper.analysis import compare
from evalkeeper.report.html.experiment import build_experiment_report
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

MORE_CRITICAL_SQL = """
UPDATE examples SET critical = true
WHERE dataset = 'bench' AND dataset_version = 'v2'
  AND CAST(substr(example_id, 5) AS INTEGER) % {every} = 0;
UPDATE scores SET passed = (experiment_id = 'pair-base'), error = NULL,
       comment = CASE WHEN experiment_id = 'pair-base' THEN 'ok' ELSE 'wrong slot' END
WHERE evaluator = 'ev1' AND experiment_id IN ('pair-base', 'pair-cand')
  AND CAST(substr(example_id, 5) AS INTEGER) % {every} = 0;
"""


def load_seconds(path: Path) -> float:
    """Seconds from navigation to the `load` event in headless Chromium, from disk."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    url = path.resolve().as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
            t = time.perf_counter()
            page.goto(url, wait_until="load")
            return time.perf_counter() - t
        finally:
            browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--path", type=Path, help="directory for the warehouse (default: a temp dir)")
    ap.add_argument("--days", type=int, default=30, help="nightly runs for the history")
    ap.add_argument("--pair-examples", type=int, default=10_000)
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--critical-every", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="evalkeeper-report-")) if args.path is None else args.path
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "bench.duckdb"
    path.unlink(missing_ok=True)
    try:
        build(
            path,
            days=args.days,
            nightly_examples=2000,
            pair_examples=args.pair_examples,
            reps=args.repetitions,
        )
        wh = Warehouse(path)
        with wh.connect() as con:
            con.execute(MORE_CRITICAL_SQL.format(every=args.critical_every))
        settings = Settings(warehouse=path, _env_file=None)

        t = time.perf_counter()
        comparison = compare(Warehouse(path), "pair-cand", "pair-base", settings)
        compare_s = time.perf_counter() - t
        t = time.perf_counter()
        page = build_experiment_report(
            Warehouse(path), "pair-cand", settings=settings, comparison=comparison
        )
        html = page.render()
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        out = page.write(tmp / "report.html")
        write_s = time.perf_counter() - t
        load_s = load_seconds(out)
        mib = out.stat().st_size / 2**20

        table = Table(title="evalkeeper experiment report benchmark")
        for col in ("what", "value", "goal"):
            table.add_column(col, justify="left" if col == "what" else "right")
        table.add_row(
            "comparison",
            f"{args.pair_examples:,} examples x 5 evaluators x {args.repetitions} reps; "
            f"{len(comparison.cells)} cells; {len(comparison.row_regressions):,} failed rows",
            "",
        )
        table.add_row("compare", f"{compare_s:.3f} s", "")
        table.add_row("build the page (sections, charts to SVG)", f"{build_s:.3f} s", "")
        table.add_row("write", f"{write_s:.3f} s", "")
        table.add_row("load in Chromium (file://)", f"{load_s:.3f} s", "< 2 s")
        table.add_row("report size", f"{mib:.2f} MiB ({len(html):,} characters)", "< 5 MiB")
        Console(width=120).print(table)
        print(
            json.dumps(
                {
                    "report_mib": round(mib, 3),
                    "compare_s": round(compare_s, 3),
                    "build_s": round(build_s, 3),
                    "write_s": round(write_s, 3),
                    "load_s": round(load_s, 3),
                    "cells": len(comparison.cells),
                    "failed_rows": len(comparison.row_regressions),
                }
            )
        )
    finally:
        if args.path is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
