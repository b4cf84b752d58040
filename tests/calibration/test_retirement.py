"""Retirement end to end: judges answered over HTTP by the scripted server on 127.0.0.1,
human labels imported through the CLI, the report recorded, and the next gate without the
retired judge. Then reinstatement by a healthy calibration of a new version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalkeeper import analysis as cmp
from evalkeeper.cli import app
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from evalkeeper.warehouse import Warehouse
from tests.calibration.scenario import judge_settings, judged_run, write_labels, write_scenario

N = 300
runner = CliRunner()


class World:
    def __init__(self, root: Path, server: ScriptedLLMServer) -> None:
        self.root = root
        self.server = server
        self.settings: Settings = judge_settings(root, server)
        self.wh_args = ["--warehouse", str(self.settings.warehouse)]
        self.before_record: cmp.Comparison | None = None
        self.report: dict[str, Any] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("retire")
    policy = Policy(error_rates={"factual_match": 0.30, "tone_appropriate": 0.02})
    with ScriptedLLMServer(policy=policy) as server:
        w = World(root, server)
        _, replay = write_scenario(root, N)
        _, flipped = write_scenario(root, N, flip_all=True)
        judged_run(w.settings, replay, "base", ["factual_match", "tone_appropriate"])
        for judge in ("factual_match", "tone_appropriate"):
            labels = write_labels(root / f"{judge}.csv", "base", judge, N)
            out = runner.invoke(app, ["calibrate", "import", str(labels), *w.wh_args])
            assert out.exit_code == 0, out.output
        # the candidate: every answer now wrong, judged by factual_match only
        judged_run(w.settings, flipped, "cand", ["factual_match"])
        w.before_record = cmp.compare(
            Warehouse.from_settings(w.settings), "cand", "base", w.settings
        )
        out = runner.invoke(
            app, ["calibrate", "report", "--record", "--format", "json", *w.wh_args]
        )
        assert out.exit_code == 0, out.output
        w.report = {j["judge"]: j for j in json.loads(out.stdout)["judges"]}
        yield w


def test_report_has_the_json_shape_and_retires_the_70_percent_judge(world: World) -> None:
    fm, tone = world.report["factual_match"], world.report["tone_appropriate"]
    for key in (
        "judge", "version", "quarter", "n_items", "agreement", "agreement_ci", "kappa",
        "kappa_se", "kappa_ci", "ac1", "ac1_se", "confusion", "ceiling", "status",
    ):  # fmt: skip
        assert key in fm
    assert set(fm["ceiling"]) >= {"n_items", "agreement", "kappa", "ac1", "alpha"}
    assert fm["n_items"] == N and fm["quarter"] == "2026Q4"
    assert 0.62 < fm["agreement"] < 0.78 and fm["agreement_ci"][1] < 0.80
    assert fm["status"] == "retired"
    assert tone["status"] == "healthy" and tone["agreement_ci"][0] > 0.80
    assert sum(map(sum, fm["confusion"])) == N
    # the humans agree with each other on every doubly-labelled item
    assert fm["ceiling"]["n_items"] == N // 5 and fm["ceiling"]["agreement"] == 1.0
    assert fm["ceiling"]["alpha"] == pytest.approx(1.0)
    # the disagreements carry the judge's reasoning
    assert len(fm["disagreements"]) == round(N * (1 - fm["agreement"]))
    assert all("scripted judge" in (d["reasoning"] or "") for d in fm["disagreements"])


def test_before_retirement_the_judge_fails_the_gate(world: World) -> None:
    c = world.before_record
    assert c is not None and c.verdict == "regression"
    assert "factual_match" in c.evaluators


def test_the_next_gate_ignores_the_retired_judge_and_says_so(world: World) -> None:
    s, wh = world.settings, Warehouse.from_settings(world.settings)
    c = cmp.compare(wh, "cand", "base", s)
    assert "factual_match" not in c.evaluators and "latency_ok" in c.evaluators
    assert all(cell.evaluator != "factual_match" for cell in c.cells)
    assert c.verdict == "pass"
    (warning,) = [w for w in c.warnings if "is retired" in w]
    assert warning.startswith("judge factual_match is retired (")
    assert "agreement 0.7" in warning or "agreement 0.6" in warning
    assert "not used in this verdict" in warning
    out = runner.invoke(app, ["compare", "cand", "--baseline", "base", *world.wh_args])
    assert "judge factual_match is retired" in out.output


def test_old_scores_stay_flagged(world: World) -> None:
    wh = Warehouse.from_settings(world.settings)
    rows = dict(
        wh.rows("SELECT judge, count(*) FILTER (WHERE retired) FROM judge_scores GROUP BY judge")
    )
    assert rows == {"factual_match": 2 * N, "tone_appropriate": 0}
    assert wh.rows("SELECT count(*) FROM scores WHERE evaluator = 'factual_match'") == [(2 * N,)]


def test_judges_command_shows_the_status_history(world: World) -> None:
    out = runner.invoke(app, ["judges", "--format", "json", *world.wh_args])
    assert out.exit_code == 0, out.output
    rows = {r["judge"]: r for r in json.loads(out.stdout)}
    assert rows["factual_match"]["status"] == "retired"
    assert rows["factual_match"]["history"][0].split()[1] == "retired"
    assert rows["tone_appropriate"]["status"] == "healthy"
    table = runner.invoke(app, ["judges", *world.wh_args])
    assert "status history of factual_match" in table.output


def test_reinstatement_takes_a_healthy_new_version(world: World) -> None:
    # run last in this module: it changes the judge's status
    s = world.settings.model_copy(
        update={
            "judge": world.settings.judge.model_copy(update={"model": "scripted-judge-2026-02-01"})
        }
    )
    world.server.reset(Policy(error_rates={"factual_match": 0.02}))
    _, replay = write_scenario(world.root, N)
    judged_run(s, replay, "base-v2", ["factual_match"])
    labels = write_labels(world.root / "v2.csv", "base-v2", "factual_match", N)
    assert runner.invoke(app, ["calibrate", "import", str(labels), *world.wh_args]).exit_code == 0
    out = runner.invoke(
        app,
        ["calibrate", "report", "--judge", "factual_match", "--record", "--format", "json",
         *world.wh_args],
    )  # fmt: skip
    by_model = {j["model"]: j for j in json.loads(out.stdout)["judges"]}
    assert by_model["scripted-judge-2026-01-01"]["status"] == "retired"
    assert by_model["scripted-judge-2026-02-01"]["status"] == "healthy"
    wh = Warehouse.from_settings(s)
    assert wh.rows("SELECT status, model FROM judges WHERE judge = 'factual_match'") == [
        ("healthy", "scripted-judge-2026-02-01")
    ]
    # the old version's scores stay out of verdicts; the new version gates again
    old = cmp.compare(wh, "cand", "base", s)
    assert "factual_match" not in old.evaluators
    assert [w for w in old.warnings if "judge factual_match is retired" in w]
    _, flipped = write_scenario(world.root, N, flip_all=True)
    judged_run(s, flipped, "cand-v2", ["factual_match"])
    new = cmp.compare(wh, "cand-v2", "base-v2", s)
    assert "factual_match" in new.evaluators and new.verdict == "regression"
    assert not [w for w in new.warnings if "is retired" in w]
    health = {
        r[0]: r[1]
        for r in wh.rows(
            "SELECT judge_model, status FROM judge_health WHERE judge = 'factual_match'"
        )
    }
    assert health == {
        "scripted-judge-2026-01-01": "retired",
        "scripted-judge-2026-02-01": "healthy",
    }
