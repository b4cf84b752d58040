"""`evalkeeper demo` ends by naming the HTML reports it wrote: the v2 experiment's, the
monitoring window's and the judge calibration's, each a file beside the warehouse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from evalkeeper.cli import app
from evalkeeper.settings import Settings
from tests.demo.test_demo_rerun import bundled_copy

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


def test_the_demo_names_the_reports_it_wrote(tmp_path: Path) -> None:
    data = bundled_copy(tmp_path)
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        datasets_dir=data / "datasets",
        redaction_key=SecretStr("demo-report-test-key-0123"),
    )
    out = runner.invoke(
        app,
        ["demo", "--suite", "smoke", "--warehouse", str(settings.warehouse)],
        env={
            "EVALKEEPER_DATASETS_DIR": str(settings.datasets_dir),
            "EVALKEEPER_REDACTION_KEY": "demo-report-test-key-0123",
            "EVALKEEPER_MONITORS_DIR": str(tmp_path / "monitors"),
        },
    )
    text = out.stdout + out.stderr + (repr(out.exception) if out.exception else "")
    assert out.exit_code == 0, text
    tail = text[text.rindex("The reports") :]
    named = dict(re.findall(r"^  (.+?): (/\S+\.html)$", tail, flags=re.MULTILINE))
    reports = tmp_path / "reports"
    experiment = next(k for k in named if k.startswith("experiment demo-v2-"))
    window = next(k for k in named if k.startswith("monitoring window win-"))
    assert set(named) == {experiment, window, "judge calibration"}, tail
    for about, path in named.items():
        assert Path(path).is_file() and Path(path).parent == reports, about
    assert "not written" not in tail
    page = Path(named[window]).read_text()
    assert 'data-verdict="rollback"' in page and 'data-chart="statistic"' in page
    assert 'data-chart="agreement"' in Path(named["judge calibration"]).read_text()
