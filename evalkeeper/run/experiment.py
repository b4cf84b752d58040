"""Experiments end to end, without Prefect: prepare, run (in shards), score, finish.

`prepare` validates everything up front (dataset, target, evaluators), records the
experiment and its examples, and — when the experiment id already exists — reconciles the
options asked for with the recorded ones (`evalkeeper.run.resume`), so that running it
again completes it. `run_shard` runs one shard of the pending (example, repetition) items
and re-attempts failed target calls; `rescore` scores stored outputs again; `finish` runs
the summary evaluators, marks the experiment completed and returns its summary. All are
async: the faces (CLI, Prefect tasks) enter the event loop once. `run_suite` chains them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from evalkeeper import datasets, registry, suites
from evalkeeper.models import (
    Dataset,
    EvaluatorRef,
    Example,
    ExampleMetadata,
    Experiment,
    RunRecord,
    Score,
    Suite,
    TargetPin,
    canonical_json,
    utcnow,
)
from evalkeeper.run.resume import (
    ExperimentError,
    items_to_run,
    reconcile,
    rescore_plan,
    stored_runs,
)
from evalkeeper.run.runner import Item, RowBuffer, Runner, ShardResult, Tally
from evalkeeper.run.summary import Summary, summarize, summary_from_tallies
from evalkeeper.run.targets import Target, load_target
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse, WarehouseLocked
from evalkeeper.warehouse.results import IngestReport, ResultsLocation, ShardView, ShardWriter
from evalkeeper.warehouse.tables import table_frame

EXAMPLES_CHUNK = 10_000

__all__ = ["ExperimentError", "Summary"]


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
        share=settings.smoke.share,
        min_per_category=settings.smoke.min_per_category,
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
    return table_frame(
        "examples",
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
        },
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
        evaluators=[
            EvaluatorRef(name=e["name"], args=e.get("args") or {}, optional=bool(e.get("optional")))
            for e in evs
        ],
        evaluator_versions={e["name"]: e.get("version") or "" for e in evs},
        repetitions=row["repetitions"],
        params=json.loads(row["params"]) if row["params"] else {},
        n_examples=row["n_examples"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def prepare(
    settings: Settings,
    *,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: list[str] | None = None,
    experiment_id: str | None = None,
    repetitions: int | None = None,
    concurrency: int | None = None,
    params: dict[str, Any] | None = None,
    allow_skipped: list[str] | None = None,
) -> Experiment:
    """Validate inputs and record the experiment (or reconcile it with the recorded one,
    to resume it). `repetitions` None: 1 for a new experiment, the recorded count on a
    resume; `evaluators` None: the dataset's defaults, or the recorded ones on a resume."""
    if repetitions is not None and repetitions < 1:
        raise ExperimentError("--repetitions must be at least 1")
    ds = datasets.load_dataset(dataset, settings.datasets_dir)
    wh = Warehouse.from_settings(settings)
    existing = load_experiment(wh, experiment_id) if experiment_id else None
    refs: list[EvaluatorRef] | None = None
    if evaluators is not None or existing is None:
        refs = [registry.with_defaults(r, settings) for r in resolve_evaluators(ds, evaluators)]
    refs = _allow_skipped(
        refs if refs is not None else existing.evaluators if existing else [], allow_skipped
    )
    # fail now on unknown names, bad arguments or an unpinned judge model
    built = [registry.build(r, registry.Runtime(settings=settings)) for r in refs]
    versions = {b.name: b.version for b in built}
    tgt = load_target(
        target,
        timeout_s=settings.runner.timeout_s,
        git_commit=settings.git_commit,
        git_branch=settings.git_branch,
    )
    await tgt.aclose()
    selected = _select(settings, ds, suite)
    if existing is not None:
        exp, _added = reconcile(
            existing,
            dataset_version=ds.version,
            suite=suite,
            target=target,
            refs=refs,
            versions=versions,
            repetitions=repetitions,
        )
        exp.status = "running"
        exp.finished_at = None
        exp.params = {**exp.params, **(params or {})}
        if concurrency:
            exp.params["concurrency"] = concurrency
        await asyncio.to_thread(
            wh.write, {"experiments": table_frame("experiments", [_experiment_row(exp)])}
        )
        return exp
    exp = Experiment(
        experiment_id=experiment_id or new_experiment_id(suite, ds.name),
        suite=suite,
        dataset=ds.name,
        dataset_version=ds.version,
        target=tgt.pin,
        evaluators=refs,
        evaluator_versions=versions,
        repetitions=repetitions or 1,
        params={
            "dataset_path": ds.path,
            "concurrency": concurrency or settings.runner.concurrency,
            "timeout_s": settings.runner.timeout_s,
            "smoke_share": settings.smoke.share,
            "smoke_min_per_category": settings.smoke.min_per_category,
            "seed": settings.seed,
            **(params or {}),
        },
        n_examples=len(selected),
    )
    await asyncio.to_thread(_record_new, wh, ds, exp)
    return exp


def _allow_skipped(refs: list[EvaluatorRef], names: list[str] | None) -> list[EvaluatorRef]:
    """Mark `names` optional (allowed to be skipped); each must be one of `refs`."""
    if not names:
        return refs
    known = {r.name for r in refs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ExperimentError(
            f"--allow-skipped {','.join(unknown)}: not an evaluator of this run (it runs "
            f"{', '.join(sorted(known)) or 'none'})"
        )
    return [r.model_copy(update={"optional": True}) if r.name in names else r for r in refs]


def _record_new(wh: Warehouse, ds: Dataset, exp: Experiment) -> None:
    """The examples rows of a dataset version the warehouse does not hold yet (every
    example of it, in chunks: keyed rows, so a crash in between is harmless), then the
    experiment. A version already held is not written again."""
    try:
        held = wh.rows(
            "SELECT count(*) FROM examples WHERE dataset_version = ?", [exp.dataset_version]
        )[0][0]
    except WarehouseLocked:  # written to the spool then; a second copy is ignored on ingest
        held = 0
    if held < len(ds.examples):
        for start in range(0, len(ds.examples), EXAMPLES_CHUNK):
            chunk = ds.examples[start : start + EXAMPLES_CHUNK]
            wh.write({"examples": _examples_frame(ds, ds.version, chunk)})
    for example in ds.examples:  # the canonical JSON has served (hashes and examples rows):
        example.__dict__.pop("canonical", None)  # ~0.9 KB an example, 85 MB at 100k
    wh.write({"experiments": table_frame("experiments", [_experiment_row(exp)])})


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
    settings: Settings,
    exp: Experiment,
    *,
    shard: int = 0,
    shards: int = 1,
    retry_failed: bool = True,
) -> tuple[list[Item], int]:
    """The shard's items not yet recorded (and those whose target call failed, to try
    again), and the shard's size in rows."""
    ds = _dataset_of(settings, exp)
    selected = _select(settings, ds, exp.suite)[shard::shards]
    stored = stored_runs(Warehouse.from_settings(settings), exp.experiment_id)
    items = items_to_run(selected, exp.repetitions, stored, retry_failed=retry_failed)
    return items, len(selected) * exp.repetitions


def _runtime(
    settings: Settings,
    wh: Warehouse | None,
    exp: Experiment,
    buffer: RowBuffer | None,
    no_cache: bool,
) -> registry.Runtime:
    return registry.Runtime(
        settings=settings,
        warehouse=wh,
        experiment_id=exp.experiment_id,
        emit=buffer.emit if buffer else None,
        extras={"judge_no_cache": no_cache},
    )


def _runner(
    settings: Settings,
    exp: Experiment,
    wh: Warehouse | ShardWriter,
    target: Target | None,
    evaluators: list[registry.BuiltEvaluator],
    buffer: RowBuffer,
    progress: bool,
) -> Runner:
    return Runner(
        settings=settings,
        experiment=exp,
        target=target,
        evaluators=evaluators,
        warehouse=wh,
        concurrency=int(exp.params.get("concurrency") or settings.runner.concurrency),
        progress=progress,
        buffer=buffer,
    )


async def run_shard(
    settings: Settings,
    exp: Experiment,
    *,
    shard: int = 0,
    shards: int = 1,
    progress: bool = False,
    no_cache: bool = False,
    results: ResultsLocation | None = None,
) -> ShardResult:
    """Run the missing rows of one shard (examples i with i % shards == shard), try the
    rows whose target call failed again, and score what the other stored rows lack
    (errored scores, evaluators added on a resume).

    With `results` the shard never opens the warehouse: what is stored comes from the
    snapshot the parent published (`publish_stored`) and the shard's own earlier batches,
    its rows go to the results location, and the parent ingests them (`ingest_results`).
    The LLM judges then start without the warehouse's answer cache.

    `no_cache` makes the LLM judges call their endpoint even for cached answers."""

    def plan() -> tuple[list[Example], list[Item], Warehouse | ShardView]:
        selected = _select(settings, _dataset_of(settings, exp), exp.suite)[shard::shards]
        reader = (
            Warehouse.from_settings(settings)
            if results is None
            else results.shard_view(exp.experiment_id, shard)
        )
        stored = stored_runs(reader, exp.experiment_id)
        return selected, items_to_run(selected, exp.repetitions, stored), reader

    selected, items, reader = await asyncio.to_thread(plan)
    wh = reader if isinstance(reader, Warehouse) else None
    view = reader if isinstance(reader, ShardView) else None
    sink = wh if results is None else results.writer(exp.experiment_id, shard)
    assert sink is not None
    total = len(selected) * exp.repetitions
    # the pin (git commit and branch included) was recorded by `prepare`
    target = load_target(exp.target.spec, timeout_s=settings.runner.timeout_s, pin_git=False)
    buffer = RowBuffer(sink, settings.runner.flush_rows, settings.runner.flush_s)
    runtime = _runtime(settings, wh, exp, buffer, no_cache)
    evaluators = [registry.build(r, runtime) for r in exp.evaluators]
    runner = _runner(settings, exp, sink, target, evaluators, buffer, progress)
    try:
        result = await runner.run(items)
        result.skipped_existing = total - len(items)
        if result.skipped_existing:  # rows stored before this call: score what they lack
            just_run = {(i.example.id, i.repetition) for i in items}
            try:
                jobs = await asyncio.to_thread(
                    rescore_plan,
                    settings,
                    reader,
                    exp,
                    {e.id: e for e in selected},
                    evaluators,
                    exclude=just_run,
                )
            except WarehouseLocked:  # the stored scores cannot be read now: the next resume
                jobs = []
            if jobs:
                await runner.rescore(jobs)
    finally:
        if view is not None:
            view.close()
    return result


async def publish_stored(settings: Settings, exp: Experiment, results: ResultsLocation) -> int:
    """The parent's step before remote shards: ingest what earlier shards of the experiment
    left in the results location, then publish the experiment's stored runs and scores
    there for the shards' resume. Returns the runs published."""
    wh = Warehouse.from_settings(settings)
    await asyncio.to_thread(results.ingest, wh, exp.experiment_id)

    def snapshot() -> int:
        frames = {
            table: wh.query(f"SELECT * FROM {table} WHERE experiment_id = ?", [exp.experiment_id])
            for table in ("runs", "scores")
        }
        results.publish_stored(exp.experiment_id, frames)
        return frames["runs"].height

    return await asyncio.to_thread(snapshot)


async def ingest_results(
    settings: Settings, exp: Experiment, results: ResultsLocation
) -> IngestReport:
    """The parent's step after its shards: every committed batch of the experiment into
    the warehouse (the single writer), then removed from the results location."""
    wh = Warehouse.from_settings(settings)
    return await asyncio.to_thread(results.ingest, wh, exp.experiment_id)


async def rescore(
    settings: Settings,
    experiment_id: str,
    evaluators: list[str],
    *,
    progress: bool = False,
    no_cache: bool = False,
) -> Summary:
    """`evalkeeper score`: run `evaluators` (new ones, or new versions) on an experiment's
    stored outputs without calling the target again; their previous scores on it are
    superseded, the experiment records them, and it is finished again."""
    wh = Warehouse.from_settings(settings)
    exp = await asyncio.to_thread(load_experiment, wh, experiment_id)
    if exp is None:
        raise ExperimentError(
            f"unknown experiment {experiment_id!r}: it is not in {wh.path}. "
            "List them with `evalkeeper experiments`."
        )
    ds = datasets.load_dataset(exp.params.get("dataset_path") or exp.dataset, settings.datasets_dir)
    recorded = {r.name: r for r in exp.evaluators}
    configured = {r.name: r for r in ds.config.evaluators}
    refs = [
        registry.with_defaults(
            recorded.get(n) or configured.get(n) or EvaluatorRef(name=n), settings
        )
        for n in evaluators
    ]
    buffer = RowBuffer(wh, settings.runner.flush_rows, settings.runner.flush_s)
    runtime = _runtime(settings, wh, exp, buffer, no_cache)
    built = [registry.build(r, runtime) for r in refs]
    for ref, ev in zip(refs, built, strict=True):
        recorded[ref.name] = ref
        exp.evaluator_versions[ref.name] = ev.version
    exp.evaluators = list(recorded.values())
    examples = await asyncio.to_thread(_stored_examples, wh, exp.dataset_version)
    jobs = await asyncio.to_thread(
        rescore_plan, settings, wh, exp, examples, built, everything=True
    )
    result = await _runner(settings, exp, wh, None, built, buffer, progress).rescore(jobs)
    return await finish(settings, exp, result.tallies)


def _stored_examples(wh: Warehouse, dataset_version: str) -> dict[str, Example]:
    """The examples of a dataset version as the warehouse recorded them."""
    out = {}
    for ex, inputs, reference, metadata in wh.rows(
        "SELECT example_id, inputs, reference_outputs, metadata FROM examples "
        "WHERE dataset_version = ?",
        [dataset_version],
    ):
        out[ex] = Example(
            id=ex,
            inputs=json.loads(inputs) if inputs else {},
            reference_outputs=json.loads(reference) if reference else {},
            metadata=ExampleMetadata(**json.loads(metadata)) if metadata else ExampleMetadata(),
        )
    return out


async def _summary_scores(settings: Settings, exp: Experiment, wh: Warehouse) -> list[Score]:
    summary_refs = [r for r in exp.evaluators if registry.get(r.name).summary]
    if not summary_refs:
        return []
    frame = await asyncio.to_thread(
        wh.query,
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
        score = await ev(runs=runs, examples=examples)
        score.details = {**(score.details or {}), "args_hash": ev.args_hash}
        out.append(score)
    return out


async def finish(
    settings: Settings, exp: Experiment, tallies: dict[str, Tally] | None = None
) -> Summary:
    """Summary evaluators, status `completed` (every row recorded) or `failed`, and the
    experiment's summary, errors grouped by cause.

    While another process holds the warehouse read-only (an analyst), the reads see the
    rows waiting in the spool (`Warehouse.reading`) and the finish (status, summary scores)
    is spooled after them; the summary says how many of the experiment's batches wait
    there. Only a writer holding the file past the lock wait leaves the reads impossible:
    the summary then covers this process's rows (`tallies`)."""
    wh = Warehouse.from_settings(settings)
    try:
        items, _ = await asyncio.to_thread(pending_items, settings, exp, retry_failed=False)
        missing = len(items)
        summaries = await _summary_scores(settings, exp, wh)
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
        batch = {"experiments": table_frame("experiments", [_experiment_row(exp)])}
        if rows:
            batch["summary_scores"] = table_frame("summary_scores", rows)
        # the experiment's last write folds the write-ahead log into the file (or, while
        # the file is held, waits in the spool after the experiment's rows)
        await asyncio.to_thread(wh.write, batch, checkpoint=True)
        summary = await asyncio.to_thread(summarize, settings, wh, exp, summaries)
    except WarehouseLocked:
        exp.status = "completed"
        exp.finished_at = utcnow()
        await asyncio.to_thread(
            wh.write, {"experiments": table_frame("experiments", [_experiment_row(exp)])}
        )
        summary = summary_from_tallies(settings, exp, tallies)
    return await asyncio.to_thread(_with_spool, wh, exp, summary)


def _with_spool(wh: Warehouse, exp: Experiment, summary: Summary) -> Summary:
    """The summary with the experiment's batches that wait in the spool, counted and said."""
    batches = spooled_batches_of(wh, exp)
    summary.spooled_batches = len(batches)
    if batches:
        if summary.source == "warehouse":
            summary.source = "warehouse and spool"
        waiting = len(wh.spooled_batches())
        others = f" ({waiting} in all)" if waiting != len(batches) else ""
        summary.spool_note = (
            f"{len(batches)} batch{'es' if len(batches) != 1 else ''} of this experiment "
            f"wait{'s' if len(batches) == 1 else ''} in the spool {wh.spool_dir}{others}: "
            "another process holds the warehouse; the next writer ingests them, in order"
        )
    return summary


def spooled_batches_of(wh: Warehouse, exp: Experiment) -> list[Path]:
    """The spooled batches that hold rows of `exp` (its experiment row, runs, scores,
    summary scores, judge votes) or examples of its dataset version."""
    out = []
    for batch in wh.spooled_batches():
        for file in sorted(batch.glob("*.parquet")):
            columns = pl.read_parquet_schema(file)
            if "experiment_id" in columns:
                mine = pl.col("experiment_id") == exp.experiment_id
            elif file.stem == "examples":
                mine = pl.col("dataset_version") == exp.dataset_version
            else:
                continue
            if pl.scan_parquet(file).filter(mine).select(pl.len()).collect().item():
                out.append(batch)
                break
    return out


async def run_suite(
    settings: Settings,
    *,
    dataset: str,
    suite: Suite,
    target: str,
    evaluators: list[str] | None = None,
    experiment_id: str | None = None,
    repetitions: int | None = None,
    concurrency: int | None = None,
    progress: bool = False,
    no_cache: bool = False,
    allow_skipped: list[str] | None = None,
    shards: int = 1,
    results: ResultsLocation | None = None,
) -> Summary:
    """prepare, the shards one after another, finish. With `results` the shards write
    there and the warehouse ingests their rows before the finish (as the flows' remote
    shards do); without, each shard writes to the warehouse."""
    exp = await prepare(
        settings,
        dataset=dataset,
        suite=suite,
        target=target,
        evaluators=evaluators,
        experiment_id=experiment_id,
        repetitions=repetitions,
        concurrency=concurrency,
        allow_skipped=allow_skipped,
    )
    if results is not None:
        await publish_stored(settings, exp, results)
    tallies: dict[str, Tally] | None = None
    for shard in range(shards):
        result = await run_shard(
            settings,
            exp,
            shard=shard,
            shards=shards,
            progress=progress,
            no_cache=no_cache,
            results=results,
        )
        tallies = result.tallies if shards == 1 else None
    if results is not None:
        await ingest_results(settings, exp, results)
    return await finish(settings, exp, tallies)
