"""A gate that never says "pass" when it does not know: each test reproduces what a user saw
(a broken run taken as the baseline, a failed run exiting 0, a resume that re-judged
nothing, a resume that dropped an option, a latency setting that changed nothing)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper import run as core
from evalkeeper.cli import app
from evalkeeper.exitcodes import EXIT_ERROR, EXIT_OK, EXIT_RUN_FAILED
from evalkeeper.llm import forget_clients
from evalkeeper.models import Experiment
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from evalkeeper.warehouse import Warehouse
from tests.helpers import run_flow, run_suite, write_dataset

runner = CliRunner()
PINNED = "gpt-4o-2024-08-06"
DEAD = "http://127.0.0.1:9/"  # the discard port: nothing listens, connections are refused


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads Settings from the environment: point it at the test's warehouse."""
    for key, value in {
        "EVALKEEPER_WAREHOUSE": str(settings.warehouse),
        "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
        "EVALKEEPER_GIT_BRANCH": "main",
        "EVALKEEPER_GIT_COMMIT": "0123456789abcdef",
        "EVALKEEPER_RETRIES": "0",
        "EVALKEEPER_FLUSH_S": "0.2",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EVALKEEPER_JUDGE_BASE_URL", raising=False)
    return settings


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as srv:
        yield srv


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _cli(*args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr)."""
    out = runner.invoke(app, list(args))
    return out.exit_code, out.output


def _json(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    """Exit code and the JSON printed on stdout."""
    out = runner.invoke(app, list(args))
    return out.exit_code, json.loads(out.stdout)


# -- 1. a broken run is never a baseline ----------------------------------------------------


def test_a_dead_endpoint_run_fails_says_why_and_is_never_a_baseline(
    env: Settings, tmp_path: Path
) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 60))  # enough for a pass to have power
    run = ["run", "--dataset", ds]
    code, out = _cli(*run, "--target", "tests.fake_targets:instant", "--experiment", "good-1")
    assert code == EXIT_OK, out
    # seen: exit 0, "completed", the cause only in runs.error
    code, out = _cli(*run, "--target", DEAD, "--experiment", "dead")
    assert code == EXIT_RUN_FAILED, out
    assert "run failed: target: 60 of 60 rows errored (100%" in out
    assert "ConnectError" in out and "ex-00000" in out  # the cause, counted, one example
    summary = _json(*run, "--target", DEAD, "--experiment", "dead", "--json")[1]
    (group,) = [g for g in summary["error_groups"] if g["where"] == "target"]
    assert group["count"] == 60 and "ConnectError" in group["error"]

    listing = json.loads(runner.invoke(app, ["experiments", "--format", "json"]).stdout)
    why = {r["experiment_id"]: r["baseline"] for r in listing}
    assert why["good-1"] == "yes"
    assert why["dead"].startswith("no: ") and "target error rate 100% > 20%" in why["dead"]

    # seen: the next gate of the healthy agent took the dead run as its baseline
    code, outcome = _json("gate", "--dataset", ds, "--suite", "full", "--target",
                          "tests.fake_targets:instant", "--experiment", "pr", "--format", "json")  # fmt: skip
    assert code == EXIT_OK and outcome["verdict"] == "pass", outcome["reasons"]
    assert outcome["comparison"]["baseline_id"] == "good-1"
    assert any("passed over dead" in w for w in outcome["comparison"]["warnings"])

    # named explicitly, it is used, with a warning that says why it would not be chosen
    code, c = _json("compare", "pr", "--baseline", "dead", "--format", "json")
    assert c["baseline_id"] == "dead" and c["verdict"] == "inconclusive"
    assert any("would not be chosen automatically" in w for w in c["warnings"])


def test_an_incomplete_or_regressed_run_is_not_a_baseline(env: Settings, tmp_path: Path) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 10))
    for eid in ("a", "b"):
        assert _cli("run", "--dataset", ds, "--target", "tests.fake_targets:instant",
                    "--experiment", eid)[0] == 0  # fmt: skip
    con = duckdb.connect(str(env.warehouse))
    con.execute("UPDATE experiments SET status = 'failed' WHERE experiment_id = 'b'")
    con.close()
    listing = json.loads(runner.invoke(app, ["experiments", "--format", "json"]).stdout)
    assert {r["experiment_id"]: r["baseline"] for r in listing}["b"] == "no: status failed"


# -- 2. a skipped evaluator never passes ----------------------------------------------------


def test_a_gate_with_its_judges_off_is_inconclusive_unless_allowed(env: Settings) -> None:
    """Seen: with no judge endpoint, gate on demo agent v1 exited 0 with every judge off."""
    base = ["gate", "--dataset", "appointments", "--suite", "smoke", "--baseline", "main",
            "--target", "evalkeeper.demo.agent:v1"]  # fmt: skip
    judges = "factual_match,tone_appropriate,no_hallucination"
    assert _cli(*base, "--experiment", "main-1", "--allow-skipped", judges)[0] == EXIT_ERROR
    code, out = _cli(*base, "--experiment", "pr-1", "--allow-skipped", judges)
    assert code == EXIT_OK and "PASS" in out, out
    code, out = _cli(*base, "--experiment", "pr-2", "--format", "markdown")
    assert code == EXIT_ERROR, out
    assert "INCONCLUSIVE" in out
    assert "EVALKEEPER_JUDGE_BASE_URL" in out
    assert "--allow-skipped factual_match,no_hallucination,tone_appropriate" in out
    # and that run cannot be a baseline either
    listing = json.loads(runner.invoke(app, ["experiments", "--format", "json"]).stdout)
    pr2 = next(r for r in listing if r["experiment_id"] == "pr-2")
    assert (
        "skipped factual_match, tone_appropriate, no_hallucination (not allowed)"
        in (pr2["baseline"])
    )


def test_allow_skipped_names_an_evaluator_of_the_run(env: Settings, tmp_path: Path) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 4))
    code, out = _cli("run", "--dataset", ds, "--target", "tests.fake_targets:instant",
                     "--allow-skipped", "factual_matc")  # fmt: skip
    assert code == EXIT_ERROR
    assert "--allow-skipped factual_matc: not an evaluator of this run" in out


def test_groundedness_fails_when_retrieval_returned_nothing_but_the_reference_had_context(
    llm: ScriptedLLMServer, settings: Settings
) -> None:
    from evalkeeper import registry

    llm.reset(Policy())
    s = settings.model_copy(
        update={
            "judge": settings.judge.model_copy(update={"base_url": llm.base_url, "model": PINNED})
        }
    )
    ev = registry.build("no_hallucination", registry.Runtime(settings=s))
    calls = llm.calls
    kwargs = {"inputs": {"question": "When?"}, "outputs": {"reply": "Tuesday at 10."}}
    lost = asyncio.run(
        ev(**kwargs, reference_outputs={"context": [{"id": "d1", "text": "Open Tue 9-5."}]})
    )
    assert lost.passed is False and not lost.skipped and lost.error is None
    assert "retrieval returned nothing" in (lost.comment or "")
    none_expected = asyncio.run(ev(**kwargs, reference_outputs={}))
    assert none_expected.skipped and (none_expected.details or {}).get("reason") == "no_context"
    assert llm.calls == calls  # no judge call without a context to check against


# -- 3. a run that failed says so, and says why ----------------------------------------------


def test_a_judge_answering_garbage_fails_the_run_with_the_cause(
    llm: ScriptedLLMServer, env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.reset(Policy(always_malformed=True))
    monkeypatch.setenv("EVALKEEPER_JUDGE_BASE_URL", llm.base_url)
    monkeypatch.setenv("EVALKEEPER_JUDGE_MODEL", PINNED)
    monkeypatch.setenv("EVALKEEPER_JUDGE_MAX_RETRIES", "0")
    ds = str(write_dataset(tmp_path / "d.jsonl", 6))
    code, summary = _json("run", "--dataset", ds, "--target", "tests.fake_targets:instant",
                          "--evaluators", "exact_match,tone_appropriate", "--json")  # fmt: skip
    assert code == EXIT_RUN_FAILED
    assert summary["problems"] == [
        "evaluator 'tone_appropriate': 6 of 6 rows errored (100%, above "
        "EVALKEEPER_MAX_ERROR_RATE 20%)"
    ]
    (group,) = summary["error_groups"]
    assert group["where"] == "tone_appropriate" and group["count"] == 6
    assert "malformed" in group["error"]


def test_a_failed_nightly_flow_run_ends_failed_with_every_row_kept(
    prefect_harness: None, settings: Settings, tmp_path: Path
) -> None:
    from flows.nightly import RunFailed, nightly

    ds = write_dataset(tmp_path / "d.jsonl", 8)
    with pytest.raises(RunFailed, match=r"target: 8 of 8 rows errored"):
        run_flow(
            nightly,
            suite="full",
            dataset=str(ds),
            target="tests.fake_targets:broken_always",
            experiment="red",
            warehouse=str(settings.warehouse),
        )
    assert _rows(settings, "SELECT count(*), count(error) FROM runs") == [(8, 8)]
    assert _rows(settings, "SELECT status FROM experiments") == [("completed",)]


# -- 4. an outage never forces a new experiment ----------------------------------------------


def test_resume_after_a_judge_outage_judges_again(
    llm: ScriptedLLMServer, settings: Settings, tmp_path: Path
) -> None:
    """Seen: resuming after a judge outage re-judged nothing (0 calls)."""
    s = settings.model_copy(
        update={
            "judge": settings.judge.model_copy(
                update={"base_url": llm.base_url, "model": PINNED, "max_retries": 0}
            )
        }
    )
    ds = str(write_dataset(tmp_path / "d.jsonl", 5))
    opts = {"dataset": ds, "suite": "full", "target": "tests.fake_targets:instant"}
    llm.reset(Policy(fail_status=503))
    first = run_suite(s, **opts, evaluators=["exact_match", "tone_appropriate"], experiment_id="e")
    assert {e.evaluator: e.errors for e in first.evaluators}["tone_appropriate"] == 5
    assert first.failed
    llm.reset(Policy())
    forget_clients()  # the resume is a new process: the outage's circuit breaker is gone
    calls = llm.calls
    again = run_suite(s, **opts, experiment_id="e")
    assert llm.calls - calls >= 5  # every errored score was judged again
    tone = {e.evaluator: e for e in again.evaluators}["tone_appropriate"]
    assert (tone.errors, tone.passed, tone.n) == (0, 5, 5)  # replaced, never duplicated
    assert not again.failed and again.error_groups == []
    assert _rows(s, "SELECT count(*) FROM runs") == [(5,)]


def test_resume_tries_failed_target_calls_again_and_counts_attempts(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 6))
    opts = {"dataset": ds, "suite": "full", "target": "tests.fake_targets:down_when_flagged"}
    monkeypatch.setenv("FAKE_TARGET_DOWN", "1")
    first = run_suite(settings, **opts, experiment_id="t")
    assert first.target_errors == 6 and first.failed
    monkeypatch.setenv("FAKE_TARGET_DOWN", "0")
    again = run_suite(settings, **opts, experiment_id="t")
    assert again.target_errors == 0 and not again.failed
    assert {e.evaluator: e.passed for e in again.evaluators}["exact_match"] == 6
    assert _rows(settings, "SELECT min(attempts), max(attempts), count(*) FROM runs") == [(2, 2, 6)]
    assert _rows(settings, "SELECT count(*) FROM scores WHERE evaluator = 'exact_match'") == [(6,)]
    # errors that persist stay errors
    monkeypatch.setenv("FAKE_TARGET_DOWN", "1")
    run_suite(settings, **opts, experiment_id="t2")
    still = run_suite(settings, **opts, experiment_id="t2")
    assert still.target_errors == 6
    assert _rows(settings, "SELECT max(attempts) FROM runs WHERE experiment_id='t2'") == [(2,)]


def test_score_runs_new_evaluators_on_stored_outputs_without_calling_the_target(
    env: Settings, tmp_path: Path
) -> None:
    from tests import fake_targets

    ds = str(write_dataset(tmp_path / "d.jsonl", 7))
    code, out = _cli("run", "--dataset", ds, "--target", "tests.fake_targets:counting",
                     "--evaluators", "exact_match", "--experiment", "s")  # fmt: skip
    assert code == 0, out
    calls = fake_targets.COUNTS["counting"]
    code, summary = _json("score", "s", "--evaluators", "latency_ok", "--json")
    assert code == EXIT_OK, summary
    assert fake_targets.COUNTS["counting"] == calls  # the target was not called again
    by = {e["evaluator"]: e for e in summary["evaluators"]}
    assert by["latency_ok"]["passed"] == 7 and by["exact_match"]["passed"] == 7
    exp = summary_experiment(env, "s")
    assert [r.name for r in exp.evaluators] == ["exact_match", "latency_ok"]
    assert exp.evaluators[1].args == {"threshold_s": 1.2}  # the setting, recorded
    # scoring again replaces, never duplicates
    assert _cli("score", "s", "--evaluators", "latency_ok")[0] == EXIT_OK
    assert _rows(env, "SELECT count(*) FROM scores WHERE evaluator = 'latency_ok'") == [(7,)]
    code, out = _cli("score", "nope", "--evaluators", "latency_ok")
    assert code == EXIT_ERROR and "unknown experiment 'nope'" in out


def summary_experiment(settings: Settings, experiment_id: str) -> Experiment:
    exp = core.load_experiment(Warehouse.from_settings(settings), experiment_id)
    assert exp is not None
    return exp


# -- 5. resume never drops an option silently -------------------------------------------------


def test_resume_refuses_changed_options_and_accepts_additions(
    settings: Settings, tmp_path: Path
) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 4))
    opts = {"dataset": ds, "suite": "full", "target": "tests.fake_targets:instant"}
    run_suite(settings, **opts, evaluators=["exact_match", "latency_ok"], experiment_id="r")
    with pytest.raises(core.ExperimentError) as err:
        run_suite(settings, **opts, evaluators=["exact_match"], experiment_id="r", repetitions=1)
    assert "evaluator(s) latency_ok left out" in str(err.value)
    with pytest.raises(core.ExperimentError, match=r"--repetitions 1 < the 2"):
        run_suite(settings, **opts, experiment_id="r2", repetitions=2)
        run_suite(settings, **opts, experiment_id="r2", repetitions=1)
    with pytest.raises(core.ExperimentError, match=r"latency_ok arguments"):
        run_suite(
            settings.model_copy(
                update={"analysis": settings.analysis.model_copy(update={"latency_p95_s": 9.0})}
            ),
            **opts,
            evaluators=["exact_match", "latency_ok"],
            experiment_id="r",
        )
    # adding an evaluator scores the stored rows; raising repetitions runs the new ones
    more = run_suite(
        settings,
        **opts,
        evaluators=["exact_match", "latency_ok", "contains"],
        experiment_id="r",
        repetitions=3,
    )
    assert more.rows == 12 and more.experiment.repetitions == 3
    by = {e.evaluator: e for e in more.evaluators}
    assert by["contains"].n == 12 and by["exact_match"].n == 12
    # without options, a resume keeps the experiment's own
    same = run_suite(settings, **opts, experiment_id="r")
    assert same.experiment.repetitions == 3
    assert [r.name for r in same.experiment.evaluators] == ["exact_match", "latency_ok", "contains"]


# -- 6. one latency threshold -----------------------------------------------------------------


def test_the_latency_setting_is_the_evaluators_threshold_and_is_recorded(
    settings: Settings, tmp_path: Path
) -> None:
    ds = str(write_dataset(tmp_path / "d.jsonl", 4))
    strict = settings.model_copy(
        update={"analysis": settings.analysis.model_copy(update={"latency_p95_s": 0.000001})}
    )
    summary = run_suite(strict, dataset=ds, suite="full", target="tests.fake_targets:slow")
    by = {e.evaluator: e for e in summary.evaluators}
    assert by["latency_ok"].failed == 4  # 50 ms calls against a 1 us budget
    (args,) = _rows(
        settings,
        "SELECT evaluators FROM experiments WHERE experiment_id = ?",
        summary.experiment.experiment_id,
    )
    recorded = {e["name"]: e["args"] for e in json.loads(str(args[0]))}
    assert recorded["latency_ok"] == {"threshold_s": 0.000001}
    lenient = run_suite(settings, dataset=ds, suite="full", target="tests.fake_targets:slow")
    assert {e.evaluator: e.passed for e in lenient.evaluators}["latency_ok"] == 4
