"""Resuming an experiment: what is stored, what is still to do, and which changes of the
options a resume accepts.

A resume completes the missing rows, re-attempts the rows whose target call failed, and
re-scores the scores that errored (or that a newly added evaluator has not made yet).
Every other difference from the recorded experiment is refused with a message that names
it: a resume never drops an option silently.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable

import polars as pl

from evalkeeper import registry
from evalkeeper.errors import InputError
from evalkeeper.models import EvaluatorRef, Example, Experiment, RunRecord
from evalkeeper.run.runner import Item, Rescore
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, WarehouseLocked
from evalkeeper.warehouse.results import ShardView

RunKey = tuple[str, int]


class ExperimentError(InputError, ValueError):
    """An experiment that cannot be started or resumed as asked; the message says why."""


def stored_runs(
    warehouse: Warehouse | ShardView, experiment_id: str
) -> dict[RunKey, tuple[bool, int]]:
    """(example_id, repetition) -> (target call failed, attempts so far), for every row
    recorded in the warehouse or waiting in the spool (or, for a shard writing to a results
    location, in its `ShardView`)."""
    out: dict[RunKey, tuple[bool, int]] = {}
    # locked for long: the spool still tells what this process wrote; the rest is re-done
    # (and ignored on insert: rows are keyed), never duplicated
    with contextlib.suppress(WarehouseLocked):
        for ex, rep, failed, attempts in warehouse.rows(
            "SELECT example_id, repetition, error IS NOT NULL, attempts FROM runs "
            "WHERE experiment_id = ?",
            [experiment_id],
        ):
            out[(ex, rep)] = (bool(failed), int(attempts))
    spooled = warehouse.spooled_frame("runs")
    if spooled is not None:
        part = spooled.filter(pl.col("experiment_id") == experiment_id)
        for row in part.iter_rows(named=True):
            out[(row["example_id"], row["repetition"])] = (
                row["error"] is not None,
                int(row["attempts"]),
            )
    return out


def items_to_run(
    selected: Iterable[Example],
    repetitions: int,
    stored: dict[RunKey, tuple[bool, int]],
    *,
    retry_failed: bool = True,
) -> list[Item]:
    """Rows never recorded, and (with `retry_failed`) rows whose target call failed."""
    items = []
    for example in selected:
        for rep in range(repetitions):
            state = stored.get((example.id, rep))
            if state is None:
                items.append(Item(example, rep))
            elif state[0] and retry_failed:
                items.append(Item(example, rep, prior_attempts=state[1]))
    return items


def reconcile(
    existing: Experiment,
    *,
    dataset_version: str,
    suite: str,
    target: str,
    refs: list[EvaluatorRef] | None,
    versions: dict[str, str],
    repetitions: int | None,
) -> tuple[Experiment, list[str]]:
    """The experiment to resume with the options asked for now, and the evaluators added.

    Accepted: the same options, evaluators added, more repetitions, a different
    `optional` flag. Anything else raises ExperimentError naming every difference."""
    problems = []
    if existing.dataset_version != dataset_version:
        problems.append(f"dataset version {existing.dataset_version} != {dataset_version} now")
    if existing.suite != suite:
        problems.append(f"suite {existing.suite} != {suite}")
    if existing.target.spec != target:
        problems.append(f"target {existing.target.spec} != {target}")
    if repetitions is not None and repetitions < existing.repetitions:
        problems.append(
            f"--repetitions {repetitions} < the {existing.repetitions} it was started with "
            "(raising it is allowed)"
        )
    recorded = {r.name: r for r in existing.evaluators}
    wanted = {r.name: r for r in (refs if refs is not None else existing.evaluators)}
    dropped = [n for n in recorded if n not in wanted]
    if dropped:
        problems.append(
            f"evaluator(s) {', '.join(dropped)} left out (it runs "
            f"{', '.join(recorded)}; adding evaluators is allowed, dropping them is not)"
        )
    for name, ref in wanted.items():
        old = recorded.get(name)
        if old is not None and old.args != ref.args:
            problems.append(
                f"evaluator {name} arguments {json.dumps(old.args, sort_keys=True)} != "
                f"{json.dumps(ref.args, sort_keys=True)} now"
            )
        was, now = existing.evaluator_versions.get(name), versions.get(name)
        if old is not None and was and now and was != now:
            problems.append(
                f"evaluator {name} is version {now} now, the experiment scored version {was} "
                f"(score it again with `evalkeeper score {existing.experiment_id} "
                f"--evaluators {name}`)"
            )
    if problems:
        raise ExperimentError(
            f"experiment {existing.experiment_id!r} exists with different settings "
            f"({'; '.join(problems)}): run it with its own options, or choose a new "
            "--experiment name"
        )
    added = [n for n in wanted if n not in recorded]
    exp = existing.model_copy(deep=True)
    exp.evaluators = [
        recorded[n].model_copy(update={"optional": wanted[n].optional})
        if n in recorded
        else wanted[n]
        for n in [*recorded, *added]
    ]
    exp.evaluator_versions = {
        **existing.evaluator_versions,
        **{n: versions[n] for n in added if n in versions},
    }
    if repetitions is not None:
        exp.repetitions = repetitions
    return exp, added


def rescore_plan(
    settings: Settings,
    warehouse: Warehouse | ShardView,
    exp: Experiment,
    examples: dict[str, Example],
    evaluators: list[registry.BuiltEvaluator],
    *,
    everything: bool = False,
    exclude: set[RunKey] | None = None,
) -> list[Rescore]:
    """Stored runs (whose target call succeeded) to score with some of `evaluators`.

    By default, the scores that are missing (a newly added evaluator) or errored, and the
    skips of LLM judges when a judge endpoint is configured now. With `everything`, every
    run is scored again by every one of `evaluators` (a new evaluator version). Runs in
    `exclude` (just made by this process) are left alone."""
    per_example = [e for e in evaluators if not e.summary]
    if not per_example:
        return []
    judges_on = bool(settings.judge.base_url and settings.judge.model)
    with warehouse.reading() as con:
        runs = con.execute(
            "SELECT example_id, repetition, outputs, latency_ms, attempts, started_at "
            "FROM runs WHERE experiment_id = ? AND error IS NULL ORDER BY example_id, repetition",
            [exp.experiment_id],
        ).fetchall()
        scored: dict[tuple[str, int, str], tuple[bool, bool, str | None]] = {}
        if not everything:
            for ex, rep, ev, err, skipped, reason in con.execute(
                "SELECT example_id, repetition, evaluator, error IS NOT NULL, skipped, "
                "json_extract_string(details, '$.reason') FROM scores WHERE experiment_id = ?",
                [exp.experiment_id],
            ).fetchall():
                scored[(ex, rep, ev)] = (bool(err), bool(skipped), reason)
    plan = []
    for ex, rep, outputs, latency_ms, attempts, started_at in runs:
        example = examples.get(ex)
        if example is None or (exclude and (ex, rep) in exclude):
            continue
        todo = []
        for ev in per_example:
            state = scored.get((ex, rep, ev.name))
            if (
                everything
                or state is None
                or state[0]
                or (
                    state[1]
                    and judges_on
                    and ev.kind in ("judge", "groundedness")
                    and state[2] != "no_context"  # the judge was off; it is on now
                )
            ):
                todo.append(ev)
        if todo:
            run = RunRecord.model_construct(
                experiment_id=exp.experiment_id,
                example_id=ex,
                repetition=rep,
                outputs=json.loads(outputs) if outputs is not None else None,
                latency_ms=latency_ms,
                error=None,
                attempts=attempts,
                started_at=started_at,
            )
            plan.append(Rescore(example, run, tuple(todo)))
    return plan
