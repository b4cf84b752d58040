"""Benchmark a smoke run while an analyst holds the warehouse open read-only.

    uv run python benchmarks/spool_wait.py [--lock-wait 10] [--repeat 1]

`evalkeeper run --dataset appointments --suite smoke --target evalkeeper.demo.agent:v1
--json` runs as a child process (as a user types it) on a fresh warehouse in a temporary
folder, after a first run has recorded the dataset's examples:

* **free**: nobody else has the file open;
* **analyst**: another process holds `duckdb.connect(path, read_only=True)` open (a
  notebook) for longer than the run, so every write of the run goes to the spool.

It prints the wall time of each, the lock wait (`EVALKEEPER_LOCK_WAIT_S`), the batches the
run reported as spooled and the batches in the spool folder. The goal: the analyst's run
costs at most the lock wait more than the free one (the wait is paid once, not once per
batch), and reports every batch it spooled. The JSON line ends the output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import ROOT, table

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM runs").fetchall()
print("holding", flush=True)
time.sleep(3600)
"""

RUN = [
    "run",
    "--dataset",
    "appointments",
    "--suite",
    "smoke",
    "--target",
    "evalkeeper.demo.agent:v1",
    "--json",
]


def _run(env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "evalkeeper.cli", *RUN],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock-wait", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rows = []
    results: dict[str, list[float]] = {"free": [], "analyst": []}
    spooled: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="spool-wait-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        env = {
            **os.environ,
            "EVALKEEPER_WAREHOUSE": str(warehouse),
            "EVALKEEPER_LOCK_WAIT_S": str(args.lock_wait),
            "EVALKEEPER_GIT_COMMIT": "benchmark",
            "EVALKEEPER_GIT_BRANCH": "benchmark",
        }
        _run(env)  # the examples are recorded; the warehouse exists
        spool = Path(f"{warehouse}.spool")
        for i in range(args.repeat):
            wall, _ = _run(env)
            results["free"].append(wall)
            rows.append((i, "free", wall, "-", "-"))
            analyst = subprocess.Popen(
                [sys.executable, "-c", HOLD, str(warehouse)], stdout=subprocess.PIPE, text=True
            )
            try:
                assert analyst.stdout is not None and analyst.stdout.readline().strip()
                wall, summary = _run(env)
                in_folder = sum(1 for p in spool.iterdir() if p.is_dir()) if spool.is_dir() else 0
            finally:
                analyst.kill()
                analyst.wait()
            results["analyst"].append(wall)
            spooled.append((summary["spooled_batches"], in_folder))
            rows.append((i, "analyst", wall, summary["spooled_batches"], in_folder))
            _run(env)  # the next writer ingests the spool
    print(f"lock wait {args.lock_wait:g} s")
    print(table(["round", "warehouse", "wall_s", "reported_spooled", "in_spool"], rows))
    free = min(results["free"])
    held = max(results["analyst"])
    print(
        json.dumps(
            {
                "lock_wait_s": args.lock_wait,
                "free_run_s": round(free, 2),
                "analyst_run_s": round(held, 2),
                "extra_s": round(held - free, 2),
                "reported_spooled": [s[0] for s in spooled],
                "in_spool": [s[1] for s in spooled],
            }
        )
    )


if __name__ == "__main__":
    main()
