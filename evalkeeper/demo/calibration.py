"""The demo's calibration act: two judges measured against bundled human labels, one kept,
one retired, and the next gate without the retired one.

The judges are answered by the scripted stand-in `evalkeeper.testing.llm_server` on
127.0.0.1 (not an LLM): it reads the right verdict from an `[[expect:…]]` marker in each
recorded answer and then errs on purpose, `tone_appropriate` on 3% of its calls and
`factual_match` on 35%. The recorded answers (demo agent v2 on the sample dataset) and the
labels of two annotators are in `data/labels/` (written by `data/labels/make_labels.py`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, SecretStr

from evalkeeper.calibration.labels import import_labels
from evalkeeper.calibration.measure import measure
from evalkeeper.calibration.models import JudgeCalibration
from evalkeeper.calibration.sampling import SampleError, sample_items
from evalkeeper.calibration.status import record
from evalkeeper.models import utcnow
from evalkeeper.settings import Settings
from evalkeeper.testing.llm_server import Policy, ScriptedLLMServer
from evalkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from rich.console import Console

DATASET = "appointments"
EXPERIMENT = "demo-calibration"
JUDGES = ("factual_match", "tone_appropriate")
ERROR_RATES = {"factual_match": 0.35, "tone_appropriate": 0.03}
STAND_IN_MODEL = "scripted-stand-in-2026-01-01"
EVALUATORS = ["contains", *JUDGES]


class CalibrationAct(BaseModel):
    """What the act did."""

    experiment_id: str = Field(description="The labelled experiment (the baseline).")
    candidate_id: str = Field(description="The next run, gated against it.")
    calibrations: list[JudgeCalibration] = Field(description="The judges as they now stand.")
    verdict: str = Field(description="The next gate's verdict.")
    verdict_evaluators: list[str] = Field(description="Evaluators that entered the verdict.")
    warnings: list[str] = Field(description="The gate's warnings (the retired judge's first).")
    seconds: float = Field(description="Wall time of the act.")


def labels_dir(settings: Settings) -> Path:
    """`data/labels/` beside the datasets directory."""
    return Path(settings.datasets_dir).parent / "labels"


async def calibration_act(settings: Settings, console: Console) -> CalibrationAct:
    """Run the act, printing as it goes; returns what it found."""
    from evalkeeper import run as core
    from evalkeeper.analysis.gate import decide_gate
    from evalkeeper.report.calibration import calibration_table

    t0 = time.perf_counter()
    labels = labels_dir(settings)
    answers = labels / "appointments-v2-answers.jsonl"
    server = ScriptedLLMServer(policy=Policy(error_rates=dict(ERROR_RATES)))
    await asyncio.to_thread(server.start)
    try:
        s = settings.model_copy(
            update={
                "judge": settings.judge.model_copy(
                    update={
                        "base_url": server.base_url,
                        "model": STAND_IN_MODEL,
                        "api_key": SecretStr("scripted-stand-in"),
                        "votes": 1,
                        "rpm": 60_000.0,  # a local stand-in: no provider's rate limit to keep
                        "concurrency": 16,
                    }
                ),
            }
        )
        console.print(
            f"The judges are answered by a scripted stand-in on {server.base_url}: it is NOT "
            "an LLM. It reads the right verdict from an [[expect:…]] marker in each recorded "
            "answer and errs on purpose: "
            + ", ".join(f"{j} on {r:.0%} of its calls" for j, r in ERROR_RATES.items())
            + f". Recorded answers and human labels: {labels}/.",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        wh = Warehouse.from_settings(s)
        await core.run_suite(
            s,
            dataset=DATASET,
            suite="full",
            target=f"replay:{answers}",
            evaluators=EVALUATORS,
            experiment_id=EXPERIMENT,
        )
        choices = {j: ("pass", "fail") for j in JUDGES}  # the bundled judges' labels
        for judge in JUDGES:
            try:
                drawn = await asyncio.to_thread(sample_items, wh, s, judge, choices=choices[judge])
                console.print(
                    f"sample for {judge}: {drawn.n_items} items ({drawn.n_double} for two "
                    f"annotators; {drawn.sized_by}) -> {drawn.files[0]}",
                    soft_wrap=True,
                    highlight=False,
                )
            except SampleError as exc:
                console.print(f"sample for {judge}: {exc}", soft_wrap=True, highlight=False)
        imported = await asyncio.to_thread(
            import_labels, wh, labels / "appointments-v2.jsonl", choices=choices
        )
        console.print(
            f"labels: {imported.inserted} new, {imported.replaced} replaced, "
            f"{imported.unchanged} unchanged from {imported.path}",
            highlight=False,
        )
        measured: list[JudgeCalibration] = []
        for judge in JUDGES:
            measured += await asyncio.to_thread(measure, wh, s, judge=judge, choices=choices)
        current = [c for c in measured if c.model == STAND_IN_MODEL]
        stood = await asyncio.to_thread(record, wh, current)
        console.print(calibration_table(stood))
        for c in stood:
            console.print(f"  {c.judge}: {c.status}: {c.reason}", soft_wrap=True, highlight=False)
        candidate = f"{EXPERIMENT}-next-{utcnow():%Y%m%dT%H%M%SZ}"
        await core.run_suite(
            s,
            dataset=DATASET,
            suite="full",
            target=f"replay:{answers}",
            evaluators=EVALUATORS,
            experiment_id=candidate,
        )
        outcome = await asyncio.to_thread(decide_gate, wh, candidate, EXPERIMENT, s)
    finally:
        await asyncio.to_thread(server.stop)
    cmp = outcome.comparison
    warnings = [w for w in (cmp.warnings if cmp else []) if "is retired" in w]
    console.print(
        f"next gate ({candidate} vs {EXPERIMENT}): {outcome.verdict}; evaluators in the "
        f"verdict: {', '.join(cmp.evaluators) if cmp else 'none'}",
        soft_wrap=True,
        highlight=False,
    )
    for w in warnings:
        console.print(f"  warning: {w}", soft_wrap=True, highlight=False, markup=False)
    return CalibrationAct(
        experiment_id=EXPERIMENT,
        candidate_id=candidate,
        calibrations=stood,
        verdict=outcome.verdict,
        verdict_evaluators=list(cmp.evaluators) if cmp else [],
        warnings=warnings + [w for w in (cmp.warnings if cmp else []) if w not in warnings],
        seconds=time.perf_counter() - t0,
    )
