"""The GitHub Actions workflow the README shows is the one the repository carries, and it
runs the gate the way the README says."""

from __future__ import annotations

from pathlib import Path

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
