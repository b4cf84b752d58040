"""Test helpers: synthetic datasets written as real JSONL files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
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


_HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # an analyst's notebook
con.execute("SELECT count(*) FROM schema_version").fetchall()
print("holding", flush=True)
time.sleep(3600)
"""


@contextlib.contextmanager
def analyst_holding(path: Path | str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the warehouse open read-only (which keeps writers out)
    until the block ends (or the test kills it sooner): `proc.poll() is None` while it
    holds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def wait_for_listen(proc: subprocess.Popen[str], base_url: str, timeout_s: float = 60) -> None:
    """Wait until the `evalkeeper listen` process `proc` answers GET /health at `base_url`;
    fail with its output if it exits first, or when `timeout_s` passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base_url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "evalkeeper listen did not start"
        time.sleep(0.1)
