"""How a local example and a LangSmith example map onto each other, and the dataset file.

A local example `{"id", "inputs", "reference_outputs", "metadata"}` is a LangSmith example
with `inputs`, `outputs` (the reference outputs) and `metadata`. LangSmith ids are UUIDs:
a local id that is not one is kept in the metadata as `evalkeeper_id` and the LangSmith id
derived from it (`example_uuid`); the example's place in the file is kept as
`evalkeeper_position`, so a pulled file has the order (and so the version hash) of the
pushed one. Both keys, and LangSmith's own `dataset_split`, are taken out again on pull.

The file is written one example a line as `json.dumps(..., ensure_ascii=False)` with keys
`id, inputs, reference_outputs, metadata` and the metadata keys the example was given (no
defaults added), the form of the bundled datasets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evalkeeper.integrations.langsmith.client import example_uuid
from evalkeeper.models import Example, ExampleMetadata, content_hash

ID_KEY = "evalkeeper_id"
POSITION_KEY = "evalkeeper_position"
RESERVED = (ID_KEY, POSITION_KEY, "dataset_split")


def metadata_of(example: Example) -> dict[str, Any]:
    """The metadata keys the example was given (defaults not added)."""
    return example.metadata.model_dump(mode="json", exclude_unset=True)


def to_remote(dataset: str, example: Example, position: int) -> dict[str, Any]:
    """The LangSmith form: id (UUID), inputs, outputs, metadata with the local id/position."""
    ls_id = example_uuid(dataset, example.id)
    meta = metadata_of(example)
    if str(ls_id) != example.id:
        meta[ID_KEY] = example.id
    meta[POSITION_KEY] = position
    return {
        "id": str(ls_id),
        "inputs": example.inputs,
        "outputs": example.reference_outputs,
        "metadata": meta,
    }


def remote_key(inputs: Any, outputs: Any, metadata: Any) -> str:
    """What a push compares: the content as LangSmith holds it."""
    meta = {k: v for k, v in (metadata or {}).items() if k != "dataset_split"}
    return content_hash([inputs or {}, outputs or {}, meta])


def from_remote(ls_id: str, inputs: Any, outputs: Any, metadata: Any) -> tuple[Example, float]:
    """A LangSmith example as a local one, and its position (inf when it has none)."""
    meta = dict(metadata or {})
    local_id = str(meta.get(ID_KEY) or ls_id)
    position = meta.get(POSITION_KEY)
    for key in RESERVED:
        meta.pop(key, None)
    example = Example(
        id=local_id,
        inputs=dict(inputs or {}),
        reference_outputs=dict(outputs or {}),
        metadata=ExampleMetadata.model_validate(meta),
    )
    return example, float(position) if isinstance(position, int | float) else float("inf")


def example_line(example: Example) -> str:
    return json.dumps(
        {
            "id": example.id,
            "inputs": example.inputs,
            "reference_outputs": example.reference_outputs,
            "metadata": metadata_of(example),
        },
        ensure_ascii=False,
    )


def write_examples(path: Path, examples: list[Example]) -> None:
    """Write the dataset file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(example_line(e) + "\n" for e in examples), encoding="utf-8")
    os.replace(tmp, path)


def version_of(examples: list[Example]) -> str:
    """The dataset version of these examples, in this order (as `Dataset.version`)."""
    return content_hash([e.content_hash for e in examples])


def fingerprint(examples: list[Example]) -> list[list[str]]:
    """[[id, content hash], …] in order: what a sync state remembers."""
    return [[e.id, e.content_hash] for e in examples]
