"""`scores` has no primary key (its index was most of the file): its rows stay unique per
(experiment, example, repetition, evaluator) through the write path. A resumed run, a
re-ingested spool batch and a re-scored experiment, each through the real code, leave
exactly one score per key."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import tests.fake_targets as fake_targets
from evalkeeper import run as core
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from tests.helpers import run_suite, write_dataset
from tests.warehouse.test_warehouse import _hold

EXAMPLES, REPETITIONS, EVALUATORS = 12, 2, 2  # write_dataset: exact_match and latency_ok


def _assert_one_score_per_key(wh: Warehouse, experiment_id: str) -> None:
    duplicated = wh.rows(
        "SELECT experiment_id, example_id, repetition, evaluator, count(*) FROM scores "
        "WHERE experiment_id = ? GROUP BY experiment_id, example_id, repetition, evaluator "
        "HAVING count(*) > 1",
        [experiment_id],
    )
    assert duplicated == []
    assert wh.rows("SELECT count(*) FROM scores WHERE experiment_id = ?", [experiment_id]) == [
        (EXAMPLES * REPETITIONS * EVALUATORS,)
    ]
    assert wh.rows("SELECT count(*) FROM runs WHERE experiment_id = ?", [experiment_id]) == [
        (EXAMPLES * REPETITIONS,)
    ]


def test_a_resumed_run_never_duplicates_a_score(settings: Settings, tmp_path: Path) -> None:
    """Half the rows are run, every target call failing; each resume runs the missing rows,
    re-attempts the failed ones (their run and scores superseded) and scores again."""
    ds = write_dataset(tmp_path / "d.jsonl", EXAMPLES)
    s = settings.model_copy(
        update={"runner": settings.runner.model_copy(update={"retries": 0, "flush_rows": 5})}
    )
    fake_targets._calls.clear()  # `flaky` fails twice per input, then answers
    options: dict[str, Any] = {
        "dataset": str(ds),
        "suite": "full",
        "target": "tests.fake_targets:flaky",
        "experiment_id": "resumed",
        "repetitions": REPETITIONS,
    }
    exp = asyncio.run(core.prepare(s, **options))
    first = asyncio.run(core.run_shard(s, exp, shard=0, shards=2))
    assert first.rows == EXAMPLES // 2 * REPETITIONS and first.target_errors == first.rows
    for _ in range(3):
        run_suite(s, **options)
    wh = Warehouse.from_settings(s)
    _assert_one_score_per_key(wh, "resumed")
    assert wh.rows("SELECT count(*) FROM runs WHERE error IS NOT NULL") == [(0,)]
    # every row failed once (both repetitions of an input), then was re-attempted
    assert wh.rows("SELECT attempts, count(*) FROM runs GROUP BY ALL") == [
        (2, EXAMPLES * REPETITIONS)
    ]


def test_a_re_ingested_spool_batch_never_duplicates_a_score(
    settings: Settings, tmp_path: Path
) -> None:
    """A suite runs while an analyst holds the file, so every batch goes to the spool. The
    spool is ingested, then (a crash between commit and clean-up) ingested again whole."""
    ds = write_dataset(tmp_path / "d.jsonl", EXAMPLES)
    s = settings.model_copy(
        update={"lock_wait_s": 0.2, "runner": settings.runner.model_copy(update={"flush_rows": 5})}
    )
    wh = Warehouse.from_settings(s)
    wh.rows("SELECT 1")  # create + migrate
    analyst = _hold(s.warehouse, 3)
    try:
        run_suite(
            s, dataset=str(ds), suite="full", target="tests.fake_targets:instant",
            experiment_id="spooled", repetitions=REPETITIONS,
        )  # fmt: skip
    finally:
        analyst.wait()
    batches = wh.spooled_batches()
    assert len(batches) >= 3
    copy = tmp_path / "spool-copy"
    shutil.copytree(wh.spool_dir, copy)
    assert wh.ingest_spool() == len(batches)
    _assert_one_score_per_key(wh, "spooled")
    shutil.copytree(copy, wh.spool_dir, dirs_exist_ok=True)  # every batch back again
    assert wh.ingest_spool() == len(batches)
    _assert_one_score_per_key(wh, "spooled")


def test_a_re_scored_experiment_never_duplicates_a_score(
    settings: Settings, tmp_path: Path
) -> None:
    """`evalkeeper score` twice on one evaluator, then on both: each score is replaced."""
    ds = write_dataset(tmp_path / "d.jsonl", EXAMPLES)
    run_suite(
        settings, dataset=str(ds), suite="full", target="tests.fake_targets:instant",
        experiment_id="rescored", repetitions=REPETITIONS,
    )  # fmt: skip
    wh = Warehouse.from_settings(settings)
    before = wh.rows("SELECT max(created_at) FROM scores WHERE evaluator = 'exact_match'")[0][0]
    for evaluators in (["exact_match"], ["exact_match"], ["exact_match", "latency_ok"]):
        asyncio.run(core.rescore(settings, "rescored", evaluators))
        _assert_one_score_per_key(wh, "rescored")
    assert wh.rows(
        "SELECT count(*) FROM scores WHERE created_at <= ? AND evaluator = 'exact_match'", [before]
    ) == [(0,)]  # the first scores were replaced, not kept beside the new ones
