"""A calibration scenario for tests: a dataset, recorded answers carrying the right verdict
for the scripted judge server, real judged runs, and human labels written as files."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import ScriptedLLMServer
from tests.helpers import run_suite

CATEGORIES = ("booking", "cancellation", "policy")
PINNED = "scripted-judge-2026-01-01"


def truth(i: int) -> str:
    """The right verdict of example i: about a quarter fail."""
    return "fail" if random.Random(f"truth-{i}").random() < 0.25 else "pass"


def write_scenario(root: Path, n: int, *, flip_all: bool = False) -> tuple[Path, Path]:
    """`data/datasets/cal.jsonl` and a replay file whose replies carry the truth marker
    (`flip_all`: every answer is now wrong)."""
    ds = root / "datasets" / "cal.jsonl"
    ds.parent.mkdir(parents=True, exist_ok=True)
    if not ds.exists():
        with ds.open("w") as fh:
            for i in range(n):
                row = {
                    "id": f"ex-{i:04d}",
                    "inputs": {"question": f"question {i}"},
                    "reference_outputs": {"reply": f"answer {i}"},
                    "metadata": {"category": CATEGORIES[i % 3], "critical": False},
                }
                fh.write(json.dumps(row) + "\n")
        ds.with_suffix(".toml").write_text('[[evaluators]]\nname = "latency_ok"\n')
    replay = root / ("answers-flipped.jsonl" if flip_all else "answers.jsonl")
    with replay.open("w") as fh:
        for i in range(n):
            verdict = "fail" if flip_all else truth(i)
            outputs = {"reply": f"answer {i} [[expect:{verdict}]]"}
            fh.write(json.dumps({"id": f"ex-{i:04d}", "outputs": outputs, "latency_ms": 50.0}))
            fh.write("\n")
    return ds, replay


def judge_settings(root: Path, server: ScriptedLLMServer, **extra: Any) -> Settings:
    return Settings(
        warehouse=root / "w.duckdb",
        datasets_dir=root / "datasets",
        git_commit="abc",
        git_branch="main",
        judge_base_url=server.base_url,
        judge_model=PINNED,
        judge_api_key="test-key",
        judge_votes=1,
        judge_rpm=60_000.0,
        judge_concurrency=16,
        concurrency=16,
        lock_wait_s=2.0,
        calibration_bootstrap_resamples=500,
        **extra,
    )


def judged_run(settings: Settings, replay: Path, experiment: str, judges: list[str]) -> Any:
    return run_suite(
        settings,
        dataset="cal",
        suite="full",
        target=f"replay:{replay}",
        evaluators=["latency_ok", *judges],
        experiment_id=experiment,
    )


def write_labels(
    path: Path,
    experiment: str,
    judge: str,
    n: int,
    *,
    double_every: int = 5,
    time: str = "2026-11-02T10:00:00Z",
) -> Path:
    """Annotator h1 labels every item with the truth; h2 every `double_every`-th (agreeing)."""
    rows = []
    for i in range(n):
        base = {"experiment_id": experiment, "example_id": f"ex-{i:04d}", "judge": judge}
        rows.append({**base, "annotator": "h1", "label": truth(i), "time": time})
        if double_every and i % double_every == 0:
            rows.append({**base, "annotator": "h2", "label": truth(i), "time": time})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
