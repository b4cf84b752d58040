"""Scoring one example with a judge: votes with early stopping, a content-addressed cache,
one `judge_votes` row per vote, and a Score that is an error (never a pass) when the votes
cannot decide.

Votes. An example is judged `votes` times (odd). Vote *i* is the *i*-th sample: the request
carries `seed=i` and the judge's temperature, and its cache key carries `i`. Votes are taken
in index order, in waves of the fewest votes that could still decide (two, then one, for
three votes); judging stops as soon as one verdict has a majority (`votes // 2 + 1`) that
the remaining votes cannot overturn, or when errors make any majority impossible. That is
the same decision the full vote would reach on the same samples, in fewer calls.

Cache. Key = hash(model pin, prompt version, rendered messages, vote index). Looked up in an
in-process dict (so identical calls in one run are made once, even concurrently), then in
the warehouse's `judge_cache` (loaded once per judge, model and prompt version). A fresh
answer is queued as a `judge_cache` row with `runtime.emit`; only valid answers are cached.
`no_cache=True` skips both lookups (answers are still queued; the first stored one wins).

Rows. Every vote, cached or not, is queued as a `judge_votes` row. A cached vote carries
the tokens, cost and latency of the call that produced it and `cached = true`; the spend of
a run is the sum over rows that are not cached.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkeeper.llm import JudgeClient, JudgeError, MalformedAnswer
from evalkeeper.models import Score, canonical_json, content_hash, utcnow
from evaluators.judges._definition import Judge, Passage, passages

if TYPE_CHECKING:
    from evalkeeper.registry import Runtime
    from evalkeeper.warehouse import Warehouse

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "judge not configured: set EVALKEEPER_JUDGE_BASE_URL and EVALKEEPER_JUDGE_MODEL "
    "(and EVALKEEPER_JUDGE_API_KEY)"
)
COMMENT_CHARS = 400


def cache_key(model: str, prompt_version: str, messages: list[dict[str, str]], vote: int) -> str:
    return content_hash(
        {"model": model, "prompt_version": prompt_version, "messages": messages, "vote": vote},
        64,
    )


@dataclass
class Vote:
    index: int
    cache_key: str
    verdict: str | None = None
    reasoning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    requests: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Answer:
    """A valid judge answer, as kept in the cache."""

    parsed: dict[str, Any]
    latency_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    requests: int = 0
    """HTTP requests the call took (retries, repair); 0 when it came from the warehouse."""


class JudgeEngine:
    """One judge, built for one run: scores examples, shares its cache across them."""

    def __init__(
        self,
        judge: Judge,
        client: JudgeClient,
        *,
        votes: int,
        no_cache: bool = False,
        runtime: Runtime | None = None,
        early_stop: bool = True,
    ) -> None:
        if votes < 1 or votes % 2 == 0:
            raise ValueError(
                f"judge {judge.name!r}: votes={votes}; use an odd number (1, 3, 5) so that a "
                "majority exists (set the evaluator's `votes` or EVALKEEPER_JUDGE_VOTES)"
            )
        self.judge = judge
        self.client = client
        self.model = client.model
        self.votes = votes
        self.majority = votes // 2 + 1
        self.no_cache = no_cache
        self.early_stop = early_stop
        """False: take every vote (a plain majority), for comparison and benchmarks."""
        self.runtime = runtime
        self.warehouse: Warehouse | None = runtime.warehouse if runtime else None
        self._answers: dict[str, Answer] = {}
        self._inflight: dict[str, asyncio.Task[Answer]] = {}
        self._stored: dict[str, Answer] | None = None
        self._load_lock = threading.Lock()

    # -- cache ----------------------------------------------------------------------------

    def _load_stored(self) -> dict[str, Answer]:
        """The warehouse cache of this judge's model and prompt version, loaded once."""
        with self._load_lock:
            if self._stored is not None:
                return self._stored
            stored: dict[str, Answer] = {}
            if self.warehouse is not None:
                try:
                    frame = self.warehouse.query(
                        "SELECT cache_key, CAST(response AS VARCHAR) AS response, prompt_tokens, "
                        "completion_tokens, cost_usd FROM judge_cache "
                        "WHERE model = ? AND prompt_version = ?",
                        [self.model, self.judge.prompt_version],
                    )
                    for row in frame.iter_rows(named=True):
                        response = json.loads(row["response"])
                        stored[row["cache_key"]] = Answer(
                            parsed=response["parsed"],
                            latency_ms=response.get("latency_ms"),
                            prompt_tokens=row["prompt_tokens"],
                            completion_tokens=row["completion_tokens"],
                            cost_usd=row["cost_usd"],
                        )
                except Exception as exc:  # a cache we cannot read is a miss, not a failure
                    log.warning(
                        "judge %s: warehouse cache unavailable (%s); calling the endpoint",
                        self.judge.name,
                        exc,
                    )
            self._stored = stored
            return stored

    async def _lookup(self, key: str) -> Answer | None:
        if self.no_cache:
            return None
        if key in self._answers:
            return self._answers[key]
        stored = (
            self._stored if self._stored is not None else await asyncio.to_thread(self._load_stored)
        )
        return stored.get(key)

    def _emit(self, table: str, row: dict[str, Any]) -> None:
        if self.runtime is not None and self.runtime.emit is not None:
            self.runtime.emit(table, row)

    async def _call(self, key: str, messages: list[dict[str, str]], index: int) -> Answer:
        completion = await self.client.complete(
            messages,
            response_schema=self.judge.schema,
            schema_name=f"{self.judge.name}_verdict",
            temperature=self.judge.temperature,
            seed=index,
            max_tokens=self.judge.max_tokens,
        )
        answer = Answer(
            parsed=dict(completion.parsed),
            latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=completion.cost_usd,
            requests=completion.requests,
        )
        self._answers[key] = answer
        self._emit(
            "judge_cache",
            {
                "cache_key": key,
                "model": self.model,
                "prompt_version": self.judge.prompt_version,
                "vote_index": index,
                "response": canonical_json(
                    {
                        "parsed": answer.parsed,
                        "text": completion.text,
                        "response_model": completion.response_model,
                        "latency_ms": completion.latency_ms,
                    }
                ),
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "cost_usd": completion.cost_usd,
                "created_at": utcnow(),
            },
        )
        return answer

    # -- one vote -------------------------------------------------------------------------

    async def _vote(self, messages: list[dict[str, str]], index: int) -> Vote:
        key = cache_key(self.model, self.judge.prompt_version, messages, index)
        vote = Vote(index=index, cache_key=key)
        try:
            answer = await self._lookup(key)
            if answer is not None:
                vote.cached = True
            else:
                loop = asyncio.get_running_loop()
                task = self._inflight.get(key)
                if task is not None and task.get_loop() is loop and not self.no_cache:
                    vote.cached = True  # an identical call is in flight: share its answer
                else:
                    task = loop.create_task(self._call(key, messages, index))
                    self._inflight[key] = task
                    task.add_done_callback(functools.partial(self._forget, key))
                answer = await asyncio.shield(task)
                if not vote.cached:
                    vote.requests = answer.requests
        except MalformedAnswer as exc:
            vote.error = f"malformed answer: {exc}"
            if not vote.cached:
                vote.requests = exc.requests
                vote.prompt_tokens = exc.prompt_tokens
                vote.completion_tokens = exc.completion_tokens
                vote.cost_usd = exc.cost_usd
            return vote
        except JudgeError as exc:
            vote.error = str(exc)
            if not vote.cached:
                vote.requests = getattr(exc, "requests", 0)
            return vote
        except Exception as exc:  # a bug or an unexpected SDK error: an error vote
            vote.error = f"{type(exc).__name__}: {exc}"
            return vote
        vote.verdict = str(answer.parsed.get("verdict"))
        vote.reasoning = str(answer.parsed.get("reasoning") or "")
        vote.extra = {k: v for k, v in answer.parsed.items() if k not in ("verdict", "reasoning")}
        vote.latency_ms = answer.latency_ms
        vote.prompt_tokens, vote.completion_tokens = answer.prompt_tokens, answer.completion_tokens
        vote.cost_usd = answer.cost_usd
        return vote

    def _forget(self, key: str, task: asyncio.Task[Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: errors reach the votes that awaited it

    # -- the decision ---------------------------------------------------------------------

    def _decision(self, results: dict[int, Vote]) -> str | None:
        """The verdict with a majority, "" when no majority is possible, None to go on."""
        counts = Counter(v.verdict for v in results.values() if v.verdict is not None)
        for verdict, n in counts.items():
            if n >= self.majority:
                return verdict
        remaining = self.votes - len(results)
        best = max(counts.values(), default=0)
        if best + remaining < self.majority:
            return ""
        return None

    async def judge_messages(self, messages: list[dict[str, str]]) -> tuple[str, dict[int, Vote]]:
        """Vote on one rendered prompt. Returns (verdict or "" for no majority, votes)."""
        results: dict[int, Vote] = {}
        while True:
            decision = self._decision(results)
            if decision is not None and (self.early_stop or len(results) == self.votes):
                return decision, results
            counts = Counter(v.verdict for v in results.values() if v.verdict is not None)
            need = self.majority - max(counts.values(), default=0)
            if not self.early_stop:
                need = self.votes
            wave = [i for i in range(self.votes) if i not in results][:need]
            for vote in await asyncio.gather(*(self._vote(messages, i) for i in wave)):
                results[vote.index] = vote

    # -- the scoring function -------------------------------------------------------------

    def context_for(self, inputs: Any, outputs: Any, run: Any) -> list[Passage]:
        """Retrieved passages: from the trace (`outputs["context"]`) when present, else the
        example's `inputs["context"]`."""
        run_outputs = getattr(run, "outputs", None)
        for source in (outputs, run_outputs, inputs):
            if isinstance(source, dict) and source.get("context"):
                return passages(source["context"])
        return []

    def _no_context(self, reference_outputs: Any) -> Score:
        """No retrieved context on this row. Where the example's reference had some,
        retrieval broke: that fails (a quiet skip would hide it). Otherwise there is
        nothing to check against: skipped, marked `no_context` so that `compare` can fail
        the row when the baseline's run of the same example had context."""
        name = self.judge.name
        expected = reference_outputs.get("context") if isinstance(reference_outputs, dict) else None
        if expected:
            return Score(
                value=0.0,
                passed=False,
                comment=f"{name}: no retrieved context, but the example's reference has "
                f"{len(passages(expected))} passage(s): retrieval returned nothing",
                details={"reason": "no_context"},
            )
        return Score(
            skipped=True,
            comment=f"{name}: no retrieved context (inputs['context'] or outputs['context']) "
            "to check the answer against",
            details={"reason": "no_context"},
        )

    async def score(
        self,
        *,
        inputs: dict[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        reference_outputs: dict[str, Any] | None = None,
        run: Any = None,
        example: Any = None,
    ) -> Score:
        judge = self.judge
        if outputs is None:
            return Score(error=f"judge {judge.name}: no outputs to judge (the target run failed)")
        context: list[Passage] = []
        if judge.kind == "groundedness":
            context = self.context_for(inputs, outputs, run)
            if not context:
                return self._no_context(reference_outputs)
            inputs = _without_context(inputs)
            outputs = _without_context(outputs)
        messages = judge.render(
            inputs=inputs, outputs=outputs, reference_outputs=reference_outputs, context=context
        )
        verdict, results = await self.judge_messages(messages)
        self._emit_votes(results, run=run, example=example, inputs=inputs)
        return self._to_score(verdict, results)

    def _emit_votes(self, results: dict[int, Vote], *, run: Any, example: Any, inputs: Any) -> None:
        if self.runtime is None or self.runtime.emit is None:
            return
        experiment_id = getattr(run, "experiment_id", None) or self.runtime.experiment_id or ""
        example_id = (
            getattr(run, "example_id", None) or getattr(example, "id", None) or content_hash(inputs)
        )
        repetition = getattr(run, "repetition", 0) or 0
        now = utcnow()
        for vote in sorted(results.values(), key=lambda v: v.index):
            self._emit(
                "judge_votes",
                {
                    "experiment_id": experiment_id,
                    "example_id": str(example_id),
                    "repetition": int(repetition),
                    "judge": self.judge.name,
                    "model": self.model,
                    "prompt_version": self.judge.prompt_version,
                    "vote_index": vote.index,
                    "verdict": vote.verdict,
                    "reasoning": vote.reasoning,
                    "latency_ms": vote.latency_ms,
                    "prompt_tokens": vote.prompt_tokens,
                    "completion_tokens": vote.completion_tokens,
                    "cost_usd": vote.cost_usd,
                    "cached": vote.cached,
                    "cache_key": vote.cache_key,
                    "error": vote.error,
                    "created_at": now,
                },
            )

    def _to_score(self, verdict: str, results: dict[int, Vote]) -> Score:
        judge = self.judge
        votes = sorted(results.values(), key=lambda v: v.index)
        counts = Counter(v.verdict for v in votes if v.verdict is not None)
        errors = [v for v in votes if v.error is not None]
        fresh = [v for v in votes if not v.cached]
        details: dict[str, Any] = {c: counts.get(c, 0) for c in judge.choices}
        details.update(
            errors=len(errors),
            calls=sum(1 for v in fresh if v.requests),
            cached=sum(1 for v in votes if v.cached),
            requests=sum(v.requests for v in fresh),
            votes=self.votes,
            verdict=verdict or None,
            judge_model=self.model,
            prompt_version=judge.prompt_version,
            prompt_tokens=sum(v.prompt_tokens or 0 for v in fresh),
            completion_tokens=sum(v.completion_tokens or 0 for v in fresh),
            cost_usd=_sum_or_none([v.cost_usd for v in fresh if v.requests]),
        )
        if not verdict:
            split = ", ".join(f"{counts.get(c, 0)} {c}" for c in judge.choices)
            last = errors[-1].error if errors else "votes split"
            return Score(
                error=f"judge {judge.name}: no majority of {self.votes} votes ({split}, "
                f"{len(errors)} errors); last error: {last}",
                details=details,
            )
        scored = sum(counts.values())
        winners = [v for v in votes if v.verdict == verdict]
        comment = (winners[0].reasoning or "").strip()
        if judge.kind == "groundedness":
            claims = [str(c) for c in winners[0].extra.get("unsupported_claims") or []]
            details["unsupported_claims"] = claims
            if claims:
                comment = "unsupported claims: " + "; ".join(claims) + ". " + comment
        if len(comment) > COMMENT_CHARS:
            comment = comment[: COMMENT_CHARS - 1] + "…"
        return Score(
            value=counts.get(judge.pass_choice, 0) / scored,
            passed=verdict == judge.pass_choice,
            comment=comment or None,
            details=details,
        )


def _sum_or_none(values: list[float | None]) -> float | None:
    """Total cost, or None when any part is unknown (an unknown price is not free)."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def _without_context(value: Any) -> Any:
    if isinstance(value, dict) and "context" in value:
        return {k: v for k, v in value.items() if k != "context"}
    return value
