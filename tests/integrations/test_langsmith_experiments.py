"""Experiment upload with the official SDK against the LangSmith-compatible server."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.integrations.langsmith import LangSmithError, upload
from evalkeeper.integrations.langsmith.client import example_uuid
from evalkeeper.integrations.langsmith.experiments import feedback_uuid, run_uuid
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer
from tests.helpers import run_suite, write_dataset


@pytest.fixture
def experiment(ls_settings: Settings) -> str:
    write_dataset(ls_settings.datasets_dir / "small.jsonl", 6)
    summary = run_suite(
        ls_settings,
        dataset="small",
        suite="full",
        target="tests.fake_targets:broken_on_sevens",
        repetitions=2,
        experiment_id="exp-upload-1",
    )
    assert summary.experiment.status == "completed"
    return summary.experiment.experiment_id


def test_upload_twice_records_the_experiment_once(
    ls_server: LangSmithServer, ls_settings: Settings, experiment: str
) -> None:
    first = asyncio.run(upload(ls_settings, experiment))
    assert first.dataset_created  # the dataset was not in LangSmith: pushed first
    assert (first.runs_created, first.runs_existing) == (12, 0)
    assert first.feedback_created == 24  # 6 examples x 2 repetitions x 2 evaluators

    (session,) = ls_server.requests_to("POST", "/sessions")
    meta = session.body["extra"]["metadata"]
    assert meta["evalkeeper_experiment_id"] == experiment
    assert meta["branch"] == "main" and meta["commit"] == "0123456789abcdef"
    assert meta["target"] == "tests.fake_targets:broken_on_sevens"
    assert meta["dataset_version"]
    ds_id = next(d["id"] for d in ls_server.datasets.values() if d["name"] == "small")
    assert session.body["reference_dataset_id"] == ds_id

    runs = [r for b in ls_server.requests_to("POST", "/runs/batch") for r in b.body["post"]]
    assert len(runs) == 12
    one = next(r for r in runs if r["id"] == run_uuid(experiment, "ex-00001", 1))
    assert one["reference_example_id"] == str(example_uuid("small", "ex-00001"))
    assert one["inputs"] == {"n": 1} and one["outputs"] == {"reply": "answer 1", "tool_calls": []}
    assert one["session_id"] == str(next(iter(ls_server.sessions)))

    feedback = [r.body for r in ls_server.requests_to("POST", "/feedback")]
    fb = next(
        f for f in feedback if f["id"] == feedback_uuid(experiment, "ex-00001", 1, "exact_match")
    )
    assert fb["key"] == "exact_match" and fb["score"] == 1.0
    assert fb["run_id"] == run_uuid(experiment, "ex-00001", 1)
    assert not ls_server.unknown_requests()

    ls_server.reset_requests()
    second = asyncio.run(upload(ls_settings, experiment))
    assert (second.runs_created, second.runs_existing) == (12 - 12, 12)
    assert (second.feedback_created, second.feedback_existing) == (0, 24)
    assert not ls_server.requests_to("POST", "/runs/batch")
    assert not ls_server.requests_to("POST", "/feedback")
    assert not ls_server.requests_to("POST", "/sessions")
    assert len(ls_server.sessions) == 1 and len(ls_server.runs) == 12
    assert len(ls_server.feedback) == 24


def test_a_failed_upload_is_reported_and_the_next_one_completes_it(
    ls_server: LangSmithServer, ls_settings: Settings, experiment: str
) -> None:
    ls_server.fail_next("POST", "/feedback", status=400, times=1)
    with pytest.raises(LangSmithError, match="sending feedback failed"):
        asyncio.run(upload(ls_settings, experiment))
    assert len(ls_server.runs) == 12 and len(ls_server.feedback) == 0
    done = asyncio.run(upload(ls_settings, experiment))
    assert (done.runs_created, done.feedback_created) == (0, 24)
    assert len(ls_server.runs) == 12 and len(ls_server.feedback) == 24


def test_run_upload_exit_code_says_the_upload_failed(
    ls_server: LangSmithServer, ls_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dataset(ls_settings.datasets_dir / "small.jsonl", 4)
    monkeypatch.setenv("EVALKEEPER_DATASETS_DIR", str(ls_settings.datasets_dir))
    monkeypatch.setenv("EVALKEEPER_LANGSMITH_ENDPOINT", ls_server.url)
    monkeypatch.setenv("EVALKEEPER_LANGSMITH_API_KEY", "test-key-not-a-secret")
    args = ["run", "--dataset", "small", "--target", "tests.fake_targets:instant"]
    args += ["--warehouse", str(ls_settings.warehouse), "--json", "--upload"]
    ls_server.fail_next("POST", "/sessions", status=403, times=1)
    runner = CliRunner()
    failed = runner.invoke(app, [*args, "--experiment", "exp-cli-1"])
    assert failed.exit_code == 4, failed.output
    assert "upload failed" in failed.output and "creating the experiment" in failed.output
    assert json.loads(failed.stdout[failed.stdout.index("{") :])["experiment"]["status"] == (
        "completed"
    )  # the local experiment is kept
    ok = runner.invoke(app, ["upload", "exp-cli-1", "--warehouse", str(ls_settings.warehouse)])
    assert ok.exit_code == 0, ok.output
    assert len(ls_server.runs_of("exp-cli-1")) == 4


def test_the_report_links_the_uploaded_experiment(
    ls_server: LangSmithServer, ls_settings: Settings, experiment: str
) -> None:
    from evalkeeper.integrations.langsmith.uploads import recorded_upload
    from evalkeeper.report.html.experiment import build_experiment_report
    from evalkeeper.warehouse import Warehouse

    wh = Warehouse.from_settings(ls_settings)
    before = build_experiment_report(wh, experiment, settings=ls_settings).render()
    assert "LangSmith" not in before  # not uploaded yet: no link
    assert recorded_upload(ls_settings, experiment) is None

    done = asyncio.run(upload(ls_settings, experiment))
    (session_id,) = ls_server.sessions
    assert done.url is not None and str(session_id) in done.url
    recorded = recorded_upload(ls_settings, experiment)
    assert recorded is not None
    assert (recorded["url"], recorded["project_id"]) == (done.url, str(session_id))
    html = build_experiment_report(wh, experiment, settings=ls_settings).render()
    assert "<dt>LangSmith</dt>" in html and f'href="{done.url}"' in html
