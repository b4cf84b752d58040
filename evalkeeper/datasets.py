"""Regression datasets as JSONL files, validated whole before anything is used.

A dataset `NAME` lives at `<datasets_dir>/NAME.jsonl`, one example a line, with an optional
sidecar `NAME.toml` (description, default evaluators). A bad line is reported as
`path:line: what is wrong` — every bad line at once — and nothing is loaded.
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from evalkeeper.errors import InputError
from evalkeeper.models import Dataset, DatasetConfig, Example


class DatasetError(InputError, ValueError):
    """A dataset file that cannot be used; the message names file, line and fix."""


def resolve(ref: str | Path, datasets_dir: Path) -> Path:
    """A dataset name (`appointments`) or a path (`data/x.jsonl`) -> the JSONL path."""
    path = Path(ref)
    if path.is_dir():
        raise DatasetError(
            f"{path}: a directory, not a dataset file; pass a .jsonl file (one example a "
            f"line) or a dataset name (known in {datasets_dir}: {_known(datasets_dir)})"
        )
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise DatasetError(f"{path}: no such dataset file")
        return path
    candidate = datasets_dir / f"{ref}.jsonl"
    if candidate.exists():
        return candidate
    raise DatasetError(
        f"unknown dataset {str(ref)!r}: no {candidate} (known in {datasets_dir}: "
        f"{_known(datasets_dir)}; or pass a path to a .jsonl file)"
    )


def _known(datasets_dir: Path) -> str:
    known = sorted(p.stem for p in datasets_dir.glob("*.jsonl")) if datasets_dir.is_dir() else []
    return ", ".join(known) or "none"


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "missing":
            parts.append(f'missing field "{loc}"')
        elif e["type"] == "extra_forbidden":
            parts.append(
                f'unknown field "{loc}" (allowed: id, inputs, reference_outputs, metadata; '
                "put free keys under metadata)"
            )
        else:
            parts.append(f'field "{loc}": {e["msg"]}')
    return "; ".join(parts)


def json_problem(exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON line and where: `invalid control character at column 9;
    escape a line break or tab inside a string as \\n or \\t`."""
    what = exc.msg.removesuffix(" at")  # "Invalid control character at" names no place
    text = f"{what[:1].lower()}{what[1:]} at column {exc.colno}"
    if what.startswith("Invalid control character"):
        text += "; escape a line break or tab inside a string as \\n or \\t"
    return text


def parse_examples(path: Path) -> list[Example]:
    try:
        return _parse_examples(path)
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 JSONL"
        ) from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset file ({exc.strerror})") from exc


def _parse_examples(path: Path) -> list[Example]:
    examples: list[Example] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:  # fast path; a bad line is parsed again below to say what is wrong
                example = Example.model_validate_json(line)
            except ValidationError:
                pass
            else:
                if example.id not in seen:
                    seen[example.id] = lineno
                    examples.append(example)
                    continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{lineno}: not valid JSON ({json_problem(exc)})")
                continue
            if not isinstance(data, dict):
                problems.append(
                    f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}"
                )
                continue
            try:
                example = Example.model_validate(data)
            except ValidationError as exc:
                problems.append(f"{path}:{lineno}: {_describe(exc)}")
                continue
            if example.id in seen:
                problems.append(
                    f'{path}:{lineno}: duplicate id "{example.id}" (first on line {seen[example.id]})'
                )
                continue
            seen[example.id] = lineno
            examples.append(example)
    if problems:
        shown = problems[:20]
        more = f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DatasetError("\n".join(shown) + more)
    if not examples:
        raise DatasetError(f"{path}: no examples (one JSON object a line)")
    return examples


def load_config(path: Path) -> DatasetConfig:
    sidecar = path.with_suffix(".toml")
    if not sidecar.exists():
        return DatasetConfig()
    try:
        raw = tomllib.loads(sidecar.read_text(encoding="utf-8"))
        return DatasetConfig.model_validate(raw)
    except (tomllib.TOMLDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{sidecar}: {exc}") from exc
    except OSError as exc:
        raise DatasetError(
            f"{sidecar}: cannot read the dataset's sidecar ({exc.strerror})"
        ) from exc


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, -1)
    return (st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _load(path: Path, stamp: tuple[int, int], config_stamp: tuple[int, int]) -> Dataset:
    return Dataset(
        name=path.stem,
        path=str(path),
        examples=parse_examples(path),
        config=load_config(path),
    )


def load_dataset(ref: str | Path, datasets_dir: Path) -> Dataset:
    """Load (and validate) a dataset. A file unchanged since its last load in this process
    (same mtime and size, its sidecar too) is not parsed again: treat the result as
    read-only."""
    path = resolve(ref, datasets_dir).resolve()
    return _load(path, _stamp(path), _stamp(path.with_suffix(".toml")))
