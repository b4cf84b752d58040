"""LLM judges: pinned model, versioned prompts, repeated votes with a majority, a cache.

Each judge is data (`Judge`: rubric, choices, prompt template in `prompts/<name>.md`, answer
schema with reasoning before the verdict); its `prompt_version` is a content hash of all of
it and is the registered evaluator version, so it is stored with every score. The three
judges of the seed workflow:

- `factual_match`: the answer states the facts of the reference (slot, policy, amounts).
- `tone_appropriate`: the reply is polite, human and on-brand (not rude, not robotic).
- `no_hallucination` (groundedness): every claim is supported by a retrieved passage; the
  score's comment lists the unsupported claims.

Each factory takes `votes` (odd; default `EVALKEEPER_JUDGE_VOTES`), `no_cache` (force fresh
calls; `runtime.extras["judge_no_cache"] = True` does the same for a whole run without
changing the evaluators' recorded arguments) and the `runtime`. Without `EVALKEEPER_JUDGE_BASE_URL`/`EVALKEEPER_JUDGE_MODEL` the
judges return skipped scores; with an unpinned model they refuse to build (`ModelNotPinned`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalkeeper.llm import client_for
from evalkeeper.models import Score
from evalkeeper.registry import Evaluator, evaluator
from evaluators.judges._definition import Judge, Passage, passages, show
from evaluators.judges._engine import NOT_CONFIGURED, JudgeEngine, Vote, cache_key

if TYPE_CHECKING:
    from evalkeeper.registry import Runtime
    from evalkeeper.settings import Settings

__all__ = [
    "FACTUAL_MATCH",
    "JUDGES",
    "NOT_CONFIGURED",
    "NO_HALLUCINATION",
    "TONE_APPROPRIATE",
    "Judge",
    "JudgeEngine",
    "Passage",
    "Vote",
    "build_judge",
    "cache_key",
    "passages",
    "show",
]

FACTUAL_MATCH = Judge.from_file(
    "factual_match",
    description="The answer states the reference's facts: right slot, right policy.",
    rubric="""\
pass: every fact the reference answer requires is present and correct in the agent's
answer: the booked/offered slot (date, time, timezone, resource), amounts and fees, the
policy it quotes (name and terms), and the next step for the customer. Extra correct detail
and different wording are fine.
fail: any required fact is missing, wrong or contradicted: the wrong slot or date, the
wrong fee, a policy that is not the one in the reference (or its terms misquoted), or a
promise the reference does not make. One wrong fact is enough to fail.""",
)

TONE_APPROPRIATE = Judge.from_file(
    "tone_appropriate",
    description="The reply is polite, human and on-brand: not rude, not robotic.",
    rubric="""\
pass: courteous and warm without gushing; speaks to the customer's actual message; plain,
concise language; apologises when the company is at fault; professional even when the
customer is not.
fail: any of: rude, curt, sarcastic, blaming or condescending; robotic (boilerplate,
repeated phrases, templated filler, internal jargon or system text shown to the customer);
off-brand (slang, emojis, over-familiar jokes, pushy selling, promises of things the
company does not do).""",
)

NO_HALLUCINATION = Judge.from_file(
    "no_hallucination",
    kind="groundedness",
    description="Every claim in the answer is supported by the retrieved passages.",
    rubric="""\
pass: every factual claim in the answer (names, numbers, dates, policies, steps,
availability) is stated in or directly follows from at least one retrieved passage.
Greetings, questions back to the customer and offers to help are not claims.
fail: at least one factual claim is not supported by any passage, or contradicts one. A
claim that is plausible or true in general but absent from the passages is unsupported.""",
    extra_fields={
        "unsupported_claims": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Each claim in the answer that no passage supports.",
        }
    },
)

JUDGES: dict[str, Judge] = {j.name: j for j in (FACTUAL_MATCH, TONE_APPROPRIATE, NO_HALLUCINATION)}


def _settings(runtime: Runtime | None) -> Settings:
    if runtime is not None:
        return runtime.settings
    from evalkeeper.settings import Settings

    return Settings()


def build_judge(
    judge: Judge,
    *,
    votes: int | None = None,
    no_cache: bool = False,
    runtime: Runtime | None = None,
) -> Evaluator:
    """The scoring function of `judge` for one run (skipped when no endpoint is set)."""
    settings = _settings(runtime)
    if runtime is not None and runtime.extras.get("judge_no_cache"):
        no_cache = True  # a run-wide `--no-cache`, without changing the recorded arguments
    n_votes = votes if votes is not None else settings.judge.votes
    if not settings.judge.base_url or not settings.judge.model:

        async def not_configured(
            *,
            inputs: Any = None,
            outputs: Any = None,
            reference_outputs: Any = None,
            run: Any = None,
            example: Any = None,
        ) -> Score:
            return Score(skipped=True, comment=NOT_CONFIGURED)

        return not_configured
    engine = JudgeEngine(
        judge, client_for(settings), votes=n_votes, no_cache=no_cache, runtime=runtime
    )
    return engine.score


@evaluator("factual_match", version=FACTUAL_MATCH.prompt_version, kind="judge")
def factual_match(
    votes: int | None = None, no_cache: bool = False, runtime: Runtime | None = None
) -> Evaluator:
    """LLM judge: the answer states the reference's facts (slot, policy)."""
    return build_judge(FACTUAL_MATCH, votes=votes, no_cache=no_cache, runtime=runtime)


@evaluator("tone_appropriate", version=TONE_APPROPRIATE.prompt_version, kind="judge")
def tone_appropriate(
    votes: int | None = None, no_cache: bool = False, runtime: Runtime | None = None
) -> Evaluator:
    """LLM judge: the reply is polite, human and on-brand."""
    return build_judge(TONE_APPROPRIATE, votes=votes, no_cache=no_cache, runtime=runtime)


@evaluator("no_hallucination", version=NO_HALLUCINATION.prompt_version, kind="groundedness")
def no_hallucination(
    votes: int | None = None, no_cache: bool = False, runtime: Runtime | None = None
) -> Evaluator:
    """LLM groundedness judge: every claim is supported by the retrieved passages."""
    return build_judge(NO_HALLUCINATION, votes=votes, no_cache=no_cache, runtime=runtime)
