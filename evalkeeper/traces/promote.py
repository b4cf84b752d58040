"""Promote a trace into a regression dataset: one incident example, appended atomically.

    promotion = promote(settings, trace, dataset="appointments", reference={...},
                        incident_id="INC-2041", category="cancellation")
    promotion.example_id, promotion.version      # the new example and dataset version

The example's inputs are the trace's inputs as stored, which are already redacted (a
trace read from elsewhere is redacted first: `redact_trace`); its metadata names the
incident, the trace (`promoted_from_run`), the category, whether it is critical, and the
agent version and model the trace ran on. The reference is what a correct answer holds;
it is redacted with the configured redactor (a value copied from the conversation gets
the token the inputs carry, and the dataset file, often under version control, holds no
raw personal data), then checked against what the dataset's evaluators read (`required_reference`), so a
promoted example never scores as an error on its first run.

The file is replaced whole: the new content goes to a temporary file in the same folder,
is flushed to disk, checked (every line parses as an example), then renamed over the
dataset, and the folder is synced. A process that dies at any point leaves the old file or
the new one, never half a line. Promotions into one dataset are serialised by a lock file
(`.NAME.jsonl.lock`), so two on-call engineers promoting at once both land.

A dataset that does not exist is created with a sidecar TOML whose evaluators follow the
reference: `tool_call_correct` when it has `tool_calls`, `contains` on `reply` when it has
`must_include`, and `latency_ok` always (`default_config`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from evalkeeper.datasets import DatasetError, load_dataset, parse_examples
from evalkeeper.errors import InputError
from evalkeeper.models import Dataset, DatasetConfig, EvaluatorRef, Example, canonical_json
from evalkeeper.settings import Settings
from evalkeeper.traces.model import Trace, iso_utc
from evalkeeper.traces.redaction import build_redactor

__all__ = [
    "AlreadyPromoted",
    "PromoteError",
    "Promotion",
    "append_example",
    "default_config",
    "example_from_trace",
    "find_promoted",
    "promote",
    "required_reference",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class PromoteError(InputError, ValueError):
    """A promotion that cannot be made; the message names what is wrong and the fix."""


class AlreadyPromoted(PromoteError):
    """The trace is already an example of the dataset."""

    def __init__(self, message: str, example_id: str) -> None:
        super().__init__(message)
        self.example_id = example_id


class Promotion(BaseModel):
    """What a promotion did."""

    dataset: str = Field(description="The dataset's name.")
    path: str = Field(description="Its JSONL file.")
    example_id: str = Field(description="The id of the new example.")
    trace_id: str = Field(description="The trace it was promoted from.")
    version: str = Field(description="The dataset's version after the promotion.")
    previous_version: str | None = Field(
        None, description="The version before (None: the dataset was created)."
    )
    examples: int = Field(description="Examples in the dataset now.")
    created: bool = Field(False, description="The dataset (and its TOML) was created.")
    example: dict[str, Any] = Field(description="The example as written (its JSON line).")
    reference_redactions: dict[str, int] = Field(
        default_factory=dict,
        description="Personal values found in the reference and replaced by their tokens, "
        "per kind (the same tokens the trace's inputs carry).",
    )


# -- what the evaluators read from the reference ------------------------------------------


def _tool_calls(args: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(args.get("key", "tool_calls")), "a list of {name, args}")]


def _contains(args: dict[str, Any]) -> list[tuple[str, str]]:
    if args.get("value") is not None:
        return []
    return [(str(args.get("reference_key", "must_include")), "a string or a list of strings")]


def _exact(args: dict[str, Any]) -> list[tuple[str, str]]:
    key = args.get("key")
    return [("*" if key is None else str(key), "the expected value")]


def _regex(args: dict[str, Any]) -> list[tuple[str, str]]:
    key = args.get("reference_key")
    return [] if key is None else [(str(key), "a regular expression")]


def _whole(args: dict[str, Any]) -> list[tuple[str, str]]:
    return [("*", "what a correct answer says")]


# evaluator name -> the reference keys it reads with its arguments ("*": a non-empty
# reference as a whole). Evaluators not listed read no reference (latency, tone, schema).
REFERENCE_NEEDS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str]]]] = {
    "tool_call_correct": _tool_calls,
    "contains": _contains,
    "exact_match": _exact,
    "regex": _regex,
    "factual_match": _whole,
}


def required_reference(config: DatasetConfig) -> list[tuple[str, str, str]]:
    """(evaluator, reference key or `*`, what it must hold) for the dataset's evaluators."""
    out: list[tuple[str, str, str]] = []
    for ref in config.evaluators:
        need = REFERENCE_NEEDS.get(ref.name)
        if need is not None:
            out.extend((ref.name, key, what) for key, what in need(ref.args))
    return out


def check_reference(reference: dict[str, Any], config: DatasetConfig, where: str) -> None:
    """PromoteError naming every key an evaluator of the dataset needs and the reference
    lacks (or holds in the wrong shape)."""
    problems = []
    for name, key, what in required_reference(config):
        if key == "*":
            if not reference:
                problems.append(f"{name} compares with the whole reference: it is empty")
            continue
        if key not in reference:
            problems.append(f'{name} needs reference key "{key}" ({what})')
            continue
        value = reference[key]
        if name == "tool_call_correct" and not _is_calls(value):
            problems.append(
                f'{name} needs "{key}" as a list of {{"name": …, "args": {{…}}}}, got '
                f"{type(value).__name__}"
            )
        if name == "contains" and not (
            (isinstance(value, str) and value)
            or (isinstance(value, list) and all(isinstance(v, str) and v for v in value))
        ):
            problems.append(f'{name} needs "{key}" as a non-empty string or a list of them')
    if problems:
        raise PromoteError(
            f"--reference does not fit {where}: "
            + "; ".join(problems)
            + '; add the key(s), e.g. --reference \'{"tool_calls": [{"name": '
            '"cancel_appointment", "args": {"appointment_id": "A-1042"}}], '
            '"must_include": ["cancelled"]}\''
        )


def _is_calls(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict)
        and isinstance(c.get("name"), str)
        and isinstance(c.get("args", {}), dict)
        and set(c) <= {"name", "args"}
        for c in value
    )


def default_config(reference: dict[str, Any], description: str) -> DatasetConfig:
    """The evaluators of a dataset created by a promotion, from its first reference."""
    evaluators = []
    if "tool_calls" in reference:
        evaluators.append(
            EvaluatorRef(name="tool_call_correct", args={"mode": "unordered", "args": "subset"})
        )
    if "must_include" in reference:
        evaluators.append(
            EvaluatorRef(name="contains", args={"key": "reply", "reference_key": "must_include"})
        )
    evaluators.append(EvaluatorRef(name="latency_ok"))
    return DatasetConfig(description=description, evaluators=evaluators)


def _config_toml(config: DatasetConfig) -> str:
    lines = [f"description = {json.dumps(config.description, ensure_ascii=False)}", ""]
    for ref in config.evaluators:
        lines.append("[[evaluators]]")
        lines.append(f"name = {json.dumps(ref.name)}")
        if ref.args:
            body = ", ".join(f"{k} = {json.dumps(v)}" for k, v in ref.args.items())
            lines.append(f"args = {{ {body} }}")
        lines.append("")
    return "\n".join(lines)


# -- the example ----------------------------------------------------------------------------


def example_id_for(incident_id: str, trace_id: str, taken: set[str]) -> str:
    """`inc-2041-<first 12 of the trace id>`, made unique among `taken`."""
    base = _ID_UNSAFE.sub("-", f"{incident_id}-{trace_id[:12]}").strip("-").lower()
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def example_from_trace(
    trace: Trace,
    *,
    reference: dict[str, Any],
    incident_id: str,
    category: str,
    critical: bool = True,
    example_id: str,
) -> Example:
    """The regression example of a (redacted) trace."""
    metadata: dict[str, Any] = {
        "category": category,
        "critical": critical,
        "incident_id": incident_id,
        "promoted_from_run": trace.trace_id,
        "agent_version": trace.version,
        "model": trace.model,
        "trace_time": iso_utc(trace.time),
        "source": "promoted",
    }
    if trace.service is not None:
        metadata["service"] = trace.service
    return Example.model_validate(
        {
            "id": example_id,
            "inputs": trace.inputs,
            "reference_outputs": reference,
            "metadata": metadata,
        }
    )


def find_promoted(dataset: Dataset, trace_id: str) -> Example | None:
    """The example of `dataset` promoted from `trace_id`, if any."""
    for example in dataset.examples:
        if example.metadata.promoted_from_run == trace_id:
            return example
    return None


# -- the write ------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_replacing(
    path: Path, text: bytes, before_replace: Callable[[Path], None] | None = None
) -> None:
    """`path` replaced by `text`: a temporary file beside it, fsync, rename, fsync the folder.
    `before_replace(tmp)` runs just before the rename (tests inject a failure there)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_example(
    path: Path, example: Example, before_replace: Callable[[Path], None] | None = None
) -> None:
    """Append `example` as one JSON line to `path` (created if missing), atomically; the
    new file is parsed whole before it replaces the old one."""
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    line = canonical_json(example.model_dump(mode="json")) + "\n"

    def check(tmp: Path) -> None:
        parse_examples(tmp)  # the new file is a valid dataset, or nothing is replaced
        if before_replace is not None:
            before_replace(tmp)

    _write_replacing(path, old + line.encode(), check)


def promote(
    settings: Settings,
    trace: Trace,
    *,
    dataset: str,
    reference: dict[str, Any],
    incident_id: str,
    category: str,
    critical: bool = True,
    before_replace: Callable[[Path], None] | None = None,
) -> Promotion:
    """Append `trace` (already redacted) to dataset `dataset` as an incident example."""
    if not _NAME_RE.match(dataset) or dataset.endswith((".jsonl", ".toml")):
        raise PromoteError(
            f"--dataset {dataset!r}: a dataset name is letters, digits, '-', '_' or '.', "
            f"e.g. appointments (the file is {settings.datasets_dir}/NAME.jsonl)"
        )
    if not incident_id.strip():
        raise PromoteError("--incident is empty: name the incident, e.g. INC-2041")
    if not category.strip():
        raise PromoteError("--category is empty: name the example's stratum, e.g. cancellation")
    if not isinstance(reference, dict):
        raise PromoteError(
            f"--reference is a JSON {type(reference).__name__}: write a JSON object, e.g. "
            '\'{"must_include": ["cancelled"]}\''
        )
    # the reference goes into a file under version control: redacted like the trace, so a
    # value copied from the conversation gets the token the inputs hold
    redactor = build_redactor(settings)
    reference = redactor.redact_json(reference)
    directory = settings.datasets_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dataset}.jsonl"
    with _locked(path):
        created = not path.exists()
        previous: Dataset | None = None
        if created:
            config = default_config(
                reference, f"Regression examples promoted from production traces ({dataset})."
            )
            check_reference(reference, config, f"the new dataset {dataset!r}")
            taken: set[str] = set()
        else:
            try:
                previous = load_dataset(path, directory)
            except DatasetError as exc:
                raise PromoteError(
                    f"dataset {dataset!r} cannot be read, so nothing was appended: {exc}"
                ) from None
            config = previous.config
            held = find_promoted(previous, trace.trace_id)
            if held is not None:
                raise AlreadyPromoted(
                    f"trace {trace.trace_id} is already in dataset {dataset!r} as example "
                    f"{held.id!r} (incident {held.metadata.incident_id}); edit that line of "
                    f"{path} to change its reference",
                    held.id,
                )
            check_reference(reference, config, f"the evaluators of dataset {dataset!r}")
            taken = {e.id for e in previous.examples}
        example = example_from_trace(
            trace,
            reference=reference,
            incident_id=incident_id.strip(),
            category=category.strip(),
            critical=critical,
            example_id=example_id_for(incident_id.strip(), trace.trace_id, taken),
        )
        if created:
            sidecar = path.with_suffix(".toml")
            if not sidecar.exists():
                _write_replacing(sidecar, _config_toml(config).encode())
        append_example(path, example, before_replace)
        after = load_dataset(path, directory)
    return Promotion(
        dataset=dataset,
        path=str(path),
        example_id=example.id,
        trace_id=trace.trace_id,
        version=after.version,
        previous_version=None if previous is None else previous.version,
        examples=len(after.examples),
        created=created,
        example=example.model_dump(mode="json"),
        reference_redactions=dict(sorted(redactor.stats.items())),
    )
