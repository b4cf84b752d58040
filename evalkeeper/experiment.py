"""Experiments end to end, without Prefect: prepare, run (in shards), finish.

`prepare` validates everything up front (dataset, target, evaluators), records the
experiment and its examples, and — when the experiment id already exists — checks that it
is the same experiment, so that running it again only completes the missing rows.
`run_shard` runs one shard of the pending (example, repetition) items; `finish` runs the
summary evaluators, marks the experiment completed and returns its summary. The Prefect
tasks are thin wrappers over these three; `run_suite` chains them for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from evalkeeper import datasets, registry, suites
from evalkeeper.models import (
    Dataset,
    EvaluatorRef,
    Example,
    Experiment,
    RunRecord,
    Score,
    Suite,
    TargetPin,
    canonical_json,
    utcnow,
)
from evalkeeper.runner import RowBuffer, Runner, ShardResult, Tally
from evalkeeper.settings import Settings
from evalkeeper.targets import load_target
from evalkeeper.warehouse import Warehouse, WarehouseLocked

EXAMPLES_CHUNK = 10_000


class ExperimentError(ValueError):
    """An experiment that cannot be started or resumed as asked; the message says why."""


class EvaluatorSummary(BaseModel):
    evaluator: str
    version: str
    n: int
    passed: int
    failed: int
    errors: int
    skipped: int
    pass_rate: float | None
    mean_value: float | None
    comment: str | None = None


class Summary(BaseModel):
    experiment: Experiment
    rows: int
    target_errors: int
    evaluators: list[EvaluatorSummary]
    spooled_batches: int = 0
    source: str = "warehouse"  # or "this process" when the warehouse was locked


def warehouse_for(settings: Settings) -> Warehouse:
    return Warehouse(
        settings.warehouse, lock_wait_s=settings.lock_wait_s, spool_dir=settings.spool_path
    )


def parse_evaluator_names(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [n.strip() for n in text.split(",") if n.strip()]


def resolve_evaluators(dataset: Dataset, names: list[str] | None) -> list[EvaluatorRef]:
    """Named evaluators (taking their arguments from the dataset config when listed there),
    or the dataset's configured defaults."""
    configured = {ref.name: ref for ref in dataset.config.evaluators}
    if names is None:
        if not configured:
            raise ExperimentError(
                f"dataset {dataset.name!r} configures no default evaluators and none were "
                "given: pass --evaluators NAME,NAME, or add an [[evaluators]] table to "
                f"{Path(dataset.path).with_suffix('.toml')}, e.g.\n"
                '[[evaluators]]\nname = "exact_match"'
            )
        return list(configured.values())
    return [configured.get(n, EvaluatorRef(name=n)) for n in names]


def _select(settings: Settings, dataset: Dataset, suite: Suite) -> list[Example]:
    return suites.select(
        dataset.examples,
        suite,
        share=settings.smoke_share,
        min_per_category=settings.smoke_min_per_category,
        seed=settings.seed,
    )


def new_experiment_id(suite: str, dataset: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{dataset}-{suite}-{stamp}"


def _experiment_row(exp: Experiment) -> dict[str, Any]:
    pin = exp.target
    return {
        "experiment_id": exp.experiment_id,
        "suite": exp.suite,
        "dataset": exp.dataset,
        "dataset_version": exp.dataset_version,
        "target_spec": pin.spec,
        "target_kind": pin.kind,
        "agent_version": pin.agent_version,
        "model": pin.model,
        "git_commit": pin.git_commit,
        "git_branch": pin.git_branch,
        "evaluators": canonical_json(
            [
                {**r.model_dump(), "version": exp.evaluator_versions.get(r.name)}
                for r in exp.evaluators
            ]
        ),
        "repetitions": exp.repetitions,
        "params": canonical_json(exp.params),
        "n_examples": exp.n_examples,
        "status": exp.status,
        "started_at": exp.started_at,
        "finished_at": exp.finished_at,
    }


def _examples_frame(dataset: Dataset, version: str, examples: list[Example]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dataset": [dataset.name] * len(examples),
            "dataset_version": [version] * len(examples),
            "example_id": [e.id for e in examples],
            "content_hash": [e.content_hash for e in examples],
            "category": [e.metadata.category for e in examples],
            "critical": [e.metadata.critical for e in examples],
            "incident_id": [e.metadata.incident_id for e in examples],
            "inputs": [e.canonical[0] for e in examples],
            "reference_outputs": [e.canonical[1] for e in examples],
            "metadata": [e.canonical[2] for e in examples],
        }
    )


def load_experiment(warehouse: Warehouse, experiment_id: str) -> Experiment | None:
    """The recorded experiment, from the spool (newest) or the warehouse; None if unknown.

    While another process holds the warehouse, only the spool can be read: an experiment
    recorded before that is then not found, and its resume re-runs rows that the keyed
    insert ignores later (never duplicates)."""
    try:
        frame = warehouse.query(
            "SELECT * FROM experiments WHERE experiment_id = ?", [experiment_id]
        )
    except WarehouseLocked:
        frame = pl.DataFrame()
    spooled = warehouse.spooled_frame("experiments")
    if spooled is not None:
        spooled = spooled.filter(pl.col("experiment_id") == experiment_id)
        if spooled.height:
            frame = spooled.tail(1)
    if not frame.height:
        return None
    row = frame.row(0, named=True)
    evs = json.loads(row["evaluators"]) if row["evaluators"] else []
    return Experiment(
        experiment_id=row["experiment_id"],
        suite=row["suite"],
        dataset=row["dataset"],
        dataset_version=row["dataset_version"],
        target=TargetPin(
            spec=row["target_spec"],
            kind=row["target_kind"],
            agent_version=row["agent_version"],
            model=row["model"],
            git_commit=row["git_commit"],
            git_branch=row["git_branch"],
        ),
        evaluators=[EvaluatorRef(name=e["name"], args=e.get("args") or {}) for e in evs],
        evaluator_versions={e["name"]: e.get("version") or "" for e in evs},
        repetitions=row["repetitions"],
        params=json.loads(row["params"]) if row["params"] else {},
        n_examples=row["n_examples"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def prepare(
    settings: Settings,
    *,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: list[str] | None = None,
    experiment_id: str | None = None,
    repetitions: int = 1,
    concurrency: int | None = None,
    params: dict[str, Any] | None = None,
) -> Experiment:
    """Validate inputs and record the experiment (or find it again, to resume it)."""
    if repetitions < 1:
        raise ExperimentError("--repetitions must be at least 1")
    ds = datasets.load_dataset(dataset, settings.datasets_dir)
    refs = resolve_evaluators(ds, evaluators)
    # fail now on unknown names, bad arguments or an unpinned judge model
    built = [registry.build(r, registry.Runtime(settings=settings)) for r in refs]
    tgt = load_target(
        target,
        timeout_s=settings.timeout_s,
        git_commit=settings.git_commit,
        git_branch=settings.git_branch,
    )
    asyncio.run(tgt.aclose())
    selected = _select(settings, ds, suite)
    wh = warehouse_for(settings)
    if experiment_id:
        existing = load_experiment(wh, experiment_id)
        if existing is not None:
            problems = []
            if existing.dataset_version != ds.version:
                problems.append(f"dataset version {existing.dataset_version} != {ds.version} now")
            if existing.suite != suite:
                problems.append(f"suite {existing.suite} != {suite}")
            if existing.target.spec != target:
                problems.append(f"target {existing.target.spec} != {target}")
            if problems:
                raise ExperimentError(
                    f"experiment {experiment_id!r} exists with different settings "
                    f"({'; '.join(problems)}): choose a new --experiment name"
                )
            existing.status = "running"
            existing.params = {**existing.params, **(params or {})}
            if concurrency:
                existing.params["concurrency"] = concurrency
            wh.write({"experiments": pl.DataFrame([_experiment_row(existing)])})
            return existing
    exp = Experiment(
        experiment_id=experiment_id or new_experiment_id(suite, ds.name),
        suite=suite,
        dataset=ds.name,
        dataset_version=ds.version,
        target=tgt.pin,
        evaluators=refs,
        evaluator_versions={b.name: b.version for b in built},
        repetitions=repetitions,
        params={
            "dataset_path": ds.path,
            "concurrency": concurrency or settings.concurrency,
            "timeout_s": settings.timeout_s,
            "smoke_share": settings.smoke_share,
            "smoke_min_per_category": settings.smoke_min_per_category,
            "seed": settings.seed,
            **(params or {}),
        },
        n_examples=len(selected),
    )
    # examples first, in chunks (keyed rows: a crash in between is harmless), so that a
    # large dataset never needs one huge frame and one huge insert at once
    for start in range(0, len(selected), EXAMPLES_CHUNK):
        chunk = selected[start : start + EXAMPLES_CHUNK]
        wh.write({"examples": _examples_frame(ds, ds.version, chunk)})
    for example in ds.examples:  # the canonical JSON has served (hashes and examples rows):
        example.__dict__.pop("canonical", None)  # ~0.9 KB an example, 85 MB at 100k
    wh.write({"experiments": pl.DataFrame([_experiment_row(exp)])})
    return exp


def done_keys(warehouse: Warehouse, experiment_id: str) -> set[tuple[str, int]]:
    """(example_id, repetition) already recorded, in the warehouse or waiting in the spool."""
    keys: set[tuple[str, int]] = set()
    # locked for long: the spool still tells what this process wrote; the rest is re-done
    # (and ignored on insert: rows are keyed), never duplicated
    with contextlib.suppress(WarehouseLocked):
        keys.update(
            warehouse.rows(
                "SELECT example_id, repetition FROM runs WHERE experiment_id = ?",
                [experiment_id],
            )
        )
    spooled = warehouse.spooled_frame("runs")
    if spooled is not None:
        part = spooled.filter(pl.col("experiment_id") == experiment_id)
        keys.update(zip(part["example_id"].to_list(), part["repetition"].to_list(), strict=True))
    return keys


def _dataset_of(settings: Settings, exp: Experiment) -> Dataset:
    ref = exp.params.get("dataset_path") or exp.dataset
    ds = datasets.load_dataset(ref, settings.datasets_dir)
    if ds.version != exp.dataset_version:
        raise ExperimentError(
            f"dataset {ds.path} changed since experiment {exp.experiment_id!r} was prepared "
            f"(version {ds.version} != {exp.dataset_version}): start a new experiment"
        )
    return ds


def pending_items(
    settings: Settings, exp: Experiment, *, shard: int = 0, shards: int = 1
) -> tuple[list[tuple[Example, int]], int]:
    """The shard's (example, repetition) items not yet recorded, and the shard's size."""
    ds = _dataset_of(settings, exp)
    selected = _select(settings, ds, exp.suite)
    done = done_keys(warehouse_for(settings), exp.experiment_id)
    mine = [(e, rep) for e in selected[shard::shards] for rep in range(exp.repetitions)]
    return [(e, rep) for e, rep in mine if (e.id, rep) not in done], len(mine)


def run_shard(
    settings: Settings,
    exp: Experiment,
    *,
    shard: int = 0,
    shards: int = 1,
    progress: bool = False,
    no_cache: bool = False,
) -> ShardResult:
    """Run the missing rows of one shard (examples i with i % shards == shard).

    `no_cache` makes the LLM judges call their endpoint even for cached answers."""
    items, total = pending_items(settings, exp, shard=shard, shards=shards)
    wh = warehouse_for(settings)
    # the pin (git commit and branch included) was recorded by `prepare`
    target = load_target(exp.target.spec, timeout_s=settings.timeout_s, pin_git=False)
    buffer = RowBuffer(wh, settings.flush_rows, settings.flush_s)
    runtime = registry.Runtime(
        settings=settings,
        warehouse=wh,
        experiment_id=exp.experiment_id,
        emit=buffer.emit,
        extras={"judge_no_cache": no_cache},
    )
    evaluators = [registry.build(r, runtime) for r in exp.evaluators]
    runner = Runner(
        settings=settings,
        experiment=exp,
        target=target,
        evaluators=evaluators,
        warehouse=wh,
        concurrency=int(exp.params.get("concurrency") or settings.concurrency),
        progress=progress,
        buffer=buffer,
    )
    result = asyncio.run(runner.run(items))
    result.skipped_existing = total - len(items)
    return result


def _summary_scores(settings: Settings, exp: Experiment, wh: Warehouse) -> list[Score]:
    summary_refs = [r for r in exp.evaluators if registry.get(r.name).summary]
    if not summary_refs:
        return []
    frame = wh.query(
        "SELECT example_id, repetition, latency_ms, error FROM runs WHERE experiment_id = ?",
        [exp.experiment_id],
    )
    runs = [
        RunRecord.model_construct(
            experiment_id=exp.experiment_id,
            example_id=r["example_id"],
            repetition=r["repetition"],
            outputs=None,
            latency_ms=r["latency_ms"],
            error=r["error"],
        )
        for r in frame.iter_rows(named=True)
    ]
    ds = _dataset_of(settings, exp)
    examples = _select(settings, ds, exp.suite)
    runtime = registry.Runtime(settings=settings, warehouse=wh, experiment_id=exp.experiment_id)
    out = []
    for ref in summary_refs:
        ev = registry.build(ref, runtime)
        score = asyncio.run(ev(runs=runs, examples=examples))
        score.details = {**(score.details or {}), "args_hash": ev.args_hash}
        out.append(score)
    return out


def finish(settings: Settings, exp: Experiment, tallies: dict[str, Tally] | None = None) -> Summary:
    """Summary evaluators, status `completed`, and the experiment's summary."""
    wh = warehouse_for(settings)
    try:
        wh.ingest_spool()
        missing = len(pending_items(settings, exp)[0])
        summaries = _summary_scores(settings, exp, wh)
        now = utcnow()
        exp.status = "completed" if missing == 0 else "failed"
        exp.finished_at = now
        exp.params = {**exp.params, "missing_rows": missing}
        rows = [
            {
                "experiment_id": exp.experiment_id,
                "evaluator": s.name,
                "evaluator_version": s.version,
                "evaluator_args_hash": (s.details or {}).get("args_hash", ""),
                "value": s.value,
                "passed": s.passed,
                "comment": s.comment,
                "error": s.error,
                "details": canonical_json(s.details) if s.details else None,
                "created_at": now,
            }
            for s in summaries
        ]
        batch = {"experiments": pl.DataFrame([_experiment_row(exp)])}
        if rows:
            batch["summary_scores"] = pl.DataFrame(rows)
        # the experiment's last write folds the write-ahead log into the file
        wh.write(batch, spool_ok=False, checkpoint=True)
        return summarize(wh, exp, summaries)
    except WarehouseLocked:
        exp.status = "completed"
        exp.finished_at = utcnow()
        wh.write({"experiments": pl.DataFrame([_experiment_row(exp)])})
        evs = [
            EvaluatorSummary(
                evaluator=name,
                version=exp.evaluator_versions.get(name, ""),
                n=t.n,
                passed=t.passed,
                failed=t.failed,
                errors=t.errors,
                skipped=t.skipped,
                pass_rate=t.passed / (t.passed + t.failed) if t.passed + t.failed else None,
                mean_value=t.value_sum / t.values if t.values else None,
            )
            for name, t in (tallies or {}).items()
        ]
        return Summary(
            experiment=exp, rows=0, target_errors=0, evaluators=evs, source="this process"
        )


def summarize(wh: Warehouse, exp: Experiment, summaries: list[Score] | None = None) -> Summary:
    eid = exp.experiment_id
    frame = wh.query(
        """
        SELECT evaluator, any_value(evaluator_version) AS version, count(*) AS n,
               count(*) FILTER (WHERE passed AND error IS NULL AND NOT skipped) AS passed,
               count(*) FILTER (WHERE NOT passed AND error IS NULL AND NOT skipped) AS failed,
               count(*) FILTER (WHERE error IS NOT NULL) AS errors,
               count(*) FILTER (WHERE skipped) AS skipped,
               avg(CAST(passed AS DOUBLE)) FILTER (WHERE NOT skipped) AS pass_rate,
               avg(value) FILTER (WHERE NOT skipped) AS mean_value,
               any_value(comment) FILTER (WHERE skipped) AS comment
        FROM scores WHERE experiment_id = ? GROUP BY evaluator ORDER BY evaluator
        """,
        [eid],
    )
    evs = [EvaluatorSummary(**r) for r in frame.iter_rows(named=True)]
    for s in summaries or []:
        evs.append(
            EvaluatorSummary(
                evaluator=s.name,
                version=s.version,
                n=1,
                passed=int(s.passed is True),
                failed=int(s.passed is False),
                errors=int(s.error is not None),
                skipped=int(s.skipped),
                pass_rate=None if s.passed is None else float(s.passed),
                mean_value=s.value,
                comment=s.comment or s.error,
            )
        )
    counts = wh.rows("SELECT count(*), count(error) FROM runs WHERE experiment_id = ?", [eid])[0]
    return Summary(experiment=exp, rows=counts[0], target_errors=counts[1], evaluators=evs)


def run_suite(
    settings: Settings,
    *,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: list[str] | None = None,
    experiment_id: str | None = None,
    repetitions: int = 1,
    concurrency: int | None = None,
    progress: bool = False,
    no_cache: bool = False,
) -> Summary:
    exp = prepare(
        settings,
        dataset=dataset,
        suite=suite,
        target=target,
        evaluators=evaluators,
        experiment_id=experiment_id,
        repetitions=repetitions,
        concurrency=concurrency,
    )
    result = run_shard(settings, exp, progress=progress, no_cache=no_cache)
    return finish(settings, exp, result.tallies)
