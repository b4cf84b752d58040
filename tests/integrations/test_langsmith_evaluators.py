"""Evaluators both ways, and promote's `--to-langsmith` helper."""

from __future__ import annotations

import asyncio
from typing import Any

import langsmith
import pytest

from evalkeeper import registry
from evalkeeper.integrations.langsmith import (
    add_example_to_langsmith,
    push,
    register_langsmith_evaluator,
    to_langsmith,
)
from evalkeeper.integrations.langsmith.client import connect, example_uuid
from evalkeeper.models import EvaluatorRef, Example, ExampleMetadata
from evalkeeper.settings import Settings
from evalkeeper.testing.langsmith_server import LangSmithServer


def test_an_evalkeeper_evaluator_runs_inside_langsmith_evaluate(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    asyncio.run(push(ls_settings, "appointments"))
    client = connect(ls_settings).client
    adapter = to_langsmith(EvaluatorRef(name="contains", args={"key": "reply"}))

    def target(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"reply": "Let me check physiotherapy availability for Thursday 3 December."}

    results = langsmith.evaluate(
        target,
        data=client.list_examples(dataset_name="appointments", limit=3),
        evaluators=[adapter],
        client=client,
        upload_results=False,
        max_concurrency=0,
    )
    rows = list(results)
    assert len(rows) == 3
    scores = [r["evaluation_results"]["results"][0] for r in rows]
    assert {s.key for s in scores} == {"contains"}
    assert all(s.score in (0.0, 1.0) for s in scores)
    assert any(s.score == 1.0 for s in scores)  # the first example's phrase is in the reply


def test_an_erroring_evalkeeper_evaluator_raises_instead_of_scoring(restore_registry: None) -> None:
    @registry.evaluator("always_breaks", version="1")
    def always_breaks() -> Any:
        def score(outputs: dict[str, Any]) -> bool:
            raise RuntimeError("judge endpoint down")

        return score

    adapter = to_langsmith("always_breaks")
    run = langsmith.schemas.Run(
        id="00000000-0000-4000-8000-000000000009",
        name="t",
        run_type="chain",
        start_time="2026-11-30T14:03:00Z",
        trace_id="00000000-0000-4000-8000-000000000009",
        outputs={"reply": "x"},
    )
    with pytest.raises(RuntimeError, match="judge endpoint down"):
        adapter(run, None)


def test_langsmith_and_openevals_evaluators_register_with_name_and_version(
    restore_registry: None,
) -> None:
    def mentions_date(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict:
        """LangSmith style: named arguments, a {key, score, comment} dict."""
        hit = reference_outputs["date"] in outputs["reply"]
        return {"key": "mentions_date", "score": hit, "comment": "date named" if hit else "no"}

    def openevals_style(*, inputs: Any, outputs: Any, reference_outputs: Any, **kwargs: Any):
        """openevals shape: keyword-only, **kwargs, a list with one result."""
        assert set(kwargs) == set()  # run and example are not forced on it
        return [{"key": "correctness", "score": 0.25, "comment": "partly", "metadata": None}]

    register_langsmith_evaluator(mentions_date, name="mentions_date", version="2")
    register_langsmith_evaluator(openevals_style, name="oe_correctness", version="1")
    assert registry.get("mentions_date").version == "2"

    a = registry.build("mentions_date")
    score = asyncio.run(
        a(inputs={}, outputs={"reply": "on 3 December"}, reference_outputs={"date": "3 December"})
    )
    assert (score.name, score.version, score.passed, score.value) == (
        "mentions_date",
        "2",
        True,
        1.0,
    )
    assert score.comment == "date named"

    b = registry.build("oe_correctness")
    score = asyncio.run(b(inputs={"q": 1}, outputs={}, reference_outputs={}, run=None))
    assert (score.value, score.passed, score.comment, score.error) == (0.25, None, "partly", None)


def test_add_example_to_langsmith_creates_then_updates_with_incident_metadata(
    ls_server: LangSmithServer, ls_settings: Settings
) -> None:
    example = Example(
        id="inc-0042",
        inputs={"message": "cancel my booking [EMAIL_1a2b]"},
        reference_outputs={"reply": "Your booking is cancelled."},
        metadata=ExampleMetadata(
            category="cancellation", incident_id="INC-0042", promoted_from_run="run-9"
        ),
    )
    made = asyncio.run(add_example_to_langsmith(ls_settings, "regressions", example))
    assert made.created and made.dataset_created
    (sent,) = ls_server.requests_to("POST", "/v1/platform/datasets/")
    meta = sent.body["parts"][str(example_uuid("regressions", "inc-0042"))]["metadata"]
    assert meta["incident_id"] == "INC-0042" and meta["promoted_from_run"] == "run-9"
    assert meta["category"] == "cancellation"

    again = asyncio.run(add_example_to_langsmith(ls_settings, "regressions", example))
    assert not again.created and len(ls_server.examples_of("regressions")) == 1
