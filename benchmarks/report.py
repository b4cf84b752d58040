"""Benchmark the experiment report: build time, file size and render time in a browser.

    uv run python benchmarks/report.py [--path DIR [--keep] [--reuse]] [--examples 10000]

Builds a warehouse with DuckDB SQL alone (`range()` cross joins, deterministic `hash()`
outcomes; no Python loops over rows), shaped like a real suite:

* 20 completed runs of one suite and dataset, a night apart, of 10,000 examples x 5
  evaluators (3 rule-based, 2 LLM judges): 200,000 target runs with JSON outputs and
  latencies (a few errors and slow outliers), 1,000,000 score rows (most rows stable,
  about 1 in 10 flaky between runs), and each judged row's 2-3 votes in `judge_votes`
  (tokens, cost, 70% answered from the cache after the first night, a few errors);
* the last two runs are the baseline and the candidate (`auto` finds it), the candidate
  slower and worse on one category for one judge.

Then times `evalkeeper report CANDIDATE` as a user runs it (a fresh process: start-up,
compare, the sections, the write), the same in-process by phase, and the render in headless
Chromium (Debian's `chromium`, network blocked: the `load` event, from navigation start);
prints a table and ends with one JSON line:
``{"report_s": …, "build_s": …, "render_ms": …, "size_kib": …, …}``.
Goals: the file under 5 MB, rendered in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `uv run python benchmarks/report.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_warehouse  # noqa: E402
from evalkeeper.settings import Settings  # noqa: E402
from evalkeeper.warehouse import Warehouse  # noqa: E402

RUNS = 20
EVALUATORS = ("exact_match", "tool_call_correct", "latency_ok", "factual_match", "tone_appropriate")
JUDGES = (3, 4)  # indexes into EVALUATORS
CATEGORIES = "['booking', 'cancellation', 'policy', 'billing', 'small_talk', 'escalation']"

BUILD_SQL = """
INSERT INTO examples
SELECT 'appointments', 'v1', 'ex-' || lpad(CAST(e AS VARCHAR), 5, '0'), 'h' || e,
       {cats}[1 + e % 6], e % 500 = 0, CASE WHEN e % 1000 = 0 THEN 'INC-' || e END,
       '{{"message": "I need to move my appointment ' || e || ' to next week"}}',
       '{{"reply": "Moved to Tuesday 10:00 CET", "tool_calls": []}}', '{{}}'
FROM range({examples}) t(e);

CREATE TEMP TABLE nights AS
SELECT 'nightly-' || lpad(CAST(d AS VARCHAR), 2, '0') AS experiment_id, d AS night,
       d = {runs} - 1 AS cand,
       TIMESTAMPTZ '2026-11-01 02:00:00+00' + d * INTERVAL 1 DAY AS started_at
FROM range({runs}) t(d);

INSERT INTO experiments
SELECT experiment_id, 'full', 'appointments', 'v1', 'agent.app:run', 'callable',
       'agent-' || night, 'gpt-4o-2024-08-06', 'c0ffee' || night, 'main',
       '{evaluators_json}', 1, '{{}}', {examples}, 'completed', started_at,
       started_at + INTERVAL 40 MINUTE
FROM nights;

-- the target: ~0.3% errors, a right-skewed latency around 0.3-1 s with rare slow outliers,
-- the candidate 80 ms slower
INSERT INTO runs
SELECT n.experiment_id, 'ex-' || lpad(CAST(e AS VARCHAR), 5, '0'), 0,
       CASE WHEN hash(n.night, e, 'err') % 1000 >= 3 THEN
         '{{"reply": "Your appointment ' || e || ' is moved to Tuesday 10:00 CET. You will '
         || 'get a confirmation by email.", "tool_calls": [{{"name": "move_booking", '
         || '"args": {{"booking": "B' || e || '", "slot": "2026-11-1' || (e % 9) || 'T10:00"}}}}]}}'
       END,
       CASE WHEN hash(n.night, e, 'err') % 1000 >= 3 THEN
         CASE WHEN hash(n.night, e, 'slow') % 500 = 0 THEN 4000.0 + hash(n.night, e) % 3000
              ELSE 300.0 + power(hash(n.night, e, 'lat') % 1000, 2) / 1500.0
                   + CASE WHEN n.cand THEN 80 ELSE 0 END END
       END,
       CASE WHEN hash(n.night, e, 'err') % 1000 < 3 THEN 'HTTP 503 from upstream' END,
       1, n.started_at
FROM nights n, range({examples}) t(e);

-- An (example, evaluator) passes for good (85%), fails for good (5%) or is flaky (10%);
-- the candidate loses 'billing' on factual_match.
INSERT INTO scores
SELECT r.experiment_id, r.example_id, 0, ev.name, '1', 'h',
       CASE WHEN r.error IS NULL THEN CAST(ok AS DOUBLE) END,
       CASE WHEN r.error IS NULL THEN ok END,
       CASE WHEN r.error IS NULL AND NOT ok THEN 'the reply names the wrong slot' END,
       CASE WHEN r.error IS NOT NULL THEN 'target failed: ' || r.error END,
       false, NULL, n.started_at, 'v1', {cats}[1 + e % 6], 'agent.app:run',
       'agent-' || n.night, 'gpt-4o-2024-08-06',
       CASE WHEN ev.k IN (3, 4) THEN 'gpt-4o-mini-2024-07-18' END, 'c0ffee' || n.night
FROM (
    SELECT r.*, CAST(substr(r.example_id, 4) AS INTEGER) AS e FROM runs r
) r
JOIN nights n USING (experiment_id),
(SELECT unnest({evaluators}) AS name, generate_subscripts({evaluators}, 1) - 1 AS k) ev,
LATERAL (SELECT CASE
    WHEN n.cand AND ev.k = 3 AND r.e % 6 = 3 AND hash(r.e, 'drop') % 100 < 30 THEN false
    WHEN hash(r.e, ev.k) % 100 < 85 THEN true
    WHEN hash(r.e, ev.k) % 100 < 90 THEN false
    ELSE hash(r.e, ev.k, n.night) % 2 = 0 END AS ok) o;

-- each judged row's votes: 2 (agreeing) or 3; after the first night 70% come from the cache
INSERT INTO judge_votes
SELECT s.experiment_id, s.example_id, 0, s.evaluator, 'gpt-4o-mini-2024-07-18', 'p1', v,
       CASE WHEN NOT err THEN CASE WHEN s.passed THEN 'pass' ELSE 'fail' END END,
       CASE WHEN NOT err THEN 'The reply states the slot of the reference.' END,
       CASE WHEN NOT err THEN 400.0 + hash(s.example_id, v) % 900 END,
       CASE WHEN NOT err THEN pt END, CASE WHEN NOT err THEN ct END,
       CASE WHEN NOT err THEN (pt * 0.15 + ct * 0.60) / 1e6 END,
       cached, md5(s.example_id || s.evaluator || v),
       CASE WHEN err THEN 'HTTP 500 from the judge endpoint' END, s.created_at
FROM scores s JOIN nights n USING (experiment_id),
LATERAL (SELECT unnest(range(CASE WHEN hash(s.example_id, s.evaluator) % 5 = 0
                                  THEN 3 ELSE 2 END)) AS v) votes,
LATERAL (SELECT 600 + hash(s.example_id, s.evaluator, v) % 400 AS pt,
                60 + hash(s.example_id, s.evaluator, v, 'c') % 40 AS ct,
                n.night > 0 AND hash(s.example_id, s.evaluator, n.night, v) % 10 < 7 AS cached,
                hash(s.example_id, s.evaluator, n.night, v, 'e') % 1000 < 2 AS err) x
WHERE s.judge_model IS NOT NULL AND s.error IS NULL;
"""


def build(path: Path, *, examples: int, runs: int) -> float:
    wh = Warehouse(path)
    names = "[" + ", ".join(f"'{e}'" for e in EVALUATORS) + "]"
    sql = BUILD_SQL.format(
        examples=examples,
        runs=runs,
        cats=CATEGORIES,
        evaluators=names,
        evaluators_json=json.dumps([{"name": e} for e in EVALUATORS]),
    )
    t = time.perf_counter()
    with wh.connect() as con:  # creates the schema (migrations + views)
        con.execute(sql)
        con.execute("CHECKPOINT")
    return time.perf_counter() - t


def cli(path: Path, experiment: str, out: Path) -> float:
    """`evalkeeper report EXPERIMENT --out OUT` in a fresh process; its wall time."""
    exe = Path(sys.executable).with_name("evalkeeper")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "evalkeeper.entry"]
    env = {**os.environ, "EVALKEEPER_WAREHOUSE": str(path)}
    t = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "report", experiment, "--out", str(out)], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"evalkeeper report failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def phases(path: Path, experiment: str, out: Path) -> dict[str, tuple[float, float]]:
    """The same report in this process (imports already paid), timed by phase: name ->
    (wall s, CPU s of the process, DuckDB's threads included). The history module's queries
    and the chart renders are timed one by one (`Phases` wraps them for the call)."""
    from benchmarks._common import Phases
    from evalkeeper.analysis import compare
    from evalkeeper.report.html import charts
    from evalkeeper.report.html.experiment import build_experiment_report
    from evalkeeper.warehouse import history as wh_history

    settings = Settings(warehouse=path, _env_file=None)  # type: ignore[call-arg]
    timed: dict[str, tuple[float, float]] = {}

    def clock(name: str, fn: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        timed[name] = (time.perf_counter() - t, time.process_time() - c)
        return result

    comparison = clock("compare", lambda: compare(Warehouse(path), experiment, "auto", settings))
    inner = Phases()
    names = ("history_runs", "pass_rates", "flips", "latency_bins", "judge_usage")
    originals = {n: getattr(wh_history, n) for n in names}
    original_svg = charts.to_svg
    for n in names:
        setattr(wh_history, n, inner.wrap(f"  SQL: {n}", originals[n]))
    charts.to_svg = inner.wrap("  charts: vl-convert to SVG", original_svg)
    try:
        page = clock(
            "sections",
            lambda: build_experiment_report(
                Warehouse(path), experiment, settings=settings, comparison=comparison
            ),
        )
    finally:
        for n in names:
            setattr(wh_history, n, originals[n])
        charts.to_svg = original_svg
    for name, secs in inner.seconds.items():
        timed[name] = (secs, float("nan"))
    clock("render + write", lambda: page.write(out))
    return timed


def render(report: Path, repeat: int) -> list[float]:
    """Milliseconds from navigation start to the end of the `load` event, per opening, in
    headless Chromium from file:// with every other request blocked."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("EVALKEEPER_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    url = report.resolve().as_uri()
    out: list[float] = []
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for _ in range(repeat):
                context = browser.new_context(viewport={"width": 1280, "height": 900})

                def route(r: Any) -> None:
                    if r.request.url == url:
                        r.continue_()
                    else:
                        blocked.append(r.request.url)
                        r.abort()

                context.route("**/*", route)
                page = context.new_page()
                page.goto(url, wait_until="load")
                nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
                out.append(float(json.loads(nav)["loadEventEnd"]))
                context.close()
        finally:
            browser.close()
    if blocked:
        raise SystemExit(f"the report asked the network for {blocked[:3]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--path", type=Path, help="directory for the warehouse (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the warehouse and the report")
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=RUNS, help="runs of the suite, candidate last")
    ap.add_argument("--repeat", type=int, default=3, help="timed reports and renders")
    ap.add_argument(
        "--reuse", action="store_true", help="time an existing --path warehouse, do not rebuild"
    )
    args = ap.parse_args()

    tmp, path, reuse = bench_warehouse(args.path, args.reuse)
    candidate = f"nightly-{args.runs - 1:02d}"
    report = tmp / f"experiment-{candidate}.html"
    console = Console(width=120)
    try:
        build_s = None if reuse else build(path, examples=args.examples, runs=args.runs)
        scores, runs, votes = Warehouse(path).rows(
            "SELECT (SELECT count(*) FROM scores), (SELECT count(*) FROM runs), "
            "(SELECT count(*) FROM judge_votes)"
        )[0]
        cli_times = [cli(path, candidate, report) for _ in range(args.repeat)]
        size = report.stat().st_size
        by_phase = phases(path, candidate, tmp / "in-process.html")
        render_ms = render(report, args.repeat)

        report_s = statistics.median(cli_times)
        render_med = statistics.median(render_ms)
        table = Table(title="evalkeeper experiment report benchmark")
        for col in ("what", "size", "median", "min", "max", "goal"):
            table.add_column(col, justify="left" if col in ("what", "size") else "right")
        if build_s is not None:
            table.add_row("build the warehouse (SQL)", "", f"{build_s:.2f} s", "", "", "")
        table.add_row(
            f"evalkeeper report {candidate} (fresh process)",
            f"{args.examples:,} examples x {len(EVALUATORS)} evaluators, {args.runs} runs",
            f"{report_s:.2f} s",
            f"{min(cli_times):.2f} s",
            f"{max(cli_times):.2f} s",
            "",
        )
        for name, (secs, cpu) in by_phase.items():
            table.add_row(
                f"  in process: {name}",
                "" if cpu != cpu else f"CPU {cpu:.2f} s",
                f"{secs:.3f} s",
                "",
                "",
                "",
            )
        table.add_row(
            "render in headless Chromium (load event)",
            "",
            f"{render_med:.0f} ms",
            f"{min(render_ms):.0f} ms",
            f"{max(render_ms):.0f} ms",
            "< 2 s",
        )
        table.add_row("report file", f"{size / 1024:,.0f} KiB", "", "", "", "< 5 MB")
        table.add_row(
            "warehouse",
            f"{scores:,} scores, {runs:,} runs, {votes:,} judge votes",
            f"{path.stat().st_size / 2**20:.0f} MiB",
            "",
            "",
            "",
        )
        console.print(table)
        print(
            json.dumps(
                {
                    "report_s": round(report_s, 3),
                    "build_s": round(
                        sum(by_phase[k][0] for k in ("compare", "sections", "render + write")), 3
                    ),
                    "sections_s": round(by_phase["sections"][0], 3),
                    "render_ms": round(render_med, 1),
                    "size_kib": round(size / 1024, 1),
                    "score_rows": int(scores),
                    "size_ok": size < 5_000_000,
                    "render_ok": render_med < 2000,
                }
            )
        )
    finally:
        if args.path is None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.path is None:
            console.print(f"kept: {tmp}", highlight=False)


if __name__ == "__main__":
    main()
