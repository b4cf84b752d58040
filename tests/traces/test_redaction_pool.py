"""Redaction in worker processes: the same tokens as in one process, order kept, small
batches at home, and a dead worker costs nothing: its batch is redacted at home, counted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from evalkeeper.settings import Settings
from evalkeeper.traces.batch import (
    InlineRedaction,
    RedactionFailed,
    RedactionPool,
    batch_redaction,
    usable_cores,
)
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.model import Trace
from evalkeeper.traces.sources import JsonlSource
from evalkeeper.traces.store import list_traces
from tests.traces.trace_lines import append, redact_emails, trace

PHONES = ["+44 20 7946 0958", "(0191) 4960072", "090-3640-5259", "030 901820", "+1 415-555-0132"]


def pii_trace(i: int) -> Trace:
    """Trace `i` with an e-mail, a phone number, a card, an IBAN and look-alikes."""
    row = trace(i)
    row["inputs"] = {
        "message": f"I am {i}@mail.example, call {PHONES[i % len(PHONES)]}; card "
        f"4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00; order ORD-{100000 + i} on "
        f"2026-11-{1 + i % 28:02d} at 14:30 for $1,{i % 1000:03d}.50",
    }
    return Trace.model_validate(row)


def kill_workers(pool: RedactionPool) -> None:
    """SIGKILL every worker process of `pool` (the first death may take the rest down)."""
    assert pool._executor is not None
    for process in list(pool._executor._processes.values()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


@pytest.fixture
def pool_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redaction": settings.redaction.model_copy(
                update={"key": SecretStr("pool-test-key-0123"), "workers": 2}
            )
        }
    )


def test_the_pool_gives_the_tokens_one_process_gives_in_order(pool_settings: Settings) -> None:
    traces = [pii_trace(i) for i in range(300)]
    inline = batch_redaction(
        pool_settings.model_copy(
            update={"redaction": pool_settings.redaction.model_copy(update={"workers": 1})}
        )
    )
    pool = batch_redaction(pool_settings)
    assert isinstance(inline, InlineRedaction) and isinstance(pool, RedactionPool)
    try:
        expected = inline.redact(traces)
        start_after_s = pool.start_after_s
        pool.start_after_s = 3600.0  # the work here stays under it, however slow the machine
        assert pool.redact(traces) == expected  # here: the work has not reached the bar
        assert pool._executor is None and 0 < pool.here_s < pool.start_after_s
        pool.start_after_s = start_after_s
        pool.here_s = start_after_s  # as after a second of redaction here
        assert pool.redact(traces) == expected  # here, while the workers start
        assert pool._executor is not None
        pool.start(wait=True)
        assert pool.ready()
        pool.stats.clear()
        got = pool.redact(traces)
        assert pool._executor is not None  # the batch went to the workers
        pids = {p.pid for p in pool._executor._processes.values()}
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        pool.close()
    assert [t.trace_id for t in got] == [t.trace_id for t in traces]
    assert got == expected
    message = got[7].inputs["message"]
    assert "<EMAIL:" in message and "<PHONE:" in message and "<CARD:" in message
    assert "<IBAN:" in message and "ORD-100007" in message and "14:30" in message
    assert pool.stats == inline.stats
    assert pool.stats["PHONE"] == 300 and pool.stats["EMAIL"] == 300 * 6  # 6 fields hold one


def test_a_small_batch_is_redacted_at_home(pool_settings: Settings) -> None:
    pool = batch_redaction(pool_settings)
    assert isinstance(pool, RedactionPool)
    try:
        got = pool.redact([pii_trace(i) for i in range(pool.min_pool_batch - 1)])
        assert pool._executor is None  # no process was started
        assert all("<EMAIL:" in t.inputs["message"] for t in got)
    finally:
        pool.close()


def test_one_process_when_asked_or_with_a_custom_redactor(pool_settings: Settings) -> None:
    assert isinstance(
        batch_redaction(
            pool_settings.model_copy(
                update={"redaction": pool_settings.redaction.model_copy(update={"workers": 1})}
            )
        ),
        InlineRedaction,
    )
    custom = batch_redaction(pool_settings, redact_emails)
    assert isinstance(custom, InlineRedaction)
    assert custom.redact([pii_trace(1)])[0].inputs["message"].startswith("I am <EMAIL:x>")
    default = batch_redaction(
        pool_settings.model_copy(
            update={"redaction": pool_settings.redaction.model_copy(update={"workers": 0})}
        )
    )
    try:
        assert default.workers == usable_cores()
    finally:
        default.close()


def test_a_dead_worker_s_batch_is_redacted_at_home_and_the_next_starts_afresh(
    pool_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    pool = batch_redaction(pool_settings)
    assert isinstance(pool, RedactionPool)
    traces = [pii_trace(i) for i in range(300)]
    try:
        pool.start(wait=True)
        kill_workers(pool)
        expected = batch_redaction(
            pool_settings.model_copy(
                update={"redaction": pool_settings.redaction.model_copy(update={"workers": 1})}
            )
        ).redact(traces)
        assert pool.redact(traces) == expected
        assert pool.fallbacks == 1 and pool._executor is None
        assert "a worker process died" in caplog.text and "redacted in this process" in caplog.text
        pool.start(wait=True)  # fresh workers
        assert pool.redact(traces) == expected
        assert pool.fallbacks == 1
    finally:
        pool.close()


def _pii_lines(first: int, n: int) -> str:
    return "".join(
        Trace.model_validate(trace(i) | {"inputs": pii_trace(i).inputs}).model_dump_json() + "\n"
        for i in range(first, first + n)
    )


def test_ingest_loses_nothing_when_the_workers_are_killed(
    pool_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    append(path, _pii_lines(0, 450))
    source = JsonlSource(path)
    summary = asyncio.run(ingest(pool_settings, source, batch_size=250))
    assert (summary.read, summary.stored, summary.batches) == (450, 450, 2)
    assert summary.redaction_fallbacks == 0
    one = pool_settings.model_copy(
        update={
            "warehouse": tmp_path / "one" / "w.duckdb",
            "redaction": pool_settings.redaction.model_copy(update={"workers": 1}),
        }
    )
    asyncio.run(ingest(one, JsonlSource(path), batch_size=250))
    assert list_traces(pool_settings, limit=1000) == list_traces(one, limit=1000)

    # the workers are killed (SIGKILL) as soon as each batch is handed to them
    append(path, _pii_lines(1000, 600))
    submit = RedactionPool._submit

    def submit_then_kill(pool: RedactionPool, traces: Sequence[Trace]) -> Any:
        futures = submit(pool, traces)
        kill_workers(pool)
        return futures

    def workers_once_warm(pool: RedactionPool, n: int) -> bool:
        pool.start(wait=True)  # every batch goes to the workers, started and warm
        return True

    monkeypatch.setattr(RedactionPool, "_submit", submit_then_kill)
    monkeypatch.setattr(RedactionPool, "_use_workers", workers_once_warm)
    summary = asyncio.run(ingest(pool_settings, source, batch_size=300))
    assert (summary.read, summary.stored, summary.redaction_fallbacks) == (600, 600, 2)
    asyncio.run(ingest(one, JsonlSource(path), batch_size=300))
    assert list_traces(pool_settings, limit=2000) == list_traces(one, limit=2000)


class ExplodingText(str):
    """A text whose redaction raises, quoting personal data in its message."""

    def __contains__(self, key: object) -> bool:
        raise ValueError(f"cannot read {str.__str__(self)}")


def test_a_worker_that_raises_fails_the_batch_without_quoting_it(
    pool_settings: Settings,
) -> None:
    pool = batch_redaction(pool_settings)
    assert isinstance(pool, RedactionPool)
    traces = [pii_trace(i) for i in range(300)]
    traces[150] = traces[150].model_copy(
        update={"inputs": {"message": ExplodingText("I am jane.doe@example.com")}}
    )
    try:
        pool.start(wait=True)
        with pytest.raises(RedactionFailed) as failed:
            pool.redact(traces)
    finally:
        pool.close()
    message = str(failed.value)
    assert "raised ValueError" in message and "cursor did not move" in message
    assert "jane.doe" not in message and failed.value.__cause__ is None
    assert pool.fallbacks == 0
