"""Whose fault an error is, as the command line says it: an input error is one line and
exit 2; anything else is a bug, with its traceback and exit 70 (never 1, a regression)."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import evalkeeper
import evaluators
from evalkeeper.cli import app
from evalkeeper.errors import EvalkeeperError, InputError
from evalkeeper.exitcodes import EXIT_BUG, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_REGRESSION
from evalkeeper.models import Score
from evalkeeper.registry import evaluator
from evalkeeper.settings import Settings
from tests.helpers import write_dataset

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
TARGET = "tests.fake_targets:instant"


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("EVALKEEPER_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("EVALKEEPER_DATASETS_DIR", str(settings.datasets_dir))
    monkeypatch.setenv("EVALKEEPER_GIT_COMMIT", "c0ffee")
    monkeypatch.setenv("EVALKEEPER_GIT_BRANCH", "main")
    return settings


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "d.jsonl", 3)


def assert_input_error(out: Any, *needles: str) -> None:
    """Exit 2, one `error:` line on stderr that says each needle, no traceback."""
    assert out.exit_code == EXIT_ERROR, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], out.stderr
    assert "Traceback" not in out.output


def assert_bug(out: Any, exc_type: str) -> None:
    """Exit 70 (never 1), the traceback on stderr, and a last line that says it is a bug."""
    assert out.exit_code == EXIT_BUG != EXIT_REGRESSION, out.output
    assert "Traceback (most recent call last)" in out.stderr
    assert re.search(rf"^([\w.]+\.)?{exc_type}: ", out.stderr, re.MULTILINE), out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {exc_type} is not an input")


# -- input errors: one line, exit 2 -------------------------------------------------------


def test_gate_on_a_dataset_directory_is_one_line_naming_the_path(
    env: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "datasets"
    folder.mkdir()
    out = runner.invoke(app, ["gate", "--dataset", str(folder), "--target", TARGET])
    assert_input_error(out, f"{folder}: a directory, not a dataset file", "pass a .jsonl file")


def test_the_seen_gate_on_tmp_exits_2_from_the_console_script(tmp_path: Path) -> None:
    """The report: `evalkeeper gate --dataset /tmp` printed IsADirectoryError and exited 1."""
    env = {**os.environ, "EVALKEEPER_WAREHOUSE": str(tmp_path / "wh.duckdb")}
    done = subprocess.run(
        [sys.executable, "-c", "from evalkeeper.entry import main; main()",
         "gate", "--dataset", "/tmp", "--target", TARGET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == EXIT_ERROR, done.stderr
    assert done.stderr.startswith("error: /tmp: a directory, not a dataset file")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_missing_dataset_file_is_an_input_error(env: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    out = runner.invoke(app, ["run", "--dataset", str(missing), "--target", TARGET])
    assert_input_error(out, f"{missing}: no such dataset file")


def test_a_dataset_that_is_not_utf8_is_an_input_error(env: Settings, tmp_path: Path) -> None:
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b'{"id": "x", "inputs": {"q": "\xff\xfe"}}\n')
    out = runner.invoke(app, ["run", "--dataset", str(binary), "--target", TARGET])
    assert_input_error(out, f"{binary}: not UTF-8 text", "save it as UTF-8")


def test_a_replay_target_directory_is_an_input_error(
    env: Settings, dataset: Path, tmp_path: Path
) -> None:
    out = runner.invoke(app, ["run", "--dataset", str(dataset), "--target", f"replay:{tmp_path}"])
    assert_input_error(out, f"{tmp_path} is a directory", "replay:PATH.jsonl")


@pytest.mark.parametrize("command", [["experiments"], ["run", "--target", TARGET]])
def test_a_warehouse_directory_is_an_input_error(
    env: Settings, dataset: Path, tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "whdir"
    folder.mkdir()
    args = [*command, "--warehouse", str(folder)]
    if command[0] == "run":
        args += ["--dataset", str(dataset)]
    out = runner.invoke(app, args)
    assert_input_error(out, f"{folder}: a directory, not a warehouse file", "--warehouse")


def test_a_warehouse_that_is_not_duckdb_is_an_input_error(env: Settings, tmp_path: Path) -> None:
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    out = runner.invoke(app, ["experiments", "--warehouse", str(text)])
    assert_input_error(out, f"{text}: cannot be opened as a DuckDB warehouse", "--warehouse")


def test_an_evaluator_refusing_its_arguments_is_an_input_error(
    env: Settings, dataset: Path, restore_registry: None
) -> None:
    @evaluator("refuses_args", version="1")
    def refuses_args(threshold: float = 0.5) -> Callable[..., bool]:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold={threshold}: use a share in [0, 1], e.g. 0.5")
        return lambda outputs: True

    config = dataset.with_suffix(".toml")
    config.write_text('[[evaluators]]\nname = "refuses_args"\nargs = {threshold = 7}\n')
    out = runner.invoke(app, ["run", "--dataset", str(dataset), "--target", TARGET])
    assert_input_error(out, "threshold=7: use a share in [0, 1]")


def test_an_input_error_raised_anywhere_is_one_line(
    env: Settings, dataset: Path, restore_registry: None
) -> None:
    @evaluator("needs_a_file", version="1")
    def needs_a_file() -> Callable[..., bool]:
        raise InputError("rubric.md: no such file; write the rubric first")

    out = runner.invoke(
        app, ["run", "--dataset", str(dataset), "--target", TARGET, "--evaluators", "needs_a_file"]
    )
    assert_input_error(out, "rubric.md: no such file; write the rubric first")


# -- bugs: traceback, exit 70 ---------------------------------------------------------------


def test_an_evaluator_factory_bug_shows_its_traceback_and_exits_70(
    env: Settings, dataset: Path, restore_registry: None
) -> None:
    @evaluator("buggy_factory", version="1")
    def buggy_factory() -> Callable[..., bool]:
        raise RuntimeError("cache not warmed")  # built before any row: not an error score

    out = runner.invoke(
        app, ["run", "--dataset", str(dataset), "--target", TARGET, "--evaluators", "buggy_factory"]
    )
    assert_bug(out, "RuntimeError")
    assert "cache not warmed" in out.stderr and "in buggy_factory" in out.stderr


def test_a_validation_error_from_a_bug_is_no_bad_input_message(
    env: Settings, dataset: Path, restore_registry: None
) -> None:
    """pydantic's ValidationError is a ValueError; raised by code, it is still a bug."""

    @evaluator("builds_a_bad_score", version="1")
    def builds_a_bad_score() -> Callable[..., Score]:
        template = Score.model_validate({"value": "high"})  # the bug
        return lambda outputs: template

    args = ["--target", TARGET, "--evaluators", "builds_a_bad_score"]
    out = runner.invoke(app, ["run", "--dataset", str(dataset), *args])
    assert_bug(out, "ValidationError")
    assert "value\n  Input should be a valid number" in out.stderr


def test_a_target_module_whose_import_fails_is_a_bug_not_a_bad_spec(
    env: Settings, dataset: Path
) -> None:
    sys.modules.pop("tests.cli.broken_target", None)
    out = runner.invoke(
        app, ["run", "--dataset", str(dataset), "--target", "tests.cli.broken_target:run"]
    )
    assert_bug(out, "TypeError")
    assert "broken_target.py" in out.stderr


# -- exits that pass through unchanged -----------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0, out.output
    assert out.stdout == f"evalkeeper {version('evalkeeper')}\n"


def test_ctrl_c_still_exits_130_naming_the_experiment(
    env: Settings, dataset: Path, restore_registry: None
) -> None:
    @evaluator("pressed_ctrl_c", version="1")
    def pressed_ctrl_c() -> Callable[..., bool]:
        raise KeyboardInterrupt

    out = runner.invoke(
        app,
        ["run", "--dataset", str(dataset), "--target", TARGET, "--evaluators", "pressed_ctrl_c",
         "--experiment", "ctrl-c"],
    )  # fmt: skip
    assert out.exit_code == EXIT_INTERRUPTED, out.output
    assert "--experiment ctrl-c" in out.stderr and "Traceback" not in out.output


def test_usage_errors_and_explicit_exit_codes_pass_through(env: Settings) -> None:
    out = runner.invoke(app, ["run", "--no-such-option"])
    assert out.exit_code == 2 and "No such option" in out.output
    out = runner.invoke(app, ["compare", "ghost"])  # a command's own typer.Exit(2)
    assert out.exit_code == EXIT_ERROR and "Traceback" not in out.output


# -- one base ------------------------------------------------------------------------------


def _exception_classes() -> Iterator[type[BaseException]]:
    for package in (evalkeeper, evaluators):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(".__main__"):  # runs the command line when imported
                continue
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == info.name:
                    yield cls


def test_every_exception_evalkeeper_defines_derives_from_the_base() -> None:
    classes = set(_exception_classes())
    assert len(classes) >= 30
    assert not {c.__qualname__ for c in classes if not issubclass(c, EvalkeeperError)}
