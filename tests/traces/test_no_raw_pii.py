"""No raw PII anywhere: the Faker corpus of benchmarks/redaction.py (13 locales, phone
numbers glued to Japanese, Chinese, Korean and Thai words) goes in through the
jsonl source (the CLI) and through OTLP (the SDK's exporter to the app on 127.0.0.1, the
trace-store sink), and none of its raw values is then found in any column of any
warehouse table, in the spool, in a log record or in the CLI's output.

The OTLP half is received while another process holds the warehouse, so its traces go to
the spool (checked there), and the jsonl half's first write takes them in.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from pydantic import SecretStr
from typer.testing import CliRunner

from benchmarks.redaction import Corpus, make_corpus
from evalkeeper.cli import app
from evalkeeper.http import create_app
from evalkeeper.settings import Settings
from evalkeeper.traces.ingest import make_trace_sink
from evalkeeper.warehouse import Warehouse
from tests.conftest import ROOT
from tests.otlp_helpers import serve, tracer

SEED = 20261130
LOCKER = """
import sys, time
from evalkeeper.warehouse import Warehouse
with Warehouse(sys.argv[1]).connect():
    print("locked", flush=True)
    sys.stdin.readline()
"""


class Records(logging.Handler):
    """Every log record's text, exceptions included, from every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[Records]:
    handler = Records()
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "evalkeeper"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    # 156 messages, 13 locales: in Japanese, Chinese and Thai the phone numbers are glued
    # to the words (in Korean to the particles), some in full-width digits
    return make_corpus(12, SEED)


def raw_values(corpus: Corpus) -> list[str]:
    values = {v for m in corpus.messages for _, v in m.pii}
    return sorted(values, key=len, reverse=True)


def jsonl_traces(corpus: Corpus, rng: random.Random) -> list[dict[str, Any]]:
    texts = [m.text for m in corpus.messages]
    out = []
    for i in range(0, len(texts) - 2, 2):
        out.append(
            {
                "trace_id": f"jsonl-{i:04d}",
                "time": f"2026-11-30T{i % 24:02d}:15:00Z",
                "inputs": {"messages": [{"role": "user", "content": texts[i]}]},
                "outputs": {"reply": texts[i + 1]},
                "tool_calls": [{"name": "find_customer", "args": {"query": texts[i + 2]}}],
                "context": [{"id": "crm-1", "text": texts[i + 1]}],
                "feedback": {"score": 0, "comment": texts[i]},
                "error": f"lookup failed for {texts[i + 2][:80]}",
                "metadata": {"note": texts[i], "n": rng.randint(1, 9)},
            }
        )
    return out


def otlp_spans(corpus: Corpus) -> list[Any]:
    provider, memory = tracer()
    t = provider.get_tracer("pii-test")
    texts = [m.text for m in corpus.messages]
    for i in range(1, len(texts) - 2, 2):
        with t.start_as_current_span("invoke_agent support") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("user.id", texts[i][:60])
            root.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": texts[i]}]}]),
            )
            root.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": texts[i + 1]}]}]
                ),
            )
            with t.start_as_current_span("execute_tool find_customer") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "find_customer")
                tool.set_attribute(
                    "gen_ai.tool.call.arguments", json.dumps({"query": texts[i + 2]})
                )
    return list(memory.get_finished_spans())


def leaks(texts: list[str], values: list[str]) -> list[tuple[str, str]]:
    """(value, where) for every raw value found in a text (casefolded)."""
    found = []
    folded = [(t, t.casefold()) for t in texts if t]
    for v in values:
        needle = v.casefold()
        for t, f in folded:
            if needle in f:
                found.append((v, t[:120]))
                break
    return found


def warehouse_texts(path: Path) -> tuple[list[str], int]:
    """Every value of every column of every table (cast to text), and the traces stored."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
        ).fetchall()
        texts: list[str] = []
        for (table,) in tables:
            columns = con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ?",
                [table],
            ).fetchall()
            for (column,) in columns:
                rows = con.execute(
                    f'SELECT CAST("{column}" AS VARCHAR) FROM "{table}" '
                    f'WHERE "{column}" IS NOT NULL'
                ).fetchall()
                texts.extend(r[0] for r in rows)
        (n,) = con.execute("SELECT count(*) FROM traces").fetchone() or (0,)
        return texts, int(n)
    finally:
        con.close()


def spool_texts(spool: Path) -> list[str]:
    texts: list[str] = []
    for file in sorted(spool.rglob("*.parquet")):
        frame = pl.read_parquet(file)
        for column in frame.columns:
            texts.extend(str(v) for v in frame[column].cast(pl.String).drop_nulls())
    return texts


def test_no_raw_pii_in_the_warehouse_spool_logs_or_output(
    corpus: Corpus, tmp_path: Path, logs: Records
) -> None:
    values = raw_values(corpus)
    assert len(values) > 400
    glued = [
        v
        for m in corpus.messages
        if m.locale in ("ja_JP", "zh_CN", "ko_KR", "th_TH")
        for k, v in m.pii
        if k == "PHONE"
    ]
    assert len(glued) > 60 and any(not v.isascii() for v in glued)  # full-width digits too
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        redaction_key=SecretStr("pii-test-key-0123456789"),
        redaction_names=corpus.names,
        otlp_settle_s=0.2,
        lock_wait_s=0.3,
    )
    Warehouse(settings.warehouse).connect().__enter__().close()  # the file, migrated
    rng = random.Random(SEED)

    # 1. OTLP while another process holds the warehouse: the traces are spooled
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(settings.warehouse)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        sink = make_trace_sink(settings)
        spans = otlp_spans(corpus)
        n_otlp = sum(1 for s in spans if s.parent is None)
        with serve(create_app(settings, trace_sink=sink)) as url:
            exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces")
            assert exporter.export(spans) is SpanExportResult.SUCCESS
            exporter.shutdown()
            deadline = time.monotonic() + 60
            while sink.stats.spooled + sink.stats.stored < n_otlp:
                assert time.monotonic() < deadline, sink.stats
                time.sleep(0.05)
        assert sink.stats.spooled == n_otlp and sink.stats.invalid == 0
    finally:
        assert locker.stdin is not None
        locker.stdin.write("\n")
        locker.stdin.flush()
        locker.wait(timeout=30)
    spooled = spool_texts(settings.spool_path)
    assert any("<EMAIL:" in t for t in spooled)  # the spool holds the redacted traces
    assert leaks(spooled, values) == []

    # 2. jsonl through the CLI, with a bad line that holds PII too
    traces = jsonl_traces(corpus, rng)
    path = tmp_path / "app.jsonl"
    bad = {"trace_id": "bad-1", "time": corpus.messages[0].text, "inputs": {}}
    lines = [json.dumps(t, ensure_ascii=False) for t in traces] + [json.dumps(bad)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["traces", "ingest", "--source", f"jsonl:{path}", "--warehouse", str(settings.warehouse)],
        env={
            "EVALKEEPER_REDACTION_KEY": "pii-test-key-0123456789",
            "EVALKEEPER_REDACTION_NAMES": json.dumps(corpus.names),
        },
    )
    assert result.exit_code == 1, result.stdout + result.stderr  # the bad line
    assert "bad lines 1" in result.stdout

    texts, stored = warehouse_texts(settings.warehouse)
    assert stored == n_otlp + len(traces)  # the spooled OTLP traces were taken in
    assert any("<PHONE:" in t for t in texts) and any("<NAME:" in t for t in texts)
    assert leaks(texts, values) == []
    assert leaks([result.stdout, result.stderr], values) == []
    assert logs.texts  # the receiver and the sink logged (the spooling, at least)
    assert leaks(logs.texts, values) == []
