"""The harness itself: every instrumentation's runs reach `evalkeeper listen` and are
stored, with what held before issue 18 (service, version, environment, redaction)."""

from __future__ import annotations

import json

import pytest

from tests.instrumented.agent import EMAIL, ENVIRONMENT, PHONE, SERVICE, VERSION
from tests.instrumented.conftest import INSTRUMENTATIONS, RECORDED
from tests.instrumented.traffic import Traffic

pytestmark = pytest.mark.slow
ALL = [*INSTRUMENTATIONS, *RECORDED]


@pytest.mark.parametrize("run", ["ok", "tool_error"])
@pytest.mark.parametrize("instrumentation", ALL)
def test_each_run_is_stored_once_redacted_with_its_resource(
    traffic: Traffic, instrumentation: str, run: str
) -> None:
    trace = traffic.stored(instrumentation, run)
    assert (trace.service, trace.version, trace.environment) == (SERVICE, VERSION, ENVIRONMENT)
    text = json.dumps(trace.model_dump(mode="json"), ensure_ascii=False)
    assert EMAIL not in text and PHONE not in text and "415 555 0132" not in text


def test_the_model_server_was_asked_twice_per_normal_run_and_once_per_failing_one(
    traffic: Traffic,
) -> None:
    # the recorded payload's calls were made when it was recorded, not now
    assert len(traffic.chat_requests) == 3 * len(INSTRUMENTATIONS)
