"""`evalkeeper demo` runs on its own copy of its data: a promote into the bundled dataset
(here a temporary copy of the repository's `data/`, never the repository's own) changes
nothing it runs, and it can always run again."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.demo.data import demo_data_dir
from evalkeeper.settings import Settings
from evalkeeper.traces.ingest import ingest
from evalkeeper.traces.sources import open_source
from tests.conftest import ROOT
from tests.traces.test_promote import REFERENCE, TRACE_ID, raw_trace

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


def bundled_copy(tmp_path: Path) -> Path:
    """A copy of the repository's `data/` as the demo reads it (datasets, labels, traces)."""
    data = tmp_path / "data"
    (data / "datasets").mkdir(parents=True)
    for suffix in (".jsonl", ".toml"):
        shutil.copy(ROOT / "data" / "datasets" / f"appointments{suffix}", data / "datasets")
    for folder in ("labels", "traces"):
        shutil.copytree(ROOT / "data" / folder, data / folder)
    return data


def demo(settings: Settings) -> tuple[int, str]:
    out = runner.invoke(
        app,
        ["demo", "--suite", "smoke", "--no-monitoring", "--warehouse", str(settings.warehouse)],
        env={"EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir)},
    )
    return out.exit_code, out.stdout + out.stderr + (repr(out.exception) if out.exception else "")


def verdict(text: str) -> str:
    found = re.findall(r"\b(PASS|REGRESSION|INCONCLUSIVE)\b", text)
    assert found, text
    return found[0]


def test_demo_runs_again_after_a_promote_into_the_bundled_dataset(tmp_path: Path) -> None:
    """Seen: after a promote into the bundled dataset, `demo` crashed with an
    ExperimentError traceback, exit 1."""
    data = bundled_copy(tmp_path)
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        datasets_dir=data / "datasets",
        redaction_key=SecretStr("promote-test-key-0123"),
    )
    code, first = demo(settings)
    assert code == 0, first
    copy = demo_data_dir(settings)
    assert (copy / "datasets" / "appointments.jsonl").is_file()
    assert str(copy / "datasets") in first.replace("\n", "")

    source = tmp_path / "traffic.jsonl"
    source.write_text(json.dumps(raw_trace()) + "\n")
    asyncio.run(ingest(settings, open_source(f"jsonl:{source}", settings)))
    promoted = runner.invoke(
        app,
        [
            "promote", TRACE_ID, "--dataset", "appointments", "--reference",
            json.dumps(REFERENCE), "--incident", "INC-2041", "--category", "cancellation",
            "--warehouse", str(settings.warehouse),
        ],
        env={
            "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
            "EVALKEEPER_REDACTION_KEY": "promote-test-key-0123",
        },
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.stdout + promoted.stderr
    assert TRACE_ID in (data / "datasets" / "appointments.jsonl").read_text()
    assert TRACE_ID not in (copy / "datasets" / "appointments.jsonl").read_text()

    code, second = demo(settings)
    assert code == 0, second
    assert "Traceback" not in second and "ExperimentError" not in second
    assert verdict(second) == verdict(first)
