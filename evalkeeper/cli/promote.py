"""`evalkeeper promote TRACE_ID --dataset NAME --reference JSON|@FILE --incident INC-…
--category C`: a production trace becomes a pinned regression example.

The trace comes from the trace store (already redacted), or with `--source SPEC` from that
source (redacted before anything is written or shown). Exit 0 with the new dataset
version; 2 when the trace is unknown, already promoted into the dataset, or the reference
lacks what the dataset's evaluators need (nothing is written then).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from evalkeeper.cli.app import WarehouseOpt, app, console, err_console, fail, load_settings
from evalkeeper.exitcodes import EXIT_UPLOAD_FAILED
from evalkeeper.traces.lookup import TraceNotFound, load_trace
from evalkeeper.traces.promote import PromoteError, promote
from evalkeeper.traces.sources import SourceError
from evalkeeper.warehouse import WarehouseLocked


def parse_reference(text: str) -> dict[str, Any]:
    """`--reference`: a JSON object, or `@FILE` holding one."""
    where = "--reference"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            fail(
                f"--reference @{path}: cannot read the file ({exc.strerror}); pass @PATH of a JSON file"
            )
        where = f"--reference @{path}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); write a JSON object, "
            'e.g. \'{"must_include": ["cancelled"]}\' (quote it for the shell) or @FILE'
        )
    if not isinstance(value, dict):
        fail(f'{where}: a JSON {type(value).__name__}; write a JSON object, e.g. {{"reply": "…"}}')
    return value


INCIDENT_ID = re.compile(r"INC-[0-9]+")
"""The form of an incident id (`--incident INC-2041`), as the bundled datasets use it."""


@app.command("promote")
def promote_command(
    trace_id: Annotated[str, typer.Argument(help="The trace to promote.")],
    dataset: Annotated[str, typer.Option(help="Dataset name (data/datasets/NAME.jsonl).")],
    reference: Annotated[
        str, typer.Option(help="Reference outputs: a JSON object, or @FILE holding one.")
    ],
    incident: Annotated[str, typer.Option(help="The incident id, INC-<number>, e.g. INC-2041.")],
    category: Annotated[str, typer.Option(help="The example's category (smoke stratum).")],
    critical: Annotated[
        bool, typer.Option("--critical/--no-critical", help="A failure of it is a regression.")
    ] = True,
    source: Annotated[
        str | None,
        typer.Option(help="Read the trace from this source (e.g. jsonl:PATH), not the store."),
    ] = None,
    to_langsmith: Annotated[
        bool,
        typer.Option(
            "--to-langsmith", help="Also add the example to the LangSmith dataset of that name."
        ),
    ] = False,
    output_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    warehouse: WarehouseOpt = None,
) -> None:
    """Append a trace (redacted) to a dataset as an incident example; print its version.

    With --to-langsmith the example goes to LangSmith too (same id mapping and metadata as
    `datasets push`); a failure there is reported (exit 4) and the local example stays."""
    if not INCIDENT_ID.fullmatch(incident):
        fail(
            f"--incident {incident!r}: use the incident's id in the form INC-<number>, e.g. INC-2041"
        )
    ref = parse_reference(reference)
    settings = load_settings(warehouse=warehouse)
    try:
        trace = asyncio.run(load_trace(settings, trace_id, source))
        result = promote(
            settings,
            trace,
            dataset=dataset,
            reference=ref,
            incident_id=incident,
            category=category,
            critical=critical,
        )
    except (TraceNotFound, PromoteError, SourceError, WarehouseLocked) as exc:
        fail(str(exc))
    remote = _to_langsmith(settings, result) if to_langsmith else None
    if output_json:
        data = result.model_dump(mode="json")
        if remote is not None:
            data["langsmith"] = remote
        print(json.dumps(data, indent=2))
    else:
        _print(result, critical, incident, category, remote)
    if remote is not None and remote.get("error"):
        raise typer.Exit(EXIT_UPLOAD_FAILED)


def _to_langsmith(settings: Any, result: Any) -> dict[str, Any]:
    """Add the promoted example to LangSmith; what happened, or the error."""
    from evalkeeper.integrations.langsmith.promote import add_example_to_langsmith
    from evalkeeper.models import Example

    example = Example.model_validate(result.example)
    try:
        # its place in LangSmith is its line in the file: promote appends it
        done = asyncio.run(
            add_example_to_langsmith(settings, result.dataset, example, result.examples - 1)
        )
    except Exception as exc:  # reported, never lost: the local example is written
        return {"error": f"{type(exc).__name__}: {exc}"}
    return done.model_dump(mode="json")


def _print(
    result: Any, critical: bool, incident: str, category: str, remote: dict[str, Any] | None
) -> None:
    if result.created:
        err_console.print(
            f"created dataset {result.dataset} ({result.path}, evaluators in "
            f"{Path(result.path).with_suffix('.toml')})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"promoted trace {result.trace_id} into [bold]{result.dataset}[/] as example "
        f"{result.example_id} ({'critical, ' if critical else ''}incident {incident}, "
        f"category {category})",
        highlight=False,
        soft_wrap=True,
    )
    before = f"{result.previous_version} -> " if result.previous_version else ""
    console.print(
        f"dataset version {before}[bold]{result.version}[/] ({result.examples} examples)",
        highlight=False,
    )
    if found := result.reference_redactions:
        kinds = ", ".join(f"{n} {kind}" for kind, n in found.items())
        err_console.print(
            f"[yellow]--reference held personal data ({kinds}): written as tokens, the same "
            "the trace's inputs carry[/]",
            highlight=False,
        )
    if remote is not None:
        if remote.get("error"):
            err_console.print(
                f"LangSmith: not added ({remote['error']}); the local example is written. "
                "Push it later with `evalkeeper datasets push "
                f"{result.dataset}`",
                highlight=False,
                soft_wrap=True,
            )
        else:
            console.print(
                f"LangSmith: example {remote.get('example_id')} in dataset "
                f"{result.dataset} ({'created' if remote.get('created') else 'updated'})",
                highlight=False,
                soft_wrap=True,
            )
            if not remote.get("in_sync", True):
                err_console.print(
                    f"[yellow]LangSmith dataset {result.dataset} holds edits not pulled (or could "
                    "not be read back), so the sync state was left as it was: the next `datasets "
                    f"push {result.dataset}` may be refused; pull it first[/]",
                    highlight=False,
                    soft_wrap=True,
                )
