"""Per-example overhead: evalkeeper's full suite (scores persisted) against langsmith.evaluate.

    uv run python benchmarks/overhead.py [--examples 10000] [--repeat 3]

Both sides get the same 10,000 synthetic examples, an instant target and the same three
scoring functions (`exact_match` key=reply, `tool_call_correct`, `latency_ok`, built from
the evalkeeper registry; LangSmith calls them through plain `(inputs, outputs,
reference_outputs[, run])` wrappers, so the scoring work is identical and the difference is
the frameworks' own cost).

evalkeeper: the whole `run_suite` call is timed — reading and validating the JSONL file,
recording the experiment and examples, the async runner, every run and score written to a
fresh DuckDB warehouse, and the summary. LangSmith: `evaluate(..., upload_results=False)`
with an offline client (loopback URL, dummy key, no batch tracing thread, preset server
info), timed from the call to the last result; building its `Example` objects is not
timed (in its favour). Socket connects are counted with an audit hook: there must be none.
A 200-example warm-up of each side runs first so that lazy imports are not timed.
Each side is timed `--repeat` times and its fastest run is kept: LangSmith's own time
moved between 1.43 and 1.72 ms/example from one run to the next here, which alone moves
a single run's ratio by about ±0.02.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"

import duckdb
from _common import Phases, bench_settings, make_dataset, table
from langsmith import Client, evaluate
from langsmith import schemas as ls_schemas

from benchmarks.targets import example_row, instant_sync
from evalkeeper import datasets, registry
from evalkeeper.models import EvaluatorRef
from evalkeeper.run import experiment as core

TARGET = "benchmarks.targets:instant"
WARMUP = 200

_socket_events: list[tuple[str, Any]] = []


def _audit(event: str, args: Any) -> None:
    if event in ("socket.connect", "socket.getaddrinfo"):
        _socket_events.append((event, args))


# -- evalkeeper ---------------------------------------------------------------------------


def run_evalkeeper(n: int, d: Path) -> dict[str, Any]:
    """One `run_suite` of an `n`-example dataset in directory `d` (its warehouse kept
    between calls: a second run finds the dataset version's examples rows already held)."""
    dataset = d / f"bench-{n}.jsonl"
    if not dataset.exists():
        make_dataset(d, n, name=f"bench-{n}")
    settings = bench_settings(d)
    datasets._load.cache_clear()  # each nightly is a new process: the file is parsed again
    phases = Phases()
    originals = (core.prepare, core.run_shard, core.finish)
    core.prepare = phases.wrap("prepare", core.prepare)
    core.run_shard = phases.wrap("run_shard", core.run_shard)
    core.finish = phases.wrap("finish", core.finish)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = asyncio.run(
            core.run_suite(settings, dataset=str(dataset), suite="full", target=TARGET)
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        core.prepare, core.run_shard, core.finish = originals
    eid = summary.experiment.experiment_id
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        runs = con.execute("SELECT count(*) FROM runs WHERE experiment_id=?", [eid]).fetchone()
        scores = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE passed) FROM scores WHERE experiment_id=?",
            [eid],
        ).fetchone()
    finally:
        con.close()
    assert runs is not None and scores is not None
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "phases": phases.seconds,
        "runs": runs[0],
        "scores": scores[0],
        "passed": scores[1],
        "status": summary.experiment.status,
    }


# -- LangSmith ----------------------------------------------------------------------------


def offline_client() -> Client:
    """A client that never reaches an API: loopback URL (discard port), dummy key, no
    background batch-tracing thread, and server info preset so it is never fetched."""
    return Client(
        api_url="http://127.0.0.1:9",
        api_key="offline-dummy",
        auto_batch_tracing=False,
        info=ls_schemas.LangSmithInfo(version="offline", instance_flags={}),
    )


def langsmith_examples(n: int) -> list[ls_schemas.Example]:
    dataset_id = uuid.uuid4()
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        row = example_row(i)
        out.append(
            ls_schemas.Example(
                id=uuid.uuid5(dataset_id, row["id"]),
                dataset_id=dataset_id,
                inputs=row["inputs"],
                outputs=row["reference_outputs"],
                metadata=row["metadata"],
                created_at=now,
            )
        )
    return out


def langsmith_evaluators(calls: dict[str, int]) -> list[Any]:
    """The same scoring functions evalkeeper runs, as plain LangSmith evaluators."""
    em = registry.build(EvaluatorRef(name="exact_match", args={"key": "reply"})).fn
    tc = registry.build(EvaluatorRef(name="tool_call_correct")).fn
    lat = registry.build(EvaluatorRef(name="latency_ok")).fn

    def exact_match(inputs: dict, outputs: dict, reference_outputs: dict) -> dict:
        calls["exact_match"] += 1
        s = em(outputs=outputs, reference_outputs=reference_outputs)
        return {"key": "exact_match", "score": s.value, "comment": s.comment}

    def tool_call_correct(inputs: dict, outputs: dict, reference_outputs: dict) -> dict:
        calls["tool_call_correct"] += 1
        s = tc(outputs=outputs, reference_outputs=reference_outputs)
        return {"key": "tool_call_correct", "score": s.value, "comment": s.comment}

    def latency_ok(inputs: dict, outputs: dict, reference_outputs: dict, run: Any) -> dict:
        calls["latency_ok"] += 1
        ms = (run.end_time - run.start_time).total_seconds() * 1000
        s = lat(outputs=outputs, run={"latency_ms": ms, "outputs": outputs})
        return {"key": "latency_ok", "score": s.passed, "value": s.value, "comment": s.comment}

    return [exact_match, tool_call_correct, latency_ok]


def run_langsmith(examples: list[ls_schemas.Example], max_concurrency: int) -> dict[str, Any]:
    calls = dict.fromkeys(("exact_match", "tool_call_correct", "latency_ok"), 0)
    evaluators = langsmith_evaluators(calls)
    client = offline_client()
    sockets_before = len(_socket_events)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # "'upload_runs' parameter is in beta."
        t0, c0 = time.perf_counter(), time.process_time()
        results = evaluate(
            instant_sync,
            data=examples,
            evaluators=evaluators,
            upload_results=False,
            client=client,
            max_concurrency=max_concurrency,
        )
        rows = list(results)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scored = [r for row in rows for r in row["evaluation_results"]["results"]]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows": len(rows),
        "calls": calls,
        "scores": len(scored),
        "passed": sum(1 for r in scored if r.score is True or r.score == 1),
        "sockets": len(_socket_events) - sockets_before,
    }


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per setting")
    args = parser.parse_args()
    n = args.examples
    sys.addaudithook(_audit)

    # warm-up: lazy imports (registry, jsonschema, numpy, polars, duckdb) not timed
    tmp = tempfile.TemporaryDirectory(prefix="evalkeeper-bench-")
    workdir = Path(tmp.name)
    run_evalkeeper(WARMUP, workdir)
    run_langsmith(langsmith_examples(WARMUP), 0)

    def counts(r: dict[str, Any]) -> list[int]:
        return [r["scores"], r["passed"]]

    def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return min(runs, key=lambda r: r["wall_s"])

    # the first run of a dataset version writes its examples rows; the nightly case (the
    # same version again, every night) finds them held: both are shown, the ratio is the
    # nightly one
    first = run_evalkeeper(n, workdir)
    ek = best([run_evalkeeper(n, workdir) for _ in range(args.repeat)])
    tmp.cleanup()
    assert ek["runs"] == n and ek["scores"] == 3 * n == ek["passed"], ek
    examples = langsmith_examples(n)
    ls = {mc: best([run_langsmith(examples, mc) for _ in range(args.repeat)]) for mc in (0, 8)}
    for mc, r in ls.items():
        assert r["rows"] == n and all(c == n for c in r["calls"].values()), (mc, r)
        assert r["scores"] == 3 * n == r["passed"], (mc, r)
        assert r["sockets"] == 0, f"LangSmith tried the network: {_socket_events[:3]}"
    best_mc = min(ls, key=lambda mc: ls[mc]["wall_s"])

    ek_ms = ek["wall_s"] / n * 1000
    ls_ms = ls[best_mc]["wall_s"] / n * 1000
    ratio = ek_ms / ls_ms
    cpu_ratio = ek["cpu_s"] / ls[best_mc]["cpu_s"]

    print(f"overhead: {n:,} examples, instant target, 3 evaluators, best of {args.repeat}\n")
    ek_cpu_ms = ek["cpu_s"] / n * 1000
    first_ms = first["wall_s"] / n * 1000
    rows: list[list[Any]] = [
        [
            "evalkeeper run_suite, new dataset version",
            first["wall_s"],
            first_ms,
            first["cpu_s"] / n * 1000,
            *counts(first),
            "-",
        ],
        ["evalkeeper run_suite, nightly (version held)", ek["wall_s"], ek_ms, ek_cpu_ms,
         *counts(ek), "-"],
    ]  # fmt: skip
    for mc, r in ls.items():
        label = f"langsmith.evaluate max_concurrency={mc}" + (" *" if mc == best_mc else "")
        per = [r["wall_s"] / n * 1000, r["cpu_s"] / n * 1000]
        rows.append([label, r["wall_s"], *per, *counts(r), r["sockets"]])
    headers = ["system", "wall s", "ms/example", "cpu ms/example", "scores", "passed", "sockets"]
    print(table(headers, rows))
    print("\nevalkeeper run_suite breakdown:")
    phases = [[k, v, v / n * 1000] for k, v in ek["phases"].items()]
    print(table(["phase", "wall s", "ms/example"], phases))
    print(
        f"\nratio evalkeeper / langsmith (fastest: max_concurrency={best_mc}): {ratio:.3f} wall"
        f" ({cpu_ratio:.3f} in CPU time)  goal <= 0.25: {'met' if ratio <= 0.25 else 'MISSED'}"
        f"\n(a new dataset version's first run: {first_ms / ls_ms:.3f})"
    )
    print(
        json.dumps(
            {
                "evalkeeper_ms_per_example": round(ek_ms, 4),
                "langsmith_ms_per_example": round(ls_ms, 4),
                "ratio": round(ratio, 4),
                "ratio_new_dataset_version": round(first_ms / ls_ms, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
