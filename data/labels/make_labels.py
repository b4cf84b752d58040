"""Write the demo's calibration data: recorded answers and their human labels.

Deterministic (no randomness, no clock): run `uv run python data/labels/make_labels.py` from
the repository root and both files are rewritten byte for byte.

* `appointments-v2-answers.jsonl`: demo agent v2's answers on the bundled sample dataset,
  for a `replay:` target. Each reply ends with a `[[expect:pass]]` or `[[expect:fail]]`
  marker: the scripted judge stand-in (`evalkeeper.testing.llm_server`, not an LLM) reads
  the right verdict from it, then errs on purpose at the rate the demo gives it.
* `appointments-v2.jsonl`: the labels two annotators gave those answers, for both judges
  the demo calibrates (`factual_match`, `tone_appropriate`). An answer is right when it
  says every `must_include` phrase of the reference and makes the reference's tool calls
  (by name): 83 right, 17 wrong (v2's cancellation regression). Annotator `ana` labels
  all 100; `ben` labels every fifth example (20, the doubly-labelled share) and disagrees
  with `ana` on two of them, which are then ties (left out of the judge's agreement and
  counted in the human ceiling).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
DATASET = ROOT / "data" / "datasets" / "appointments.jsonl"
ANSWERS = HERE / "appointments-v2-answers.jsonl"
LABELS = HERE / "appointments-v2.jsonl"
EXPERIMENT = "demo-calibration"
JUDGES = ("factual_match", "tone_appropriate")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def right(reference: dict[str, Any], outputs: dict[str, Any]) -> bool:
    reply = str(outputs.get("reply", "")).lower()
    says = all(str(s).lower() in reply for s in reference.get("must_include", []))
    wanted = {c["name"] for c in reference.get("tool_calls", [])}
    made = {c["name"] for c in outputs.get("tool_calls", [])}
    return says and wanted <= made


async def answer(agent: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    out = agent(inputs)
    return dict(await out) if inspect.isawaitable(out) else dict(out)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from evalkeeper.demo.agent import v2

    examples = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    answers, labels = [], []
    disagreements = 0
    for i, ex in enumerate(examples):
        outputs = asyncio.run(answer(v2, ex["inputs"]))
        truth = "pass" if right(ex["reference_outputs"], outputs) else "fail"
        outputs["reply"] = f"{outputs['reply']} [[expect:{truth}]]"
        answers.append({"id": ex["id"], "outputs": outputs, "latency_ms": 120.0})
        when = START + timedelta(minutes=2 * i)
        for judge in JUDGES:
            base = {"experiment_id": EXPERIMENT, "example_id": ex["id"], "repetition": 0}
            labels.append(
                {**base, "judge": judge, "annotator": "ana", "label": truth,
                 "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "note": ""}
            )  # fmt: skip
            if i % 5 == 0:
                other = truth
                if i in (15, 60):  # two honest disagreements between the annotators
                    other = "fail" if truth == "pass" else "pass"
                    disagreements += 1
                labels.append(
                    {**base, "judge": judge, "annotator": "ben", "label": other,
                     "time": (when + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "note": "second opinion"}
                )  # fmt: skip
    ANSWERS.write_text("".join(json.dumps(a, sort_keys=True) + "\n" for a in answers))
    LABELS.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in labels))
    fails = sum(1 for a in answers if a["outputs"]["reply"].endswith("[[expect:fail]]"))
    print(f"{ANSWERS.name}: {len(answers)} answers, {fails} wrong")
    print(f"{LABELS.name}: {len(labels)} labels, {disagreements // len(JUDGES)} disagreements")


if __name__ == "__main__":
    main()
