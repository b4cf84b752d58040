"""Throughput of a suite whose shards run as flow runs on 1, 2 and 4 process workers.

    uv run python benchmarks/scale.py                      # the full run (~15 min here)
    uv run python benchmarks/scale.py --quick              # a short smoke (small suites)
    uv run python benchmarks/scale.py --cpu-examples 3000 --latency-examples 6000 \
        --workers 1,2,4 --concurrency 4 [--shards N] [--keep DIR]

Starts a real `prefect server start` (127.0.0.1, SQLite, `tests/prefect_server.py`),
creates the `evalkeeper-process` pool and deploys `suite-shard` (prefect.yaml). For each
target (`benchmarks/scale_targets.py`: `cpu`, 20 ms of pure-Python CPU per example, and
`latency`, a 100 ms sleep) it runs the `nightly` flow (its own process, as a deployment
would) on one warehouse and one dataset:

1. `base`: the target at no cost, in-process: the baseline every other run is judged on.
2. `inproc`: the suite in-process (no shard deployment): the reference rows and verdict.
3. For each worker count W: W process workers (`--limit 1`: one shard run at a time each,
   a worker standing for a machine), started and polling before the parent starts; the
   parent runs the suite with `--shards` shards (default: W) as `suite-shard` flow runs,
   rows through a local results directory, then ingests, compares and publishes.

Per run it prints the parent's wall (the nightly flow run's start to end, on the server)
and the span from the first shard run's start to the last one's end, each shard run's
cost (its creation to Running, and its run time), the parent's head (start to the first
shard created) and tail (last shard end to the parent's end: ingest, finish, compare,
report), and checks that the score rows by (example, evaluator, repetition) -> (value,
passed) and the verdict equal the in-process run's. Throughput is rows per second; the
goals (cpu: 2 workers >= 1.8x one worker; latency: 4 workers >= 3.5x) are judged on the
span, the shards' work, and the parent-wall ratio is printed beside it. The per-worker
concurrency cap is EVALKEEPER_CONCURRENCY (`--concurrency`), which the experiment records
and every shard run takes. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import table  # noqa: E402
from benchmarks.targets import write_dataset  # noqa: E402

POOL = "evalkeeper-process"
EVALUATORS_TOML = """\
[[evaluators]]
name = "exact_match"
args = { key = "reply" }

[[evaluators]]
name = "tool_call_correct"
"""
# the nightly flow in its own process; a non-pass verdict comes back as the state's error
PARENT = """
import asyncio, json, sys
from flows.nightly import nightly, VerdictNotPass
dataset, datasets_dir, target, experiment, warehouse, shards = sys.argv[1:7]
state = asyncio.run(nightly(suite="full", dataset=dataset, target=target, experiment=experiment,
                            repetitions=1, baseline=sys.argv[7], warehouse=warehouse,
                            datasets_dir=datasets_dir, shards=int(shards), return_state=True))
result = state.result(raise_on_failure=False)
if isinstance(result, VerdictNotPass):
    result = result.result
if isinstance(result, BaseException):
    raise result
print("RESULT " + json.dumps({"rows": result["rows"], "verdict": result.get("verdict"),
                              "status": result["experiment"]["status"]}), flush=True)
"""


def _secs(a: Any, b: Any) -> float:
    return float((b - a).total_seconds())


class Bench:
    def __init__(self, server: Any, work: Path, concurrency: int) -> None:
        self.server = server
        self.work = work
        self.concurrency = concurrency
        self.procs: list[Any] = []

    def parent(
        self, label: str, dataset: Path, target: str, exp: str, shards: int,
        env: dict[str, str], baseline: str,
    ) -> dict[str, Any]:  # fmt: skip
        """Run the nightly flow in its own process to its end; its result line."""
        from tests.prefect_server import start, stop

        procs: list[Any] = []
        args = ["-c", PARENT, dataset.stem, str(dataset.parent), target, exp]
        args += [str(self.work / f"{dataset.stem}.duckdb"), str(shards), baseline]
        log = start(self.server, procs, self.work / f"{exp}-{dataset.stem}.log", label, args, {
            "EVALKEEPER_CONCURRENCY": str(self.concurrency),
            "EVALKEEPER_GIT_BRANCH": "main",
            "EVALKEEPER_GIT_COMMIT": "0123456789abcdef",
            "EVALKEEPER_JUDGE_SHARED_LIMITS": "false",
            **env,
        })  # fmt: skip
        t0 = time.monotonic()
        try:
            code = procs[0].wait(timeout=3600)
        finally:
            stop(procs[0])
        wall = time.monotonic() - t0
        out = log.read_text(errors="replace")
        if code != 0 or "RESULT " not in out:
            raise SystemExit(f"{label}: exit {code}\n{out[-6000:]}\n{self.server.report()}")
        result: dict[str, Any] = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
        result["process_wall_s"] = wall
        return result

    def workers(self, n: int, env: dict[str, str]) -> list[Any]:
        """`n` process workers, each one shard run at a time, polling before it returns."""
        from tests.prefect_server import start

        procs: list[Any] = []
        tag = f"w{n}-{int(time.time())}"
        for i in range(n):
            args = ["-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"]
            args += ["--limit", "1", "--name", f"{tag}-{i}"]
            start(self.server, procs, self.work / f"{tag}-{i}.log", f"{tag}-{i}", args, env)
        deadline = time.monotonic() + 300
        with self.server.client() as client:
            while True:
                names = {w.name for w in client.read_workers_for_work_pool(POOL)}
                if all(f"{tag}-{i}" in names for i in range(n)):
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"workers {tag} not polling\n{self.server.report()}")
                time.sleep(0.5)
        return procs

    def runs(self, exp: str) -> tuple[Any, list[Any]]:
        """The parent's nightly flow run and its completed shard runs, from the server."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

        with self.server.client() as client:
            parent = [
                fr
                for fr in client.read_flow_runs(limit=200)
                if fr.parameters.get("experiment") == exp and fr.parent_task_run_id is None
            ]
            shards = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"{exp}-shard-")),
                limit=200,
            )
        return parent[-1], [fr for fr in shards if fr.state is not None and fr.state.is_completed()]


def scores(warehouse: Path, exp: str) -> dict[tuple[str, str, int], tuple[Any, Any]]:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT example_id, evaluator, repetition, value, passed FROM scores "
            "WHERE experiment_id = ?",
            [exp],
        ).fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-examples", type=int, default=3000)
    ap.add_argument("--latency-examples", type=int, default=6000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--shards", type=int, default=0, help="shards per run (default: workers)")
    ap.add_argument("--targets", default="cpu,latency")
    ap.add_argument("--quick", action="store_true", help="small suites, a smoke")
    ap.add_argument("--keep", type=Path, help="work in DIR and keep it (logs, warehouses)")
    a = ap.parse_args()
    if a.quick:
        a.cpu_examples, a.latency_examples = 200, 200
    counts = [int(w) for w in a.workers.split(",")]
    sizes = {"cpu": a.cpu_examples, "latency": a.latency_examples}
    goals = {"cpu": (2, 1.8), "latency": (4, 3.5)}

    from tests.prefect_server import cli, prefect_server, stop

    work = a.keep or Path(tempfile.mkdtemp(prefix="evalkeeper-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.pop("PREFECT_API_URL", None)
    rows_out: list[list[Any]] = []
    shard_rows: list[list[Any]] = []
    summary: dict[str, Any] = {"examples": sizes, "concurrency": a.concurrency, "targets": {}}
    with prefect_server(work / "prefect") as server:
        cli(server, "prefect deploy", ["-m", "prefect", "deploy", "-n", "suite-shard"])
        bench = Bench(server, work, a.concurrency)
        for name in a.targets.split(","):
            n = sizes[name]
            data = work / "data"
            dataset = write_dataset(data / f"{name}.jsonl", n)
            dataset.with_suffix(".toml").write_text(EVALUATORS_TOML)
            target = f"benchmarks.scale_targets:{name}"
            warehouse = work / f"{name}.duckdb"
            free = {"SCALE_CPU_MS": "0", "SCALE_SLEEP_S": "0"}
            bench.parent(f"{name} base", dataset, target, f"{name}-base", 1, free, "auto")
            ref = bench.parent(
                f"{name} inproc", dataset, target, f"{name}-inproc", 1, {}, f"{name}-base"
            )
            ref_scores = scores(warehouse, f"{name}-inproc")
            parent, _ = bench.runs(f"{name}-inproc")
            wall = _secs(parent.start_time, parent.end_time)
            rows_out.append([name, "in-process", 1, ref["rows"], wall, "-", ref["rows"] / wall,
                             "-", "-", "-", "-", "-", ref["verdict"], "reference"])  # fmt: skip
            per: dict[int, dict[str, float]] = {}
            for w in counts:
                shards = a.shards or w
                exp = f"{name}-w{w}"
                procs = bench.workers(w, {})
                try:
                    res = bench.parent(
                        f"{name} {exp}", dataset, target, exp, shards,
                        {"EVALKEEPER_RESULTS_URL": str(work / f"results-{name}"),
                         "EVALKEEPER_SHARD_DEPLOYMENT": "suite-shard/suite-shard"},
                        f"{name}-base",
                    )  # fmt: skip
                finally:
                    for p in procs:
                        stop(p)
                parent, runs = bench.runs(exp)
                wall = _secs(parent.start_time, parent.end_time)
                first = min(fr.start_time for fr in runs)
                last = max(fr.end_time for fr in runs)
                span = _secs(first, last)
                starts = [_secs(fr.created, fr.start_time) for fr in runs]
                ran = [fr.total_run_time.total_seconds() for fr in runs]
                head = _secs(parent.start_time, min(fr.created for fr in runs))
                tail = _secs(last, parent.end_time)
                same = scores(warehouse, exp) == ref_scores and res["verdict"] == ref["verdict"]
                per[w] = {"wall": res["rows"] / wall, "span": res["rows"] / span}
                rows_out.append([
                    name, f"{w} worker(s)", shards, res["rows"], wall, span, res["rows"] / wall,
                    res["rows"] / span, max(starts), sum(ran) / len(ran), head, tail,
                    res["verdict"], "identical" if same else "DIFFERENT",
                ])  # fmt: skip
                for fr, s, r in zip(runs, starts, ran, strict=True):
                    shard_rows.append([name, w, fr.name, s, r])
                summary["targets"].setdefault(name, {})[f"w{w}"] = {
                    "rows": res["rows"], "parent_wall_s": round(wall, 2),
                    "span_s": round(span, 2), "start_cost_max_s": round(max(starts), 2),
                    "shard_run_mean_s": round(sum(ran) / len(ran), 2),
                    "head_s": round(head, 2), "tail_s": round(tail, 2), "identical": same,
                }  # fmt: skip
            base = per.get(1)
            if base:
                t = summary["targets"][name]
                t["ratio_span"] = {
                    f"w{w}": round(v["span"] / base["span"], 2) for w, v in per.items()
                }
                t["ratio_wall"] = {
                    f"w{w}": round(v["wall"] / base["wall"], 2) for w, v in per.items()
                }
                gw, goal = goals[name]
                if gw in per:
                    t["goal"] = f"{gw} workers >= {goal}x on the span"
                    t["goal_met"] = t["ratio_span"][f"w{gw}"] >= goal
    print()
    print(table(["shard run target", "workers", "run", "created->Running s", "ran s"], shard_rows))
    print()
    print(table(
        ["target", "run", "shards", "rows", "parent wall s", "span s", "rows/s wall",
         "rows/s span", "start max s", "shard ran s", "head s", "tail s", "verdict", "vs in-process"],
        rows_out,
    ))  # fmt: skip
    if not a.keep:
        print(f"(logs and warehouses in {work})")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
