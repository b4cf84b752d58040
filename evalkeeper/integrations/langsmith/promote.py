"""`--to-langsmith` of `evalkeeper promote`: the promoted example, also in LangSmith.

`add_example_to_langsmith(settings, dataset_name, example)` adds the example (already
redacted and written locally by `promote`) to the LangSmith dataset of that name, creating
the dataset when it is missing, with the same id mapping as `datasets push` and the
metadata `incident_id`, `promoted_from_run`, `category` (and the example's other keys).
Promoting the same example again updates it instead of adding a second one.

Then the sync state beside the local file (`NAME.langsmith.json`) follows what LangSmith
holds, as after a push (`follow_remote`), so the next `datasets push` sends only what is
new; an edit made in LangSmith and not pulled still blocks it.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from evalkeeper.integrations.langsmith.client import LangSmithError, connect
from evalkeeper.integrations.langsmith.datasets import follow_remote
from evalkeeper.integrations.langsmith.examples import to_remote
from evalkeeper.models import Example
from evalkeeper.settings import Settings


class PromotedExample(BaseModel):
    """Where the promoted example landed in LangSmith."""

    dataset_id: str = Field(description="The LangSmith dataset id.")
    example_id: str = Field(description="The LangSmith example id (uuid).")
    created: bool = Field(description="False when it existed and was updated.")
    dataset_created: bool = Field(False, description="The dataset did not exist before.")
    in_sync: bool = Field(
        True,
        description="The local sync state follows LangSmith (false: LangSmith holds edits not "
        "pulled, or reading it back failed; the next push may be refused).",
    )


def add_example_to_langsmith_sync(
    settings: Settings, dataset_name: str, example: Example, position: int | None = None
) -> PromotedExample:
    """`add_example_to_langsmith` without the event loop."""
    import langsmith.utils as ls_utils

    conn = connect(settings)
    client = conn.client
    try:
        try:
            ds = client.read_dataset(dataset_name=dataset_name)
            dataset_created = False
        except ls_utils.LangSmithNotFoundError:
            ds = client.create_dataset(
                dataset_name,
                description=f"evalkeeper dataset {dataset_name}",
                metadata={"evalkeeper_dataset": dataset_name},
            )
            dataset_created = True
        held = list(client.list_examples(dataset_id=ds.id))
        payload = to_remote(dataset_name, example, len(held) if position is None else position)
        existing = next((e for e in held if str(e.id) == payload["id"]), None)
        if existing is not None:
            if position is None:  # keep its place
                payload["metadata"]["evalkeeper_position"] = (existing.metadata or {}).get(
                    "evalkeeper_position", payload["metadata"]["evalkeeper_position"]
                )
            client.update_example(
                payload["id"],
                inputs=payload["inputs"],
                outputs=payload["outputs"],
                metadata=payload["metadata"],
                dataset_id=ds.id,
            )
        else:
            client.create_example(
                inputs=payload["inputs"],
                dataset_id=ds.id,
                reference_outputs=payload["outputs"],
                metadata=payload["metadata"],
                example_id=payload["id"],
            )
    except Exception as exc:
        raise LangSmithError(
            f"LangSmith dataset {dataset_name!r}: adding example {example.id} failed: "
            f"{type(exc).__name__}: {exc}; the local example is kept, run "
            f"`evalkeeper datasets push {dataset_name}` to send it later"
        ) from None
    try:
        after = list(client.list_examples(dataset_id=ds.id))
        in_sync = follow_remote(settings, dataset_name, str(ds.id), held, after)
    except Exception:  # the example is added; only the sync state stays behind
        in_sync = False
    return PromotedExample(
        dataset_id=str(ds.id),
        example_id=payload["id"],
        created=existing is None,
        dataset_created=dataset_created,
        in_sync=in_sync,
    )


async def add_example_to_langsmith(
    settings: Settings, dataset_name: str, example: Example, position: int | None = None
) -> PromotedExample:
    """Add (or update) `example` in LangSmith dataset `dataset_name`; `position` is its
    line index in the local file (default: after the examples LangSmith holds)."""
    return await asyncio.to_thread(
        add_example_to_langsmith_sync, settings, dataset_name, example, position
    )
