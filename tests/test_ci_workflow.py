"""The GitHub Actions workflow the README shows is the one the repository carries, and it
runs the gate the way the README says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "gate.yml"


def test_the_readme_shows_the_committed_workflow() -> None:
    assert f"```yaml\n{WORKFLOW.read_text()}```" in (ROOT / "README.md").read_text()


def test_the_gate_job_checks_out_history_restores_main_and_names_the_branch() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = flow["jobs"]["gate"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any(s.get("run") == "uv sync --frozen" for s in steps)
    restore = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache/restore"))
    save = next(
        s
        for s in flow["jobs"]["baseline"]["steps"]
        if str(s.get("uses", "")).startswith("actions/cache/save")
    )
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])
    gate = next(s for s in steps if "evalkeeper gate" in str(s.get("run", "")))
    assert gate["env"]["EVALKEEPER_GIT_BRANCH"] == "${{ github.head_ref }}"
    assert "--markdown gate.md" in gate["run"] and "--baseline main" in gate["run"]
    assert "--report gate.html" in gate["run"]
    uploads = {
        s["with"]["path"]: s
        for s in steps
        if str(s.get("uses", "")).startswith("actions/upload-artifact")
    }
    assert set(uploads) == {"gate.md", "gate.html"}
    assert all(s["if"] == "always()" for s in uploads.values())  # a failed gate keeps both


# -- the workflow's commands, run as a script ----------------------------------------------
#
# Each `run:` step of a job runs with bash (as Actions does: `bash -e`) in a git repository
# made from the project's dataset and workflow, with the workflow's and the step's `env:`
# after substituting the `${{ … }}` expressions (github context, secrets) the way Actions
# would. The `uses:` steps are modelled: checkout is the repository itself, setup-uv puts a
# `uv` on PATH that runs commands in the test's own (already synced) environment, and the
# cache restore/save steps copy the warehouse file through a folder standing in for the
# Actions cache, so the pull request's job sees what main's job saved.

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
JUDGES = ("factual_match", "tone_appropriate", "no_hallucination")
UV_SHIM = """#!/bin/sh
# stands in for astral-sh/setup-uv: the test's environment is already synced
case "$1" in
  sync) exit 0 ;;
  run) shift; exec "$@" ;;
esac
echo "uv stand-in: unexpected arguments $*" >&2
exit 127
"""


@dataclass
class Job:
    """What one job's steps did: each run step's command output and exit code."""

    outputs: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    uploaded: list[Path] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.outputs)


def substitute(text: str, context: dict[str, str], secrets: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("secrets."):
            return secrets.get(expr.removeprefix("secrets."), "")  # unset secrets are ""
        assert expr in context, f"the workflow uses ${{{{ {expr} }}}}, which this test lacks"
        return context[expr]

    return EXPRESSION.sub(one, text)


def run_job(
    name: str,
    workspace: Path,
    cache: Path,
    context: dict[str, str],
    secrets: dict[str, str],
    tools: Path,
    workflow_env: dict[str, str] | None = None,
) -> Job:
    flow = yaml.safe_load(WORKFLOW.read_text())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EVALKEEPER_", "GITHUB_"))}
    base["PATH"] = f"{tools}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{base['PATH']}"
    base["GITHUB_STEP_SUMMARY"] = str(workspace.parent / f"{name}-summary.md")
    env = {**base, **{k: substitute(str(v), context, secrets) for k, v in flow["env"].items()}}
    env.update(workflow_env or {})
    job = Job()
    for step in flow["jobs"][name]["steps"]:
        uses, opts = str(step.get("uses", "")), step.get("with", {})
        if "run" in step:
            assert step.get("if") is None, "a run step's `if` is not modelled by this test"
            step_env = {
                k: substitute(str(v), context, secrets) for k, v in step.get("env", {}).items()
            }
            done = subprocess.run(
                ["bash", "-e", "-c", substitute(step["run"], context, secrets)],
                cwd=workspace,
                env={**env, **step_env},
                capture_output=True,
                text=True,
                timeout=600,
            )
            job.outputs.append(done.stdout + done.stderr)
            job.codes.append(done.returncode)
            if done.returncode:
                return job  # Actions stops the job at the first failing step
        elif uses.startswith("actions/cache/restore"):
            key = substitute(opts["key"], context, secrets)
            prefix = substitute(opts["restore-keys"], context, secrets)
            hits = sorted(cache.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime_ns)
            exact = cache / key
            found = exact if exact.exists() else (hits[-1] if hits else None)
            if found is not None:
                (workspace / opts["path"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, workspace / opts["path"])
        elif uses.startswith("actions/cache/save"):
            shutil.copy2(
                workspace / opts["path"], cache / substitute(opts["key"], context, secrets)
            )
        elif uses.startswith("actions/upload-artifact"):
            if (workspace / opts["path"]).exists():
                job.uploaded.append(workspace / opts["path"])
        else:
            # checkout: the workspace is the checkout; setup-uv: the `uv` stand-in on PATH
            assert uses.startswith(("actions/checkout", "astral-sh/setup-uv")), uses
    return job


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> dict[str, Path]:
    """A repository made from the project's dataset and workflow: `main` checked out in one
    workspace (the baseline job's) and a pull request's branch in another (the gate's);
    `cache` stands in for the Actions cache, `tools` holds the `uv` stand-in."""
    origin = tmp_path / "origin"
    for rel in (
        "data/datasets/appointments.jsonl",
        "data/datasets/appointments.toml",
        ".github/workflows/gate.yml",
        ".gitignore",
    ):
        (origin / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, origin / rel)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "the project")
    main, pr = tmp_path / "main", tmp_path / "pr"
    git(tmp_path, "clone", "-q", str(origin), str(main))
    git(tmp_path, "clone", "-q", str(origin), str(pr))
    git(pr, "checkout", "-q", "-b", "change-the-agent")
    (pr / "CHANGE.md").write_text("a change\n")
    git(pr, "add", "-A")
    git(pr, "commit", "-q", "-m", "a change")
    tools, cache = tmp_path / "tools", tmp_path / "cache"
    tools.mkdir()
    cache.mkdir()
    (tools / "uv").write_text(UV_SHIM)
    (tools / "uv").chmod(0o755)
    return {"main": main, "pr": pr, "cache": cache, "tools": tools}


def contexts(repo: dict[str, Path]) -> tuple[dict[str, str], dict[str, str]]:
    """The github context of a push to main (run 101) and of a pull request (run 202)."""
    push = {"github.sha": git(repo["main"], "rev-parse", "HEAD"), "github.run_id": "101"}
    head = git(repo["pr"], "rev-parse", "HEAD")
    pull = {
        "github.head_ref": "change-the-agent",
        "github.event.pull_request.head.sha": head,
        "github.run_id": "202",
    }
    return push, pull


@pytest.mark.slow
def test_without_a_judge_secret_the_gate_decides_on_the_evaluators_that_ran(
    repository: dict[str, Path],
) -> None:
    """Seen: copied as it is into a repository with no judge endpoint, the baseline job's run
    skipped the judges without allowance, so it could never be a baseline ("skipped
    factual_match … not allowed") and every gate said inconclusive."""
    push, pull = contexts(repository)
    main = run_job(
        "baseline", repository["main"], repository["cache"], push, {}, repository["tools"]
    )
    assert main.codes == [0, 0], main.output
    assert "no judge endpoint (secret EVALKEEPER_JUDGE_BASE_URL)" in main.output
    assert "cannot be a baseline" not in main.output
    assert list(repository["cache"].iterdir()) == [
        repository["cache"] / "evalkeeper-warehouse-main-101"
    ]

    gate = run_job("gate", repository["pr"], repository["cache"], pull, {}, repository["tools"])
    assert gate.codes == [0, 0], gate.output
    summary = (repository["pr"] / "gate.md").read_text()
    assert "evalkeeper verdict: **PASS**" in summary
    assert "no baseline" not in summary
    opted = next(line for line in summary.splitlines() if line.startswith("- opted out"))
    assert all(f"`{name}`" in opted for name in JUDGES) and "judge not configured" in opted
    assert gate.uploaded == [repository["pr"] / "gate.md", repository["pr"] / "gate.html"]
    assert 'data-verdict="pass"' in (repository["pr"] / "gate.html").read_text()
    assert "**PASS**" in (repository["pr"].parent / "gate-summary.md").read_text()

    # a real regression is still one: the v2 agent breaks critical rows on `contains`
    worse = run_job(
        "gate",
        repository["pr"],
        repository["cache"],
        pull,
        {},
        repository["tools"],
        workflow_env={"TARGET": "evalkeeper.demo.agent:v2"},
    )
    assert worse.codes == [0, 1], worse.output
    assert "evalkeeper verdict: **REGRESSION**" in (repository["pr"] / "gate.md").read_text()
    report = (repository["pr"] / "gate.html").read_text()
    assert 'data-verdict="regression"' in report and "INC-2041" in report


@pytest.mark.slow
def test_with_a_judge_secret_both_jobs_run_the_judges_against_the_endpoint(
    repository: dict[str, Path],
) -> None:
    from evalkeeper.testing.llm_server import ScriptedLLMServer

    push, pull = contexts(repository)
    with ScriptedLLMServer() as llm:
        secrets = {
            "EVALKEEPER_JUDGE_BASE_URL": llm.base_url,
            "EVALKEEPER_JUDGE_API_KEY": "test-key",
            "EVALKEEPER_JUDGE_MODEL": "judge-model-2026-01-15",
        }
        args = (repository["cache"], push, secrets, repository["tools"])
        main = run_job("baseline", repository["main"], *args)
        assert main.codes == [0, 0], main.output
        after_main = llm.calls
        assert after_main >= 28 * len(JUDGES)  # every smoke row, every judge, 1 vote or more
        gate = run_job(
            "gate", repository["pr"], repository["cache"], pull, secrets, repository["tools"]
        )
    assert "no judge endpoint" not in main.output + gate.output
    summary = (repository["pr"] / "gate.md").read_text()
    assert " vs baseline `appointments-smoke-" in summary and "opted out" not in summary
    # the same agent twice: a pass, unless the shared machine slowed the baseline's calls
    # enough that `latency_ok` cells became underpowered (then inconclusive, and says so)
    reasons = [line for line in summary.splitlines() if line.startswith("- ")]
    if gate.codes == [0, 2]:
        assert all("underpowered" in r for r in reasons), summary
    else:
        assert gate.codes == [0, 0] and "evalkeeper verdict: **PASS**" in summary, gate.output
    con = duckdb.connect(str(repository["pr"] / "data" / "warehouse.duckdb"), read_only=True)
    # every smoke row judged by every judge on both sides; the groundedness judge skips
    # only the rows without retrieved context, which leaves the run a valid baseline
    judged = con.execute(
        "SELECT e.git_branch, s.evaluator, count(*) FILTER (WHERE NOT s.skipped), "
        "count(*) FILTER (WHERE s.skipped AND s.details->>'reason' = 'no_context'), "
        "count(*) FILTER (WHERE s.skipped AND coalesce(s.details->>'reason', '') <> 'no_context') "
        "FROM scores s JOIN experiments e USING (experiment_id) "
        "WHERE s.evaluator IN ? GROUP BY ALL ORDER BY ALL",
        [list(JUDGES)],
    ).fetchall()
    con.close()
    assert [(b, e) for b, e, *_ in judged] == sorted(
        (branch, name) for branch in ("change-the-agent", "main") for name in JUDGES
    )
    for _branch, name, scored, no_context, other_skips in judged:
        assert scored + no_context == 28 and other_skips == 0, judged
        assert no_context == 0 if name != "no_hallucination" else 0 < scored < 28, judged
