"""Benchmark shards writing to a results location, and the parent's ingest.

    uv run python benchmarks/results_ingest.py [--examples 8000] [--shards 4]
                                               [--flush-rows 1000,100]

One experiment (`benchmarks.targets:instant`, three evaluators) runs its shards one after
another in this process, in three ways:

* **warehouse**: every shard writes to the warehouse itself (today's in-process flow);
* **dir**: every shard writes Parquet batches to a local results directory, and the
  parent ingests them;
* **s3**: the same against a real S3 server on 127.0.0.1 (moto in server mode).

For each flush size (rows per batch) it prints the shards' wall time, the batches
written, the ingest time (listing, download, one transaction per batch, removal) and the
ingest time per batch, and checks that every row is in the warehouse exactly once. The
JSON line ends the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import bench_settings, make_dataset, table
from evalkeeper import run as core
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.results import ResultsLocation

TARGET = "benchmarks.targets:instant"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """`python -m moto.server` on a free port of 127.0.0.1; yields its endpoint."""
    import boto3
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{endpoint}/moto-api/").status_code < 500:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the moto server did not start")
            time.sleep(0.1)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        yield endpoint
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def one(
    folder: Path, ds: Path, shards: int, flush_rows: int, results: ResultsLocation | None
) -> dict[str, Any]:
    settings = bench_settings(folder, flush_rows=flush_rows, flush_s=60.0, concurrency=32)

    async def go() -> dict[str, Any]:
        exp = await core.prepare(
            settings, dataset=str(ds), suite="full", target=TARGET, experiment_id="bench"
        )
        if results is not None:
            await core.publish_stored(settings, exp, results)
        t0 = time.perf_counter()
        for shard in range(shards):
            await core.run_shard(settings, exp, shard=shard, shards=shards, results=results)
        shards_s = time.perf_counter() - t0
        ingest_s, n_batches = 0.0, 0
        if results is not None:
            report = await core.ingest_results(settings, exp, results)
            ingest_s, n_batches = report.seconds, report.batches
        summary = await core.finish(settings, exp)
        runs, distinct = Warehouse.from_settings(settings).rows(
            "SELECT count(*), count(DISTINCT example_id) FROM runs"
        )[0]
        return {
            "shards_s": shards_s,
            "batches": n_batches,
            "ingest_s": ingest_s,
            "status": summary.experiment.status,
            "runs": runs,
            "distinct": distinct,
        }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=8000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--flush-rows", default="1000,100")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    rows, out = [], []
    with tempfile.TemporaryDirectory() as tmp, moto_server() as endpoint:
        root = Path(tmp)
        ds = make_dataset(root / "data", args.examples)
        for flush in [int(f) for f in args.flush_rows.split(",")]:
            for where in ("warehouse", "dir", "s3"):
                folder = root / f"{where}-{flush}"
                folder.mkdir()
                results = {
                    "warehouse": None,
                    "dir": ResultsLocation(str(folder / "results")),
                    "s3": ResultsLocation(f"s3://bench/{where}-{flush}", endpoint_url=endpoint),
                }[where]
                r = one(folder, ds, args.shards, flush, results)
                assert r["status"] == "completed" and r["runs"] == r["distinct"] == args.examples
                per_batch = r["ingest_s"] / r["batches"] * 1000 if r["batches"] else 0.0
                rows.append((where, flush, r["batches"], r["shards_s"], r["ingest_s"], per_batch))
                out.append(
                    {
                        "location": where,
                        "flush_rows": flush,
                        "batches": r["batches"],
                        "shards_s": round(r["shards_s"], 3),
                        "ingest_s": round(r["ingest_s"], 3),
                        "ingest_ms_per_batch": round(per_batch, 2),
                    }
                )
    print(f"{args.examples} examples, {args.shards} shards, 3 evaluators, {TARGET}")
    print(
        table(
            ["location", "flush_rows", "batches", "shards_s", "ingest_s", "ingest_ms/batch"],
            rows,
        )
    )
    print(json.dumps({"examples": args.examples, "shards": args.shards, "runs": out}))


if __name__ == "__main__":
    main()
