"""Experiments: targets, the async runner, and an experiment's life (prepare, run, score,
finish, resume). Plain Python and async end to end: the faces enter the event loop once.
"""

from evalkeeper.run.experiment import (
    finish,
    ingest_results,
    load_experiment,
    new_experiment_id,
    parse_evaluator_names,
    pending_items,
    prepare,
    publish_stored,
    rescore,
    resolve_evaluators,
    run_shard,
    run_suite,
)
from evalkeeper.run.resume import ExperimentError
from evalkeeper.run.runner import RowBuffer, Runner, ShardResult, Tally
from evalkeeper.run.summary import EvaluatorSummary, Summary, summarize
from evalkeeper.run.targets import Target, TargetError, load_target

__all__ = [
    "EvaluatorSummary",
    "ExperimentError",
    "RowBuffer",
    "Runner",
    "ShardResult",
    "Summary",
    "Tally",
    "Target",
    "TargetError",
    "finish",
    "ingest_results",
    "load_experiment",
    "load_target",
    "new_experiment_id",
    "parse_evaluator_names",
    "pending_items",
    "prepare",
    "publish_stored",
    "rescore",
    "resolve_evaluators",
    "run_shard",
    "run_suite",
    "summarize",
]
