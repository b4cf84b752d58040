"""LLM judges against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server (`evalkeeper.testing.llm_server`) answers with the verdict marked in the
example (`[[expect:pass]]` / `[[expect:fail]]`), flipped with a seeded per-vote error rate,
and with scripted failures (429 + Retry-After, 500, malformed JSON, latency). The judge code
under test is the production code with the official `openai` client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evalkeeper import registry
from evalkeeper.llm import EndpointLimiter, ModelNotPinned, check_pin, cost_of, is_pinned
from evalkeeper.models import EvaluatorRef, Example, RunRecord, Score
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer, count_tokens, marker
from evalkeeper.warehouse import Warehouse
from evaluators.judges import FACTUAL_MATCH, NOT_CONFIGURED, Judge, JudgeEngine

ROOT = Path(__file__).resolve().parents[2]
PINNED = "gpt-4o-2024-08-06"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as srv:
        yield srv


@pytest.fixture
def llm(server: ScriptedLLMServer) -> ScriptedLLMServer:
    server.reset(Policy())
    return server


class Rows:
    """What `runtime.emit` queued, written the way the runner writes it."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def emit(self, table: str, row: dict[str, Any]) -> None:
        self.tables[table].append(row)

    def write(self, warehouse: Warehouse) -> None:
        warehouse.write(
            {t: pl.DataFrame(rows, infer_schema_length=None) for t, rows in self.tables.items()}
        )
        self.tables.clear()


def judge_settings(server: ScriptedLLMServer, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "warehouse": tmp_path / "warehouse.duckdb",
        "judge_base_url": server.base_url,
        "judge_model": PINNED,
        "judge_api_key": "test-key",
        "backoff_s": 0.01,
        "judge_rpm": 60_000.0,
        "judge_concurrency": 16,
        "lock_wait_s": 2.0,
        **overrides,
    }
    return Settings(**values)


def build(
    name: str, settings: Settings, rows: Rows | None = None, **args: Any
) -> registry.BuiltEvaluator:
    runtime = registry.Runtime(
        settings=settings,
        warehouse=Warehouse.from_settings(settings),
        experiment_id="exp-1",
        emit=rows.emit if rows is not None else None,
    )
    return registry.build(EvaluatorRef(name=name, args=args), runtime)


def cases(verdicts: list[str], *, tag: str = "") -> list[tuple[Example, RunRecord]]:
    out = []
    for i, verdict in enumerate(verdicts):
        ex = Example(
            id=f"ex-{tag}{i:03d}",
            inputs={"message": f"Can I move my appointment {i}?"},
            reference_outputs={"reply": f"Yes, Tuesday {i}:00 is free."},
        )
        run = RunRecord(
            experiment_id="exp-1",
            example_id=ex.id,
            outputs={"reply": f"Tuesday {i}:00 works {tag} {marker(verdict)}"},
        )
        out.append((ex, run))
    return out


def score_all(ev: Any, items: list[tuple[Example, RunRecord]]) -> list[Score]:
    async def go() -> list[Score]:
        return await asyncio.gather(
            *(
                ev(
                    inputs=ex.inputs,
                    outputs=run.outputs,
                    reference_outputs=ex.reference_outputs,
                    run=run,
                    example=ex,
                )
                for ex, run in items
            )
        )

    return asyncio.run(go())


# -- votes ----------------------------------------------------------------------------------


def test_majority_with_early_stopping_takes_two_calls_when_votes_agree(llm, tmp_path):
    rows = Rows()
    ev = build("factual_match", judge_settings(llm, tmp_path), rows)
    scores = score_all(ev, cases(["pass", "fail", "pass", "fail"]))

    assert [s.passed for s in scores] == [True, False, True, False]
    assert [s.value for s in scores] == [1.0, 0.0, 1.0, 0.0]
    assert llm.calls == 8  # 2 of 3 votes each: the third could not change the outcome
    for s in scores:
        assert s.error is None and s.version == FACTUAL_MATCH.prompt_version
        assert s.details is not None
        assert s.details["calls"] == 2 and s.details["cached"] == 0 and s.details["errors"] == 0
        assert s.details["pass"] + s.details["fail"] == 2
        assert s.details["judge_model"] == PINNED
        assert s.comment and "scripted judge" in s.comment
    # every vote becomes a judge_votes row, every fresh answer a judge_cache row
    assert len(rows.tables["judge_votes"]) == 8 and len(rows.tables["judge_cache"]) == 8
    assert {r["vote_index"] for r in rows.tables["judge_votes"]} == {0, 1}
    # votes are distinct samples: the request carries the vote index as its seed
    assert {r.body["seed"] for r in llm.requests} == {0, 1}


def test_early_stopping_gives_the_full_vote_decision_with_fewer_calls(llm, tmp_path):
    llm.reset(Policy(error_rate=0.3, seed=7))
    settings = judge_settings(llm, tmp_path)
    from evalkeeper.llm import client_for

    items = cases(["pass", "fail"] * 20)

    def decide(early_stop: bool) -> tuple[list[Score], int]:
        before = llm.calls
        engine = JudgeEngine(FACTUAL_MATCH, client_for(settings), votes=3, early_stop=early_stop)
        scores = score_all(engine.score, items)
        return scores, llm.calls - before

    early, early_calls = decide(True)
    full, full_calls = decide(False)
    assert full_calls == 3 * len(items)
    assert 2 * len(items) <= early_calls < full_calls
    assert [s.passed for s in early] == [s.passed for s in full]
    # the noise really produced split votes, and the majority overruled the odd one out
    splits = [(s.details["pass"], s.details["fail"]) for s in full if s.details]
    assert (2, 1) in splits or (1, 2) in splits
    for s in full:
        assert s.details is not None
        assert s.passed == (s.details["pass"] >= 2)
        assert s.value == pytest.approx(s.details["pass"] / 3)


def test_even_votes_are_refused(llm, tmp_path):
    with pytest.raises(ValueError, match="odd"):
        build("factual_match", judge_settings(llm, tmp_path), votes=2)


# -- cache ----------------------------------------------------------------------------------

RERUN = """
import asyncio, json, sys
from evalkeeper import registry
from evalkeeper.models import EvaluatorRef, Example, RunRecord
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse

items = json.loads(sys.argv[1])
no_cache = sys.argv[2] == "1"
settings = Settings()
rows = []
runtime = registry.Runtime(
    settings=settings, warehouse=Warehouse(settings.warehouse), experiment_id="exp-2",
    emit=lambda table, row: rows.append(table),
)
ev = registry.build(EvaluatorRef(name="factual_match", args={"no_cache": no_cache}), runtime)

async def go():
    out = []
    for item in items:
        ex, run = Example(**item["example"]), RunRecord(**item["run"])
        s = await ev(inputs=ex.inputs, outputs=run.outputs,
                     reference_outputs=ex.reference_outputs, run=run, example=ex)
        out.append({"passed": s.passed, "details": s.details, "error": s.error})
    return out

print(json.dumps({"scores": asyncio.run(go()), "emitted": rows}))
"""


def _rerun_in_subprocess(settings: Settings, items: Any, *, no_cache: bool) -> dict[str, Any]:
    env = {
        **os.environ,
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_JUDGE_BASE_URL": str(settings.judge.base_url),
        "EVALKEEPER_JUDGE_MODEL": str(settings.judge.model),
        "EVALKEEPER_JUDGE_API_KEY": "test-key",
        "PYTHONPATH": str(ROOT),
    }
    payload = json.dumps(
        [
            {"example": ex.model_dump(mode="json"), "run": run.model_dump(mode="json")}
            for ex, run in items
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", RERUN, payload, "1" if no_cache else "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cache_survives_the_process_and_no_cache_forces_calls(llm, tmp_path):
    settings = judge_settings(llm, tmp_path)
    items = cases(["pass", "fail", "pass"])
    rows = Rows()
    first = score_all(build("factual_match", settings, rows), items)
    rows.write(Warehouse(settings.warehouse))
    calls = llm.calls
    assert calls == 6

    again = _rerun_in_subprocess(settings, items, no_cache=False)
    assert llm.calls == calls  # zero judge calls from the second process
    assert [s["passed"] for s in again["scores"]] == [s.passed for s in first]
    assert all(s["details"]["cached"] == 2 and s["details"]["calls"] == 0 for s in again["scores"])
    assert again["emitted"].count("judge_votes") == 6 and "judge_cache" not in again["emitted"]

    forced = _rerun_in_subprocess(settings, items, no_cache=True)
    assert llm.calls == calls + 6
    assert all(s["details"]["calls"] == 2 for s in forced["scores"])


def test_identical_calls_in_one_run_are_made_once(llm, tmp_path):
    rows = Rows()
    ev = build("factual_match", judge_settings(llm, tmp_path), rows)
    ((ex, run),) = cases(["fail"])
    repeats = [(ex, run.model_copy(update={"repetition": r})) for r in range(4)]
    scores = score_all(ev, repeats)  # concurrently: four repetitions with the same outputs
    assert llm.calls == 2
    assert all(s.passed is False for s in scores)
    assert sum(s.details["cached"] for s in scores if s.details) == 6
    assert {r["repetition"] for r in rows.tables["judge_votes"]} == {0, 1, 2, 3}


def test_a_prompt_change_changes_the_version_and_misses_the_cache():
    changed = Judge(
        name=FACTUAL_MATCH.name,
        description=FACTUAL_MATCH.description,
        rubric=FACTUAL_MATCH.rubric + "\nA wrong currency is a wrong amount.",
        template=FACTUAL_MATCH.template,
    )
    assert changed.prompt_version != FACTUAL_MATCH.prompt_version
    assert registry.get("factual_match").version == FACTUAL_MATCH.prompt_version
    reworded = Judge(
        name=FACTUAL_MATCH.name,
        description=FACTUAL_MATCH.description,
        rubric=FACTUAL_MATCH.rubric,
        template=FACTUAL_MATCH.template.replace("strict grader", "careful grader"),
    )
    assert reworded.prompt_version not in (FACTUAL_MATCH.prompt_version, changed.prompt_version)


# -- failures -------------------------------------------------------------------------------


def test_429_is_retried_after_the_retry_after_delay(llm, tmp_path):
    llm.reset(Policy(rate_limit=2, retry_after=0.4))
    ev = build("factual_match", judge_settings(llm, tmp_path), votes=1)
    (score,) = score_all(ev, cases(["pass"]))
    assert score.passed is True
    assert llm.statuses() == [429, 429, 200]
    assert score.details and score.details["requests"] == 3 and score.details["calls"] == 1
    gaps = [b.at - a.at for a, b in zip(llm.requests, llm.requests[1:], strict=False)]
    # waited as told, not the 10 ms backoff (a lower bound: a slow machine only adds to it)
    assert all(g >= 0.38 for g in gaps), gaps


def test_5xx_is_retried_with_backoff(llm, tmp_path):
    llm.reset(Policy(server_errors=2))
    ev = build("factual_match", judge_settings(llm, tmp_path), votes=1)
    (score,) = score_all(ev, cases(["fail"]))
    assert score.passed is False and score.error is None
    assert llm.statuses() == [500, 500, 200]


def test_persistent_failure_gives_error_scores_and_the_run_goes_on(llm, tmp_path):
    llm.reset(Policy(fail_status=503))
    rows = Rows()
    ev = build("factual_match", judge_settings(llm, tmp_path, judge_max_retries=2), rows)
    scores = score_all(ev, cases(["pass", "pass"]))
    for s in scores:
        assert s.passed is None and s.value is None and s.error is not None
        assert "no majority" in s.error and "HTTP 503" in s.error
        assert s.details and s.details["errors"] == 2 and s.details["pass"] == 0
    # two votes errored -> a majority of three is impossible -> stop; 3 attempts per vote
    assert llm.calls == 2 * 2 * 3
    assert all(r["error"] and r["verdict"] is None for r in rows.tables["judge_votes"])
    assert "judge_cache" not in rows.tables  # errors are never cached

    llm.reset(Policy())  # the endpoint recovers: the same evaluator goes on scoring
    (ok,) = score_all(ev, cases(["pass"], tag="b"))
    assert ok.passed is True


def test_client_errors_are_not_retried(llm, tmp_path):
    llm.reset(Policy(fail_status=401))
    ev = build("factual_match", judge_settings(llm, tmp_path), votes=1)
    (score,) = score_all(ev, cases(["pass"]))
    assert score.error and "EVALKEEPER_JUDGE_API_KEY" in score.error
    assert llm.calls == 1


def test_unreachable_endpoint_is_an_error_not_a_pass(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        judge_base_url=f"http://127.0.0.1:{port}/v1",
        judge_model=PINNED,
        backoff_s=0.01,
        judge_max_retries=1,
    )
    ev = build("factual_match", settings, votes=1)
    (score,) = score_all(ev, cases(["pass"]))
    assert score.passed is None and score.error and "APIConnectionError" in score.error


def test_malformed_answer_is_repaired_once_then_an_error(llm, tmp_path):
    llm.reset(Policy(malformed=1))
    ev = build("factual_match", judge_settings(llm, tmp_path), votes=1)
    (score,) = score_all(ev, cases(["fail"]))
    assert score.passed is False and score.details and score.details["requests"] == 2
    repair = llm.requests[1].body["messages"]
    assert repair[-2]["role"] == "assistant" and "not JSON" in repair[-1]["content"]

    llm.reset(Policy(always_malformed=True))
    rows = Rows()
    ev = build("factual_match", judge_settings(llm, tmp_path), rows)
    (score,) = score_all(ev, cases(["pass"], tag="m"))
    assert score.passed is None and score.error and "malformed answer" in score.error
    assert llm.calls == 4  # two votes, each asked once and repaired once; then impossible
    assert all("malformed" in r["error"] for r in rows.tables["judge_votes"])


# -- limits ---------------------------------------------------------------------------------


class FrozenClock:
    """A clock that moves only when told to: the token bucket's arithmetic, exactly."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_lets_a_burst_through_then_spaces_requests_at_the_rate():
    clock = FrozenClock()
    limiter = EndpointLimiter(concurrency=16, rpm=240.0, clock=clock)  # 4/s, burst of 4
    assert [limiter._reserve() for _ in range(8)] == [0, 0, 0, 0, 0.25, 0.5, 0.75, 1.0]
    clock.now += 3.0  # paid back the 4 borrowed tokens, refilled only up to the burst
    assert [limiter._reserve() for _ in range(5)] == [0, 0, 0, 0, 0.25]
    limiter.pause(2.0)  # a 429's Retry-After holds every request, even with tokens left
    clock.now += 10.0
    limiter.pause(2.0)
    assert limiter._reserve() == 2.0


def test_requests_per_minute_and_concurrency_are_enforced_client_side(llm, tmp_path):
    ev = build("factual_match", judge_settings(llm, tmp_path, judge_rpm=240.0), votes=1)
    started = time.monotonic()
    score_all(ev, cases(["pass"] * 8, tag="rpm"))
    # the real client takes its turns from the bucket: the 8th of 8 requests at 4/s with a
    # burst of 4 cannot leave before 1 s (a lower bound: a slower machine only adds to it)
    assert llm.calls == 8 and time.monotonic() - started >= 0.99

    # the server holds each answer until two requests overlap: two at a time, never more
    llm.reset(Policy(latency_s=0.05, hold_until_concurrent=2))
    ev = build("factual_match", judge_settings(llm, tmp_path, judge_concurrency=2), votes=1)
    score_all(ev, cases(["pass"] * 6, tag="conc"))
    assert llm.calls == 6 and llm.max_in_flight == 2


# -- pins, accounting, configuration --------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "pinned"),
    [
        ("gpt-4o", False),
        ("gpt-4o-mini", False),
        ("claude-3-5-sonnet-latest", False),
        ("llama3.1", False),
        ("llama3.1:latest", False),
        ("gpt-4o-2024-08-06", True),
        ("claude-3-5-sonnet-20241022", True),
        ("gpt-4-0613", True),
        ("llama3.1:8b-instruct-q4_0", True),
        ("mistral-7b-instruct-v0.3", True),
    ],
)
def test_pin_rule(model, pinned):
    assert is_pinned(model) is pinned


def test_unpinned_model_is_refused_unless_allowed(llm, tmp_path):
    with pytest.raises(ModelNotPinned) as err:
        build("factual_match", judge_settings(llm, tmp_path, judge_model="gpt-4o"))
    assert "EVALKEEPER_JUDGE_MODEL" in str(err.value)
    assert "EVALKEEPER_JUDGE_ALLOW_UNPINNED=true" in str(err.value)
    assert llm.calls == 0
    check_pin("gpt-4o", allow_unpinned=True)
    ev = build(
        "factual_match",
        judge_settings(llm, tmp_path, judge_model="gpt-4o", judge_allow_unpinned=True),
        votes=1,
    )
    assert score_all(ev, cases(["pass"]))[0].passed is True


def test_tokens_and_cost_are_accounted(llm, tmp_path):
    rows = Rows()
    ev = build("factual_match", judge_settings(llm, tmp_path), rows, votes=1)
    (score,) = score_all(ev, cases(["pass"]))
    (request,) = llm.requests
    prompt = "\n".join(m["content"] for m in request.body["messages"])
    (vote,) = rows.tables["judge_votes"]
    (cached,) = rows.tables["judge_cache"]
    answer = json.loads(cached["response"])["text"]
    assert vote["prompt_tokens"] == count_tokens(prompt)
    assert vote["completion_tokens"] == count_tokens(answer)
    expected = (count_tokens(prompt) * 2.50 + count_tokens(answer) * 10.00) / 1_000_000
    assert vote["cost_usd"] == pytest.approx(expected)
    assert cached["cost_usd"] == pytest.approx(expected)
    assert score.details and score.details["cost_usd"] == pytest.approx(expected)
    assert score.details["prompt_tokens"] == vote["prompt_tokens"]
    assert vote["latency_ms"] > 0

    # a model with no known price: tokens yes, cost unknown (None), never 0
    assert cost_of("llama3.1:8b-instruct-q4_0", 100, 10) is None
    rows = Rows()
    ev = build(
        "factual_match",
        judge_settings(llm, tmp_path, judge_model="llama3.1:8b-instruct-q4_0"),
        rows,
        votes=1,
    )
    (score,) = score_all(ev, cases(["pass"], tag="llama"))
    (vote,) = rows.tables["judge_votes"]
    assert vote["prompt_tokens"] > 0 and vote["cost_usd"] is None
    assert score.details and score.details["cost_usd"] is None


def test_vote_and_cache_rows_fit_the_warehouse(llm, tmp_path):
    settings = judge_settings(llm, tmp_path)
    rows = Rows()
    score_all(build("factual_match", settings, rows), cases(["pass", "fail"]))
    wh = Warehouse(settings.warehouse)
    rows.write(wh)
    votes = wh.query("SELECT * FROM judge_votes ORDER BY example_id, vote_index")
    assert votes.height == 4
    assert votes["experiment_id"].to_list() == ["exp-1"] * 4
    assert votes["verdict"].to_list() == ["pass", "pass", "fail", "fail"]
    assert votes["prompt_version"].unique().to_list() == [FACTUAL_MATCH.prompt_version]
    assert not votes["cached"].any()
    assert wh.query("SELECT count(*) AS n FROM judge_cache")["n"][0] == 4


def test_not_configured_is_skipped_without_network(llm, tmp_path):
    settings = Settings(warehouse=tmp_path / "w.duckdb")
    for name in ("factual_match", "tone_appropriate", "no_hallucination"):
        (score,) = score_all(build(name, settings), cases(["pass"]))
        assert score.skipped and score.comment == NOT_CONFIGURED and score.error is None
    assert llm.calls == 0


# -- groundedness ---------------------------------------------------------------------------


def test_groundedness_lists_unsupported_claims(llm, tmp_path):
    ev = build("no_hallucination", judge_settings(llm, tmp_path))
    passages = [{"id": "kb-7", "text": "Cancellations up to 24 hours ahead are free."}]
    bad = "The fee is waived for VIP members [[unsupported:the fee is waived for VIP members]]"
    (score,) = asyncio.run(
        _one(ev, {"message": "Can I cancel?", "context": passages}, {"reply": bad + marker("fail")})
    )
    assert score.passed is False
    assert score.comment and score.comment.startswith(
        "unsupported claims: the fee is waived for VIP members"
    )
    assert score.details and score.details["unsupported_claims"] == [
        "the fee is waived for VIP members"
    ]
    prompt = llm.requests[0].body["messages"][1]["content"]
    assert '<passage id="kb-7">' in prompt and "<retrieved_passages>" in prompt

    # passages from the trace (outputs) are used when present
    (score,) = asyncio.run(
        _one(ev, {"message": "Hours?"}, {"reply": "9 to 5", "context": ["Open 9 to 5."]})
    )
    assert score.passed is True and score.comment and "unsupported" not in score.comment
    # nothing to check against: skipped, and no call
    calls = llm.calls
    (score,) = asyncio.run(_one(ev, {"message": "Hours?"}, {"reply": "9 to 5"}))
    assert score.skipped and llm.calls == calls


async def _one(ev: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> list[Score]:
    return [await ev(inputs=inputs, outputs=outputs, reference_outputs={}, run=None, example=None)]


# -- CLI ------------------------------------------------------------------------------------


def test_cli_lists_judges_with_status(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from evalkeeper.cli import app
    from evalkeeper.models import utcnow

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write(
        {
            "judges": pl.DataFrame(
                [
                    {
                        "judge": "tone_appropriate",
                        "model": PINNED,
                        "prompt_version": "0ld",
                        "status": "retired",
                        "status_reason": "kappa 0.41 < 0.6",
                        "updated_at": utcnow(),
                    }
                ]
            )
        }
    )
    monkeypatch.setenv("EVALKEEPER_JUDGE_MODEL", PINNED)
    monkeypatch.setenv("EVALKEEPER_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    result = CliRunner().invoke(app, ["judges", "--json", "--warehouse", str(wh.path)])
    assert result.exit_code == 0, result.output
    rows = {r["judge"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"factual_match", "tone_appropriate", "no_hallucination"}
    assert rows["factual_match"]["status"] == "active"
    assert rows["factual_match"]["prompt_version"] == FACTUAL_MATCH.prompt_version
    assert rows["factual_match"]["model"] == PINNED and rows["factual_match"]["pinned"] is True
    assert rows["tone_appropriate"]["status"] == "retired"
    assert "kappa" in rows["tone_appropriate"]["note"]
    result = CliRunner().invoke(app, ["judges", "--warehouse", str(wh.path)])
    assert result.exit_code == 0 and "factual_match" in result.output
    # --json is --format json; csv and markdown carry the same rows
    listed = _judges_json(wh.path)
    same = CliRunner().invoke(app, ["judges", "--format", "json", "--warehouse", str(wh.path)])
    assert json.loads(same.stdout) == listed
    csv_out = CliRunner().invoke(app, ["judges", "--format", "csv", "--warehouse", str(wh.path)])
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("judge,kind,model,pinned,prompt_version,choices")
    assert len(lines) == 1 + len(listed)
    clash = CliRunner().invoke(
        app, ["judges", "--json", "--format", "csv", "--warehouse", str(wh.path)]
    )
    assert clash.exit_code == 2 and "--json and --format csv" in clash.output


def _judges_json(warehouse: Path) -> list[dict[str, Any]]:
    from typer.testing import CliRunner

    from evalkeeper.cli import app

    result = CliRunner().invoke(app, ["judges", "--json", "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_a_dead_endpoint_trips_the_breaker_and_scores_fail_fast(llm, tmp_path):
    llm.reset(Policy(fail_status=503))
    settings = judge_settings(llm, tmp_path, judge_max_retries=0, judge_timeout_s=7.0)
    ev = build("factual_match", settings)
    scores = [score_all(ev, [item])[0] for item in cases(["pass"] * 10, tag="dead")]
    assert all(s.error and s.passed is None for s in scores)
    assert llm.calls == 8  # then the breaker answers for the endpoint: no more calls
    assert any("not called" in (s.error or "") for s in scores)


def test_run_wide_no_cache_through_runtime_extras(llm, tmp_path):
    settings = judge_settings(llm, tmp_path)
    rows = Rows()
    items = cases(["pass"], tag="extras")
    score_all(build("factual_match", settings, rows), items)
    rows.write(Warehouse(settings.warehouse))
    assert llm.calls == 2
    runtime = registry.Runtime(
        settings=settings,
        warehouse=Warehouse(settings.warehouse),
        extras={"judge_no_cache": True},
    )
    ev = registry.build("factual_match", runtime)
    assert ev.args == {}
    (score,) = score_all(ev, items)
    assert llm.calls == 4 and score.details and score.details["cached"] == 0
