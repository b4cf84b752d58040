"""What an experiment produced, for people and for exit codes: counts per evaluator, errors
grouped by cause, and the error shares that make a run a failure."""

from __future__ import annotations

from pydantic import BaseModel, Field

from evalkeeper.models import ErrorGroup, Experiment, Score
from evalkeeper.run.runner import Tally
from evalkeeper.settings import Settings
from evalkeeper.warehouse import Warehouse
from evalkeeper.warehouse.queries import Counts, error_counts, error_groups, lost_context


class EvaluatorSummary(BaseModel):
    """One evaluator's rows in an experiment."""

    evaluator: str
    version: str
    n: int = Field(description="Score rows (skipped included).")
    passed: int
    failed: int
    errors: int
    skipped: int
    pass_rate: float | None
    mean_value: float | None
    comment: str | None = Field(None, description="Why it was skipped, when it was.")
    optional: bool = Field(False, description="Allowed to be skipped.")


class Summary(BaseModel):
    """An experiment after a run: its rows, evaluators, errors and whether it failed."""

    experiment: Experiment
    rows: int
    target_errors: int
    evaluators: list[EvaluatorSummary]
    spooled_batches: int = 0
    source: str = Field(
        "warehouse",
        description='"warehouse and spool" when some of its rows wait in the spool (another '
        'process holds the file); "this process" when a writer held it past the lock wait.',
    )
    spool_note: str | None = Field(
        None, description="How many of its batches wait in the spool, where, and what next."
    )
    error_groups: list[ErrorGroup] = Field(
        default_factory=list, description="Errors grouped by cause, the most frequent first."
    )
    problems: list[str] = Field(
        default_factory=list,
        description="Error shares above EVALKEEPER_MAX_ERROR_RATE: the run failed when set.",
    )
    skipped_required: list[str] = Field(
        default_factory=list,
        description="Evaluators that were skipped without being allowed to (not optional).",
    )

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def problems_of(counts: dict[str, Counts], max_error_rate: float) -> list[str]:
    out = []
    for where, (n, errors, _skipped) in counts.items():
        if n and errors / n > max_error_rate:
            label = "target" if where == "target" else f"evaluator {where!r}"
            out.append(
                f"{label}: {errors} of {n} rows errored ({errors / n:.0%}, above "
                f"EVALKEEPER_MAX_ERROR_RATE {max_error_rate:.0%})"
            )
    return out


def summarize(
    settings: Settings, wh: Warehouse, exp: Experiment, summaries: list[Score] | None = None
) -> Summary:
    eid = exp.experiment_id
    optional = {r.name for r in exp.evaluators if r.optional}
    with wh.reading() as con:  # the rows waiting in the spool count too
        frame = con.sql(
            """
            SELECT evaluator, any_value(evaluator_version) AS version, count(*) AS n,
                   count(*) FILTER (WHERE passed AND error IS NULL AND NOT skipped) AS passed,
                   count(*) FILTER (WHERE NOT passed AND error IS NULL AND NOT skipped)
                       AS failed,
                   count(*) FILTER (WHERE error IS NOT NULL) AS errors,
                   count(*) FILTER (WHERE skipped) AS skipped,
                   avg(CAST(passed AS DOUBLE)) FILTER (WHERE NOT skipped) AS pass_rate,
                   avg(value) FILTER (WHERE NOT skipped) AS mean_value,
                   any_value(comment) FILTER (WHERE skipped) AS comment
            FROM scores WHERE experiment_id = ? GROUP BY evaluator ORDER BY evaluator
            """,
            params=[eid],
        ).pl()
        counts = con.execute(
            "SELECT count(*), count(error) FROM runs WHERE experiment_id = ?", [eid]
        ).fetchall()[0]
        groups = error_groups(con, eid)
        shares = error_counts(con, [eid])[eid]
        # skipped for want of something to judge (no retrieved context) is not a gap
        unjudged = {
            name
            for (name,) in con.execute(
                "SELECT DISTINCT evaluator FROM scores WHERE experiment_id = ? AND skipped "
                f"AND NOT {lost_context()}",
                [eid],
            ).fetchall()
        }
    evs = [
        EvaluatorSummary(**r, optional=r["evaluator"] in optional)
        for r in frame.iter_rows(named=True)
    ]
    for s in summaries or []:
        if s.skipped:
            unjudged.add(s.name)
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
                optional=s.name in optional,
            )
        )
    return Summary(
        experiment=exp,
        rows=counts[0],
        target_errors=counts[1],
        evaluators=evs,
        error_groups=groups,
        problems=problems_of(shares, settings.analysis.max_error_rate),
        skipped_required=[
            e.evaluator for e in evs if e.skipped and not e.optional and e.evaluator in unjudged
        ],
    )


def summary_from_tallies(
    settings: Settings, exp: Experiment, tallies: dict[str, Tally] | None
) -> Summary:
    """This process's own counts, when the warehouse stayed locked at the end."""
    optional = {r.name for r in exp.evaluators if r.optional}
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
            optional=name in optional,
        )
        for name, t in (tallies or {}).items()
    ]
    shares = {e.evaluator: (e.n - e.skipped, e.errors, e.skipped) for e in evs}
    return Summary(
        experiment=exp,
        rows=0,
        target_errors=0,
        evaluators=evs,
        source="this process",
        problems=problems_of(shares, settings.analysis.max_error_rate),
        skipped_required=[e.evaluator for e in evs if e.skipped and not e.optional],
    )
