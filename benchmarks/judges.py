"""LLM judges: calls saved by early stopping, a re-run served from the cache, throughput.

    uv run python benchmarks/judges.py [--examples 100]

Against the scripted OpenAI-compatible endpoint on 127.0.0.1
(`evalkeeper.testing.llm_server`, in its own process), through the production judge code and the official
`openai` client:

1. Early stopping vs a plain 3-vote majority, with a per-vote error rate of 5/15/30%
   (each vote flips to the wrong verdict with that probability, seeded per vote): judge
   calls per example and whether every decision is identical.
2. An unchanged experiment run twice (`evalkeeper.run.run_suite`, the bundled
   `appointments` dataset, the demo agent, the three judges, 300 ms judge latency): judge
   calls of the second run and its wall time relative to the first.
3. Throughput against a 300 ms endpoint at judge concurrency 16: judged examples per second
   vs the ideal `concurrency / (calls per example × latency)`.

Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import table  # noqa: E402
from evalkeeper.llm import client_for  # noqa: E402
from evalkeeper.models import Score  # noqa: E402
from evalkeeper.settings import Settings  # noqa: E402
from evalkeeper.testing.llm_server import Policy, SpawnedLLMServer, marker  # noqa: E402
from evaluators.judges import FACTUAL_MATCH, JudgeEngine  # noqa: E402

MODEL = "gpt-4o-2024-08-06"
ERROR_RATES = (0.05, 0.15, 0.30)
LATENCY_S = 0.3
CONCURRENCY = 16


def settings_for(server: SpawnedLLMServer, directory: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "warehouse": directory / "warehouse.duckdb",
        "datasets_dir": ROOT / "data" / "datasets",
        "judge_base_url": server.base_url,
        "judge_model": MODEL,
        "judge_api_key": "benchmark",
        "judge_concurrency": CONCURRENCY,
        "judge_rpm": 1_000_000.0,
        "backoff_s": 0.05,
        "git_commit": "benchmark",
        "git_branch": "benchmark",
        "lock_wait_s": 30.0,
        **overrides,
    }
    return Settings(**values)


def examples(n: int, tag: str) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], bool]]:
    """(inputs, outputs, reference, truth): half should pass, half fail."""
    out = []
    for i in range(n):
        truth = i % 2 == 0
        out.append(
            (
                {"message": f"Can I move appointment A-{i} to Tuesday?"},
                {
                    "reply": f"Done {tag}: Tuesday 10:{i % 60:02d}. {marker('pass' if truth else 'fail')}"
                },
                {"reply": f"Moved A-{i} to Tuesday 10:{i % 60:02d}."},
                truth,
            )
        )
    return out


async def judge_all(engine: JudgeEngine, items: list[Any]) -> list[Score]:
    return await asyncio.gather(
        *(engine.score(inputs=i, outputs=o, reference_outputs=r) for i, o, r, _ in items)
    )


def early_vs_full(server: SpawnedLLMServer, directory: Path, n: int) -> dict[str, Any]:
    settings = settings_for(server, directory)
    client = client_for(settings)
    rows, early_calls, full_calls, identical = [], {}, {}, True
    for rate in ERROR_RATES:
        items = examples(n, f"noise{rate}")
        decisions = {}
        for mode in ("early", "full"):
            server.reset(Policy(error_rate=rate, seed=20261125))
            engine = JudgeEngine(FACTUAL_MATCH, client, votes=3, early_stop=mode == "early")
            scores = asyncio.run(judge_all(engine, items))
            calls = server.calls
            decisions[mode] = [s.passed for s in scores]
            (early_calls if mode == "early" else full_calls)[str(rate)] = round(calls / n, 3)
        same = decisions["early"] == decisions["full"]
        identical = identical and same
        truth = [t for *_, t in items]
        accuracy = sum(d == t for d, t in zip(decisions["full"], truth, strict=True)) / n
        rows.append(
            (
                f"{rate:.0%}",
                n,
                early_calls[str(rate)],
                full_calls[str(rate)],
                f"{1 - early_calls[str(rate)] / full_calls[str(rate)]:.0%}",
                "yes" if same else "NO",
                f"{1 - rate:.0%}",
                f"{accuracy:.0%}",
            )
        )
    print("\n1. early stopping vs plain 3-vote majority (same seeded votes)\n")
    print(
        table(
            (
                "vote error",
                "examples",
                "calls/ex early",
                "calls/ex full",
                "saved",
                "same decisions",
                "1-vote accuracy",
                "majority accuracy",
            ),
            rows,
        )
    )
    return {
        "calls_per_example_early_stop": early_calls,
        "calls_per_example_full": full_calls,
        "decisions_identical": identical,
    }


def rerun(server: SpawnedLLMServer, directory: Path) -> dict[str, Any]:
    from evalkeeper.run import run_suite

    server.reset(Policy(latency_s=LATENCY_S))
    settings = settings_for(server, directory)
    judges = ["factual_match", "tone_appropriate", "no_hallucination"]
    walls, calls, summaries = [], [], []
    for _ in range(2):
        before = server.calls
        started = time.perf_counter()
        summaries.append(
            asyncio.run(
                run_suite(
                    settings,
                    dataset="appointments",
                    suite="full",
                    target="evalkeeper.demo.agent:v1",
                    evaluators=judges,
                )
            )
        )
        walls.append(time.perf_counter() - started)
        calls.append(server.calls - before)
    from evalkeeper.warehouse import Warehouse

    wh = Warehouse(settings.warehouse)
    votes = wh.query(
        "SELECT experiment_id, count(*) AS votes, count(*) FILTER (WHERE cached) AS cached, "
        "min(started_at) AS started FROM judge_votes JOIN experiments USING (experiment_id) "
        "GROUP BY experiment_id ORDER BY started"
    )
    n_scores = wh.query("SELECT count(*) AS n FROM scores WHERE evaluator IN (?, ?, ?)", judges)
    print(
        f"\n2. an unchanged experiment, run twice ({len(judges)} judges, {LATENCY_S * 1000:.0f} ms judge latency)\n"
    )
    print(
        table(
            ("run", "judge calls", "vote rows", "cached votes", "wall s"),
            [
                (
                    i + 1,
                    calls[i],
                    int(votes["votes"][i]),
                    int(votes["cached"][i]),
                    round(walls[i], 2),
                )
                for i in range(2)
            ],
        )
    )
    print(f"   judge scores stored: {int(n_scores['n'][0])}")
    return {"rerun_calls": calls[1], "rerun_wall_ratio": round(walls[1] / walls[0], 3)}


def throughput(server: SpawnedLLMServer, directory: Path, n: int) -> dict[str, Any]:
    from evalkeeper.registry import Runtime

    server.reset(Policy(latency_s=LATENCY_S))
    settings = settings_for(server, directory)
    engine = JudgeEngine(FACTUAL_MATCH, client_for(settings), votes=3)
    asyncio.run(judge_all(engine, examples(CONCURRENCY, "warmup")))  # connections, imports
    server.reset()
    votes: list[dict[str, Any]] = []
    runtime = Runtime(
        settings=settings, emit=lambda table, row: votes.append({**row, "table": table})
    )
    engine = JudgeEngine(FACTUAL_MATCH, client_for(settings), votes=3, runtime=runtime)
    items = examples(n, "throughput")
    started = time.perf_counter()
    asyncio.run(judge_all(engine, items))
    wall = time.perf_counter() - started
    calls = server.calls
    calls_per_example = calls / n
    ideal = CONCURRENCY / (calls_per_example * LATENCY_S)
    measured = n / wall
    latencies = sorted(v["latency_ms"] for v in votes if v["table"] == "judge_votes")
    mean_ms = sum(latencies) / len(latencies)
    in_flight = calls * mean_ms / 1000 / wall  # Little's law
    print(f"\n3. throughput: {LATENCY_S * 1000:.0f} ms endpoint, judge concurrency {CONCURRENCY}\n")
    print(
        table(
            (
                "examples",
                "calls/ex",
                "wall s",
                "examples/s",
                "ideal examples/s",
                "ratio",
                "call ms (client p50)",
                "calls in flight",
            ),
            [
                (
                    n,
                    round(calls_per_example, 2),
                    round(wall, 2),
                    round(measured, 2),
                    round(ideal, 2),
                    round(measured / ideal, 3),
                    round(latencies[len(latencies) // 2], 1),
                    round(in_flight, 1),
                )
            ],
        )
    )
    print(
        "   ideal = concurrency / (calls per example x server latency); the client sees each "
        "call take longer than the server's sleep by the per-call CPU of SDK + server"
    )
    return {"throughput_ratio": round(measured / ideal, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per error rate")
    parser.add_argument("--throughput-examples", type=int, default=160)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with SpawnedLLMServer() as server, tempfile.TemporaryDirectory() as tmp:
        result.update(early_vs_full(server, Path(tmp), args.examples))
        result.update(rerun(server, Path(tmp)))
        result.update(throughput(server, Path(tmp), args.throughput_examples))
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
