"""The command line end to end: exit codes, messages, the gate on the demo agent."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from tests.helpers import write_dataset

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EVALKEEPER_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("EVALKEEPER_DATASETS_DIR", str(settings.datasets_dir))
    monkeypatch.setenv("EVALKEEPER_GIT_COMMIT", "c0ffee")
    monkeypatch.setenv("EVALKEEPER_GIT_BRANCH", "main")
    monkeypatch.setenv("EVALKEEPER_CONCURRENCY", "32")
    return settings


def test_run_prints_experiment_and_summary(env: Settings, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "d.jsonl", 12)
    out = runner.invoke(
        app, ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
              "--experiment", "cli-1"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "experiment cli-1" in out.stdout
    assert "exact_match" in out.stdout and "12" in out.stdout


def test_run_bad_inputs_exit_2_with_the_fix(env: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "inputs": {}}\n{"id": "y"}\n')
    out = runner.invoke(
        app, ["run", "--dataset", str(bad), "--target", "tests.fake_targets:instant"]
    )
    assert out.exit_code == 2
    assert f'{bad}:2: missing field "inputs"' in out.output
    ds = write_dataset(tmp_path / "d.jsonl", 3)
    out = runner.invoke(app, ["run", "--dataset", str(ds), "--target", "nope"])
    assert out.exit_code == 2 and "expected module:function" in out.output
    out = runner.invoke(
        app, ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
              "--evaluators", "exact_match,no_such_eval"],
    )  # fmt: skip
    assert out.exit_code == 2 and "unknown evaluator 'no_such_eval'" in out.output


def test_compare_bad_inputs_exit_2(env: Settings, tmp_path: Path) -> None:
    out = runner.invoke(app, ["compare", "ghost"])
    assert out.exit_code == 2 and "unknown candidate experiment 'ghost'" in out.output
    ds = write_dataset(tmp_path / "d.jsonl", 6)
    runner.invoke(app, ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant",
                        "--experiment", "only"])  # fmt: skip
    out = runner.invoke(app, ["compare", "only"])  # no earlier run on main
    assert out.exit_code == 2 and "baseline" in out.output


def test_gate_passes_unchanged_agent_and_catches_the_regression(
    env: Settings, tmp_path: Path
) -> None:
    judges = "factual_match,tone_appropriate,no_hallucination"
    base = ["gate", "--dataset", "appointments", "--suite", "full", "--baseline", "main",
            "--allow-skipped", judges]  # fmt: skip
    # no baseline yet: inconclusive, exit 2
    first = runner.invoke(
        app, [*base, "--target", "evalkeeper.demo.agent:v1", "--experiment", "main-1"]
    )
    assert first.exit_code == 2, first.output
    same = runner.invoke(
        app, [*base, "--target", "evalkeeper.demo.agent:v1", "--experiment", "pr-ok"]
    )
    assert same.exit_code == 0, same.output
    assert "PASS" in same.stdout
    md = tmp_path / "comment.md"
    bad = runner.invoke(
        app,
        [
            *base,
            "--target",
            "evalkeeper.demo.agent:v2",
            "--experiment",
            "pr-bad",
            "--markdown",
            str(md),
        ],
    )
    assert bad.exit_code == 1, bad.output
    text = md.read_text()
    assert "REGRESSION" in text and "INC-2041" in text and "cancellation" in text
    # the regressed run never becomes a baseline: a later v1 run compares with pr-ok
    out = runner.invoke(app, ["compare", "pr-bad", "--format", "json"])
    assert out.exit_code == 1
    verdict = json.loads(out.stdout)
    assert verdict["verdict"] == "regression" and verdict["baseline_id"] == "pr-ok"
    again = runner.invoke(
        app, [*base, "--target", "evalkeeper.demo.agent:v1", "--experiment", "pr-3"]
    )
    assert again.exit_code == 0
    out = runner.invoke(app, ["compare", "pr-3", "--format", "json"])
    assert json.loads(out.stdout)["baseline_id"] == "pr-ok"


def test_run_with_judges_caches_across_runs_and_no_cache_forces_calls(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production path: CLI -> runner -> judge evaluator -> official client -> HTTP."""
    from evalkeeper.testing.llm_server import ScriptedLLMServer

    ds = write_dataset(
        tmp_path / "j.jsonl",
        6,
        config='[[evaluators]]\nname = "factual_match"\n\n[[evaluators]]\nname = "exact_match"\n',
    )
    with ScriptedLLMServer() as llm:
        monkeypatch.setenv("EVALKEEPER_JUDGE_BASE_URL", llm.base_url)
        monkeypatch.setenv("EVALKEEPER_JUDGE_API_KEY", "test-key")
        monkeypatch.setenv("EVALKEEPER_JUDGE_MODEL", "judge-model-2026-01-15")
        args = ["run", "--dataset", str(ds), "--target", "tests.fake_targets:instant", "--json"]
        first = runner.invoke(app, [*args, "--experiment", "j1"])
        assert first.exit_code == 0, first.output
        calls = llm.calls
        assert 12 <= calls <= 18  # 6 examples x 2-3 votes (early stopping)
        judged = {e["evaluator"]: e for e in json.loads(first.stdout)["evaluators"]}
        assert judged["factual_match"]["passed"] + judged["factual_match"]["failed"] == 6
        second = runner.invoke(app, [*args, "--experiment", "j2"])
        assert second.exit_code == 0 and llm.calls == calls  # unchanged outputs: zero calls
        forced = runner.invoke(app, [*args, "--experiment", "j3", "--no-cache"])
        assert forced.exit_code == 0 and llm.calls >= calls + 12
    con = duckdb.connect(str(env.warehouse))
    votes = con.execute(
        "SELECT experiment_id, count(*), bool_and(cached) FROM judge_votes GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [v[0] for v in votes] == ["j1", "j2", "j3"]
    assert votes[1][2] is True and votes[2][2] is False
    models = con.execute("SELECT DISTINCT judge_model FROM scores WHERE evaluator='factual_match'")
    assert models.fetchall() == [("judge-model-2026-01-15",)]


def test_the_demo_away_from_its_sample_data_says_where_to_run_it(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["demo", "--warehouse", str(tmp_path / "w.duckdb")],
        env={"EVALKEEPER_DATASETS_DIR": str(tmp_path / "data" / "datasets")},
    )
    assert result.exit_code == 2
    assert "no " + str(tmp_path / "data" / "datasets" / "appointments.jsonl") in result.stderr
    assert "EVALKEEPER_DATASETS_DIR" in result.stderr
    assert not (tmp_path / "w.duckdb").exists()  # stopped before anything ran
