"""Every warehouse table, declared once: its columns (name, DuckDB type, nullability), its
primary key and how a batch writes it.

From a declaration come the writers' frame schemas (`Table.polars_schema`, `table_frame`)
and the DDL of tables created from now on (`Table.ddl`). The migrations in
`evalkeeper.warehouse.schema` are history, applied as written to existing files; a test
(tests/warehouse/test_tables.py) migrates a fresh file and checks that it matches these
declarations column for column. A change to a table is therefore two edits: its
declaration here, and a new migration whose DDL is taken from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import polars as pl

DuckType = Literal["VARCHAR", "JSON", "INTEGER", "DOUBLE", "BOOLEAN", "TIMESTAMPTZ"]
VARCHAR: DuckType = "VARCHAR"
JSON: DuckType = "JSON"  # canonical JSON text (sorted keys)
INTEGER: DuckType = "INTEGER"
DOUBLE: DuckType = "DOUBLE"
BOOLEAN: DuckType = "BOOLEAN"
TIMESTAMPTZ: DuckType = "TIMESTAMPTZ"  # always UTC

# The frame dtype a writer gives each DuckDB type (JSON travels as text).
POLARS_TYPES: dict[DuckType, pl.DataType] = {
    "VARCHAR": pl.String(),
    "JSON": pl.String(),
    "INTEGER": pl.Int32(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"),
}

Conflict = Literal["ignore", "replace", "with_run", "supersede"]
"""How a batch row that already exists is treated. `ignore` makes re-ingest and resume
idempotent (first write wins); `replace` is for rows that move through states; `with_run`
rows (no key of their own) are inserted only for the runs (experiment, example, repetition)
that the same batch inserted. `supersede` entries are not tables: their rows are keys whose
stored rows the same batch replaces, deleted first in the batch's transaction (a resumed
run re-attempting a failed target call, a re-score); see `SUPERSEDE`."""


@dataclass(frozen=True)
class Column:
    name: str
    type: DuckType
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """One table. `policy` is None for the bookkeeping tables that `migrate` writes itself
    (never through `Warehouse.write`). A table without a key says why in `unkeyed`."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    policy: Conflict | None
    unkeyed: str = ""

    def __post_init__(self) -> None:
        names = self.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: a column is declared twice")
        by_name = {c.name: c for c in self.columns}
        for k in self.key:
            if k not in by_name or by_name[k].nullable:
                raise ValueError(f"table {self.name}: key column {k!r} must be a NOT NULL column")
        if not self.key and not self.unkeyed:
            raise ValueError(f"table {self.name}: no primary key, and `unkeyed` says not why")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def polars_schema(self) -> dict[str, pl.DataType]:
        """Column name -> the dtype of a written frame, in column order."""
        return {c.name: POLARS_TYPES[c.type] for c in self.columns}

    def ddl(self, *, if_not_exists: bool = False) -> str:
        """The CREATE TABLE statement of this table as declared."""
        lines = [f"    {c.name} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        if self.key:
            lines.append(f"    PRIMARY KEY ({', '.join(self.key)})")
        exists = " IF NOT EXISTS" if if_not_exists else ""
        return f"CREATE TABLE{exists} {self.name} (\n" + ",\n".join(lines) + "\n)"


# -- bookkeeping (written by `migrate`) ---------------------------------------------

# One row per applied migration.
SCHEMA_VERSION = Table(
    "schema_version",
    columns=(
        Column("version", INTEGER, nullable=False),
        Column("applied_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("version",),
    policy=None,
)

# The hash of each view's definition: a view is re-created only when it changed.
SCHEMA_VIEWS = Table(
    "schema_views",
    columns=(
        Column("name", VARCHAR, nullable=False),
        Column("hash", VARCHAR),
    ),
    key=("name",),
    policy=None,
)

# -- experiments -------------------------------------------------------------------------

EXAMPLES = Table(
    "examples",
    columns=(
        Column("dataset", VARCHAR, nullable=False),
        Column("dataset_version", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("content_hash", VARCHAR, nullable=False),
        Column("category", VARCHAR, nullable=False),
        Column("critical", BOOLEAN, nullable=False),
        Column("incident_id", VARCHAR),
        Column("inputs", JSON),
        Column("reference_outputs", JSON),
        Column("metadata", JSON),
    ),
    key=("dataset_version", "example_id"),
    policy="ignore",
)

EXPERIMENTS = Table(
    "experiments",
    columns=(
        Column("experiment_id", VARCHAR, nullable=False),
        Column("suite", VARCHAR, nullable=False),
        Column("dataset", VARCHAR, nullable=False),
        Column("dataset_version", VARCHAR, nullable=False),
        Column("target_spec", VARCHAR, nullable=False),
        Column("target_kind", VARCHAR, nullable=False),
        Column("agent_version", VARCHAR),
        Column("model", VARCHAR),
        Column("git_commit", VARCHAR),
        Column("git_branch", VARCHAR),
        Column("evaluators", JSON),
        Column("repetitions", INTEGER, nullable=False),
        Column("params", JSON),
        Column("n_examples", INTEGER, nullable=False),
        Column("status", VARCHAR, nullable=False),
        Column("started_at", TIMESTAMPTZ, nullable=False),
        Column("finished_at", TIMESTAMPTZ),
    ),
    key=("experiment_id",),
    policy="replace",
)

# One target call per (experiment, example, repetition).
RUNS = Table(
    "runs",
    columns=(
        Column("experiment_id", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("repetition", INTEGER, nullable=False),
        Column("outputs", JSON),
        Column("latency_ms", DOUBLE),
        Column("error", VARCHAR),
        Column("attempts", INTEGER, nullable=False),
        Column("started_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("experiment_id", "example_id", "repetition"),
    policy="ignore",
)

SCORES = Table(
    "scores",
    columns=(
        Column("experiment_id", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("repetition", INTEGER, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("evaluator_version", VARCHAR, nullable=False),
        Column("evaluator_args_hash", VARCHAR, nullable=False),
        Column("value", DOUBLE),
        Column("passed", BOOLEAN),
        Column("comment", VARCHAR),
        Column("error", VARCHAR),
        Column("skipped", BOOLEAN, nullable=False),
        Column("details", JSON),
        Column("created_at", TIMESTAMPTZ, nullable=False),
        Column("dataset_version", VARCHAR, nullable=False),
        Column("category", VARCHAR, nullable=False),
        Column("target_spec", VARCHAR, nullable=False),
        Column("agent_version", VARCHAR),
        Column("model", VARCHAR),
        Column("judge_model", VARCHAR),
        Column("git_commit", VARCHAR),
    ),
    key=(),
    unkeyed=(
        "its index was most of the file (about 94% at 7.6M score rows) and most of a small "
        "write's time (migration 2 dropped it). (experiment_id, example_id, repetition, "
        "evaluator) stays unique through the `with_run` policy and the supersede entries: "
        "docs/warehouse.md, 'How the rows of `scores` are kept unique'"
    ),
    policy="with_run",
)

SUMMARY_SCORES = Table(
    "summary_scores",
    columns=(
        Column("experiment_id", VARCHAR, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("evaluator_version", VARCHAR, nullable=False),
        Column("evaluator_args_hash", VARCHAR, nullable=False),
        Column("value", DOUBLE),
        Column("passed", BOOLEAN),
        Column("comment", VARCHAR),
        Column("error", VARCHAR),
        Column("details", JSON),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("experiment_id", "evaluator"),
    policy="replace",
)

JUDGES = Table(
    "judges",
    columns=(
        Column("judge", VARCHAR, nullable=False),
        Column("model", VARCHAR),
        Column("prompt_version", VARCHAR),
        Column("status", VARCHAR, nullable=False),
        Column("status_reason", VARCHAR),
        Column("updated_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("judge",),
    policy="replace",
)

# One LLM judge call; its rows follow their run (see `SUPERSEDE`).
JUDGE_VOTES = Table(
    "judge_votes",
    columns=(
        Column("experiment_id", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("repetition", INTEGER, nullable=False),
        Column("judge", VARCHAR, nullable=False),
        Column("model", VARCHAR, nullable=False),
        Column("prompt_version", VARCHAR, nullable=False),
        Column("vote_index", INTEGER, nullable=False),
        Column("verdict", VARCHAR),
        Column("reasoning", VARCHAR),
        Column("latency_ms", DOUBLE),
        Column("prompt_tokens", INTEGER),
        Column("completion_tokens", INTEGER),
        Column("cost_usd", DOUBLE),
        Column("cached", BOOLEAN, nullable=False),
        Column("cache_key", VARCHAR, nullable=False),
        Column("error", VARCHAR),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("experiment_id", "example_id", "repetition", "judge", "vote_index"),
    policy="ignore",
)

# A judge's answer, content-addressed by (model pin, prompt version, messages, vote).
JUDGE_CACHE = Table(
    "judge_cache",
    columns=(
        Column("cache_key", VARCHAR, nullable=False),
        Column("model", VARCHAR, nullable=False),
        Column("prompt_version", VARCHAR, nullable=False),
        Column("vote_index", INTEGER, nullable=False),
        Column("response", JSON, nullable=False),
        Column("prompt_tokens", INTEGER),
        Column("completion_tokens", INTEGER),
        Column("cost_usd", DOUBLE),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("cache_key",),
    policy="ignore",
)

# One comparison (`evalkeeper.warehouse.comparisons.save_comparison`) is one batch of rows
# sharing a comparison_id: kind 'verdict' (one row; evaluator = category = '__verdict__'),
# 'cell' (one per evaluator x category, category '__all__' per evaluator) and 'row' (one
# per critical/incident example that passed in the baseline and fails now). example_id is
# '' except on 'row' rows. Rates are pass rates, or mean values when the evaluator reports
# no pass/fail (metric says which).
COMPARISONS = Table(
    "comparisons",
    columns=(
        Column("comparison_id", VARCHAR, nullable=False),
        Column("kind", VARCHAR, nullable=False),
        Column("experiment_id", VARCHAR, nullable=False),
        Column("baseline_id", VARCHAR, nullable=False),
        Column("suite", VARCHAR, nullable=False),
        Column("dataset", VARCHAR, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("category", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("incident_id", VARCHAR),
        Column("verdict", VARCHAR, nullable=False),
        Column("metric", VARCHAR),
        Column("n_examples", INTEGER),
        Column("baseline_rate", DOUBLE),
        Column("baseline_ci_low", DOUBLE),
        Column("baseline_ci_high", DOUBLE),
        Column("candidate_rate", DOUBLE),
        Column("candidate_ci_low", DOUBLE),
        Column("candidate_ci_high", DOUBLE),
        Column("diff", DOUBLE),
        Column("diff_ci_low", DOUBLE),
        Column("diff_ci_high", DOUBLE),
        Column("test", VARCHAR),
        Column("p_value", DOUBLE),
        Column("p_adjusted", DOUBLE),
        Column("mde", DOUBLE),
        Column("errors_baseline", INTEGER),
        Column("errors_candidate", INTEGER),
        Column("baseline_output", VARCHAR),
        Column("candidate_output", VARCHAR),
        Column("details", JSON),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("comparison_id", "kind", "evaluator", "category", "example_id"),
    policy="ignore",
)

# -- production traces (evalkeeper.traces) ------------------------------------------------

# A redacted trace. A source's cursor row is written in the same batch as the traces it
# covers, so a crash between batches neither skips nor repeats a line.
TRACES = Table(
    "traces",
    columns=(
        Column("trace_id", VARCHAR, nullable=False),
        Column("time", TIMESTAMPTZ, nullable=False),
        Column("service", VARCHAR),
        Column("environment", VARCHAR),
        Column("version", VARCHAR),
        Column("model", VARCHAR),
        Column("inputs", JSON, nullable=False),
        Column("outputs", JSON),
        Column("latency_ms", DOUBLE),
        Column("error", VARCHAR),
        Column("tool_calls", JSON, nullable=False),
        Column("context", JSON, nullable=False),
        Column("conversation_id", VARCHAR),
        Column("feedback", JSON),
        Column("metadata", JSON, nullable=False),
        Column("source", VARCHAR, nullable=False),
        Column("ingested_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("trace_id",),
    policy="ignore",
)

TRACE_CURSORS = Table(
    "trace_cursors",
    columns=(
        Column("source", VARCHAR, nullable=False),
        Column("cursor", JSON, nullable=False),
        Column("updated_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("source",),
    policy="replace",
)

# -- post-deploy monitoring (evalkeeper.monitor) ------------------------------------------

# A window is a row that moves through states. A tick writes its scores, its row, its
# per-evaluator counts (recomputed from `monitoring_scores`, never added to), the window's
# new state and (once) the rollback decision in one batch.
MONITORING_WINDOWS = Table(
    "monitoring_windows",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("deploy_id", VARCHAR, nullable=False),
        Column("service", VARCHAR, nullable=False),
        Column("environment", VARCHAR),
        Column("version", VARCHAR, nullable=False),
        Column("previous_version", VARCHAR),
        Column("deployed_at", TIMESTAMPTZ, nullable=False),
        Column("ends_at", TIMESTAMPTZ, nullable=False),
        Column("baseline_start", TIMESTAMPTZ, nullable=False),
        Column("baseline_end", TIMESTAMPTZ, nullable=False),
        Column("config", JSON, nullable=False),
        Column("source", VARCHAR, nullable=False),
        Column("state", VARCHAR, nullable=False),
        Column("decision", VARCHAR, nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("last_tick_at", TIMESTAMPTZ),
        Column("opened_at", TIMESTAMPTZ, nullable=False),
        Column("closed_at", TIMESTAMPTZ),
        Column("updated_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("window_id",),
    policy="replace",
)

MONITORING_WEBHOOKS = Table(
    "monitoring_webhooks",
    columns=(
        Column("delivery_id", VARCHAR, nullable=False),
        Column("kind", VARCHAR, nullable=False),
        Column("window_id", VARCHAR, nullable=False),
        Column("received_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("delivery_id",),
    policy="ignore",
)

MONITORING_SCORES = Table(
    "monitoring_scores",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("trace_id", VARCHAR, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("phase", VARCHAR, nullable=False),
        Column("trace_time", TIMESTAMPTZ, nullable=False),
        Column("evaluator_version", VARCHAR, nullable=False),
        Column("evaluator_args_hash", VARCHAR, nullable=False),
        Column("value", DOUBLE),
        Column("passed", BOOLEAN),
        Column("comment", VARCHAR),
        Column("error", VARCHAR),
        Column("skipped", BOOLEAN, nullable=False),
        Column("tick_at", TIMESTAMPTZ, nullable=False),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("window_id", "trace_id", "evaluator"),
    policy="ignore",
)

MONITORING_TICKS = Table(
    "monitoring_ticks",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("tick_at", TIMESTAMPTZ, nullable=False),
        Column("decision", VARCHAR, nullable=False),
        Column("final", BOOLEAN, nullable=False),
        Column("reasons", JSON, nullable=False),
        Column("new_window_traces", INTEGER, nullable=False),
        Column("new_baseline_traces", INTEGER, nullable=False),
        Column("ticked_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("window_id", "tick_at"),
    policy="replace",
)

MONITORING_COUNTS = Table(
    "monitoring_counts",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("tick_at", TIMESTAMPTZ, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("baseline_n", INTEGER, nullable=False),
        Column("baseline_flags", INTEGER, nullable=False),
        Column("baseline_errors", INTEGER, nullable=False),
        Column("window_n", INTEGER, nullable=False),
        Column("window_flags", INTEGER, nullable=False),
        Column("window_errors", INTEGER, nullable=False),
        Column("baseline_rate", DOUBLE),
        Column("upper_bound", DOUBLE),
        Column("window_rate", DOUBLE),
        Column("statistic", DOUBLE),
        Column("threshold", DOUBLE),
        Column("decision", VARCHAR, nullable=False),
        Column("reason", VARCHAR),
    ),
    key=("window_id", "tick_at", "evaluator"),
    policy="replace",
)

# One decision per window (`ignore`: the first wins), written before any delivery.
MONITORING_ROLLBACKS = Table(
    "monitoring_rollbacks",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("decided_at", TIMESTAMPTZ, nullable=False),
        Column("evaluator", VARCHAR, nullable=False),
        Column("channels", JSON, nullable=False),
        Column("payload", JSON, nullable=False),
        Column("created_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("window_id",),
    policy="ignore",
)

# One row per delivery attempt.
MONITORING_DELIVERIES = Table(
    "monitoring_deliveries",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("channel", VARCHAR, nullable=False),
        Column("attempt", INTEGER, nullable=False),
        Column("attempted_at", TIMESTAMPTZ, nullable=False),
        Column("ok", BOOLEAN, nullable=False),
        Column("status_code", INTEGER),
        Column("error", VARCHAR),
    ),
    key=("window_id", "channel", "attempt"),
    policy="ignore",
)

# Who is delivering a window's rollback now: one row per window, taken and released by
# `evalkeeper.monitor.rollback` in its own transactions, never through a batch or the
# spool (a claim needs the warehouse's answer); `replace` is the policy a batch would
# have. A claim whose `expires_at` has passed is dead (its claimer crashed or hung) and is
# taken over.
MONITORING_CLAIMS = Table(
    "monitoring_claims",
    columns=(
        Column("window_id", VARCHAR, nullable=False),
        Column("claim_id", VARCHAR, nullable=False),
        Column("claimant", VARCHAR, nullable=False),
        Column("claimed_at", TIMESTAMPTZ, nullable=False),
        Column("expires_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("window_id",),
    policy="replace",
)

# -- judge calibration (evalkeeper.calibration) -------------------------------------------

# Items drawn for human labels.
CALIBRATION_ITEMS = Table(
    "calibration_items",
    columns=(
        Column("item_id", VARCHAR, nullable=False),
        Column("judge", VARCHAR, nullable=False),
        Column("prompt_version", VARCHAR, nullable=False),
        Column("judge_model", VARCHAR),
        Column("experiment_id", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("repetition", INTEGER, nullable=False),
        Column("category", VARCHAR, nullable=False),
        Column("judge_verdict", VARCHAR, nullable=False),
        Column("copies", INTEGER, nullable=False),
        Column("sample_id", VARCHAR, nullable=False),
        Column("sampled_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("item_id", "judge"),
    policy="ignore",
)

# One label per item, judge and annotator: the latest wins.
HUMAN_LABELS = Table(
    "human_labels",
    columns=(
        Column("item_id", VARCHAR, nullable=False),
        Column("judge", VARCHAR, nullable=False),
        Column("annotator", VARCHAR, nullable=False),
        Column("experiment_id", VARCHAR, nullable=False),
        Column("example_id", VARCHAR, nullable=False),
        Column("repetition", INTEGER, nullable=False),
        Column("label", VARCHAR, nullable=False),
        Column("labelled_at", TIMESTAMPTZ, nullable=False),
        Column("note", VARCHAR),
        Column("source", VARCHAR, nullable=False),
        Column("imported_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("item_id", "judge", "annotator"),
    policy="replace",
)

# Every measurement, with its evidence and decided status.
JUDGE_CALIBRATIONS = Table(
    "judge_calibrations",
    columns=(
        Column("calibration_id", VARCHAR, nullable=False),
        Column("judge", VARCHAR, nullable=False),
        Column("prompt_version", VARCHAR, nullable=False),
        Column("judge_model", VARCHAR, nullable=False),
        Column("quarter", VARCHAR, nullable=False),
        Column("n_items", INTEGER, nullable=False),
        Column("n_ties", INTEGER, nullable=False),
        Column("agreement", DOUBLE),
        Column("agreement_ci_low", DOUBLE),
        Column("agreement_ci_high", DOUBLE),
        Column("kappa", DOUBLE),
        Column("kappa_se", DOUBLE),
        Column("kappa_ci_low", DOUBLE),
        Column("kappa_ci_high", DOUBLE),
        Column("ac1", DOUBLE),
        Column("ac1_se", DOUBLE),
        Column("true_pass_rate", DOUBLE),
        Column("true_fail_rate", DOUBLE),
        Column("ceiling_n_items", INTEGER, nullable=False),
        Column("ceiling_agreement", DOUBLE),
        Column("ceiling_kappa", DOUBLE),
        Column("ceiling_ac1", DOUBLE),
        Column("ceiling_alpha", DOUBLE),
        Column("bar", DOUBLE, nullable=False),
        Column("status", VARCHAR, nullable=False),
        Column("reason", VARCHAR, nullable=False),
        Column("details", JSON),
        Column("created_at", TIMESTAMPTZ, nullable=False),
        # v7: the constant-answer baseline and the retire rule that decided (NULL in the
        # rows recorded before: the agreement rule decided those)
        Column("baseline", DOUBLE),
        Column("baseline_label", VARCHAR),
        Column("baseline_ci_low", DOUBLE),
        Column("baseline_ci_high", DOUBLE),
        Column("beats_baseline", BOOLEAN),
        Column("rule", VARCHAR),
        Column("rule_value", DOUBLE),
        Column("rule_ci_low", DOUBLE),
        Column("rule_ci_high", DOUBLE),
        Column("rule_interval", VARCHAR),
        Column("rule_share", DOUBLE),
        Column("rule_ceiling", DOUBLE),
    ),
    key=("calibration_id", "judge", "prompt_version", "judge_model"),
    policy="ignore",
)

# The history of each judge version's status (`judges` holds the current one).
JUDGE_STATUS_HISTORY = Table(
    "judge_status_history",
    columns=(
        Column("judge", VARCHAR, nullable=False),
        Column("prompt_version", VARCHAR, nullable=False),
        Column("judge_model", VARCHAR, nullable=False),
        Column("status", VARCHAR, nullable=False),
        Column("reason", VARCHAR, nullable=False),
        Column("calibration_id", VARCHAR, nullable=False),
        Column("changed_at", TIMESTAMPTZ, nullable=False),
    ),
    key=("judge", "changed_at", "calibration_id"),
    policy="ignore",
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        SCHEMA_VERSION,
        SCHEMA_VIEWS,
        EXAMPLES,
        EXPERIMENTS,
        RUNS,
        SCORES,
        SUMMARY_SCORES,
        JUDGES,
        JUDGE_VOTES,
        JUDGE_CACHE,
        COMPARISONS,
        TRACES,
        TRACE_CURSORS,
        MONITORING_WINDOWS,
        MONITORING_WEBHOOKS,
        MONITORING_SCORES,
        MONITORING_TICKS,
        MONITORING_COUNTS,
        MONITORING_ROLLBACKS,
        MONITORING_DELIVERIES,
        MONITORING_CLAIMS,
        CALIBRATION_ITEMS,
        HUMAN_LABELS,
        JUDGE_CALIBRATIONS,
        JUDGE_STATUS_HISTORY,
    )
}

RUN_KEY = ("experiment_id", "example_id", "repetition")

# What a supersede entry deletes: (table, key columns matched against the entry's rows).
# `supersede_runs` rows are run keys (the run, its scores and its judge votes go);
# `supersede_scores` rows are run keys plus an evaluator (that evaluator's scores and
# votes on that run go).
SUPERSEDE: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {
    "supersede_runs": [
        (table, tuple((c, c) for c in RUN_KEY)) for table in ("scores", "judge_votes", "runs")
    ],
    "supersede_scores": [
        ("scores", (*((c, c) for c in RUN_KEY), ("evaluator", "evaluator"))),
        ("judge_votes", (*((c, c) for c in RUN_KEY), ("judge", "evaluator"))),
    ],
}

# The policy of every name a batch may hold: the tables `Warehouse.write` writes, and the
# supersede entries.
WRITE_POLICY: dict[str, Conflict] = {
    **{t.name: t.policy for t in TABLES.values() if t.policy is not None},
    **{name: "supersede" for name in SUPERSEDE},
}


def table_frame(
    table: str,
    data: Sequence[Any] | Mapping[str, Sequence[Any]],
    *,
    orient: Literal["row", "col"] | None = None,
    micros: bool = False,
) -> pl.DataFrame:
    """A frame of `table`'s rows, typed as declared: `data` is row dicts (or tuples in
    column order, with `orient="row"`) or a dict of columns; a missing column is null.

    `micros`: the TIMESTAMPTZ values are integer microseconds since the epoch (the runner's
    rows: polars converts datetime objects ~10x slower), cast once the frame is built."""
    schema = TABLES[table].polars_schema
    _known_columns(table, schema, data)
    if not micros:
        return pl.DataFrame(data, schema=schema, orient=orient)
    times = [c for c, dtype in schema.items() if dtype == POLARS_TYPES["TIMESTAMPTZ"]]
    built = pl.DataFrame(data, schema={**schema, **dict.fromkeys(times, pl.Int64())}, orient=orient)
    return built.with_columns(pl.col(c).cast(schema[c]) for c in times)


def _known_columns(table: str, schema: Mapping[str, Any], data: Any) -> None:
    """A column the table does not declare is a bug (a misspelt key would otherwise be
    dropped without a word); the first row of row dicts is checked, or the column names."""
    if isinstance(data, Mapping):
        names = set(data)
    elif data and isinstance(data[0], Mapping):
        names = set(data[0])
    else:
        return
    unknown = sorted(names - schema.keys())
    if unknown:
        raise ValueError(f"{table}: no column {', '.join(map(repr, unknown))} is declared")
