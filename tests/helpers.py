"""Test helpers: synthetic datasets written as real JSONL files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

CATEGORIES = ("booking", "cancellation", "policy", "small_talk")
# the six categories the bundled sample must cover (issue 2)
SAMPLE_CATEGORIES = frozenset(
    {
        "availability_lookup",
        "booking",
        "cancellation",
        "policy_question",
        "escalation",
        "small_talk",
    }
)


def write_dataset(
    path: Path, n: int, *, critical_every: int = 0, config: str | None = None
) -> Path:
    """`n` examples whose reference reply is what `fake_targets` answers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "id": f"ex-{i:05d}",
                "inputs": {"n": i},
                "reference_outputs": {"reply": f"answer {i}", "tool_calls": []},
                "metadata": {
                    "category": CATEGORIES[i % len(CATEGORIES)],
                    "critical": bool(critical_every and i % critical_every == 0),
                },
            }
            fh.write(json.dumps(row) + "\n")
    path.with_suffix(".toml").write_text(
        config
        or '[[evaluators]]\nname = "exact_match"\nargs = { key = "reply" }\n\n'
        '[[evaluators]]\nname = "latency_ok"\n'
    )
    return path


def run_suite(settings: Any, **options: Any) -> Any:
    """`evalkeeper.run.run_suite` from synchronous test code (the core is async)."""
    from evalkeeper import run as core

    return asyncio.run(core.run_suite(settings, **options))


def run_flow(flow: Any, **params: Any) -> Any:
    """Call an async Prefect flow from synchronous test code."""
    return asyncio.run(flow(**params))
