"""The instrumented traffic, run once for the tests of this folder."""

from __future__ import annotations

import pytest

from tests.instrumented.traffic import Traffic, run_traffic

INSTRUMENTATIONS = [
    "openinference-openai",
    "openinference-langchain",
    "otel-openai-v2",
    "traceloop",
]
RECORDED = ("openllmetry-legacy",)


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    """Every instrumentation's normal and failing run, stored by a real `evalkeeper listen`."""
    return run_traffic(tmp_path_factory.mktemp("instrumented"), INSTRUMENTATIONS, recorded=RECORDED)
