"""Structural evaluators: the shape of what the agent did (tool calls, JSON documents).

`tool_call_correct` compares the agent's tool calls (name and arguments) with the
reference's; `json_schema` validates the output against a JSON Schema (Draft 2020-12).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from evalkeeper.models import Example, RunRecord, Score
from evalkeeper.registry import Evaluator, evaluator
from evaluators.reference import NO_OUTPUTS, get_output, get_reference, short, values_equal

__all__ = ["json_schema", "tool_call_correct"]

MatchMode = Literal["strict", "unordered", "subset"]
ArgsMode = Literal["exact", "subset"]
_MODES = ("strict", "unordered", "subset")
_ARGS_MODES = ("exact", "subset")
_MAX_ERRORS = 3


# -- tool calls -----------------------------------------------------------------------------


def _parse_calls(value: Any, where: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """A list of `{"name": str, "args": dict}` as (name, args) pairs, or what is wrong.

    A call without `args` has no arguments.
    """
    if not isinstance(value, list):
        return [], f"{where} is {type(value).__name__}, not a list of calls: {short(value)}"
    calls: list[tuple[str, dict[str, Any]]] = []
    for i, call in enumerate(value):
        if not (type(call) is dict or isinstance(call, Mapping)) or not isinstance(
            call.get("name"), str
        ):
            return [], f"{where}[{i}] is not an object with a string 'name': {short(call)}"
        args = call.get("args", {})
        if args is None:
            args = {}
        if not (type(args) is dict or isinstance(args, Mapping)):
            return (
                [],
                f"{where}[{i}] ({call['name']}) has 'args' that is not an object: {short(args)}",
            )
        calls.append((call["name"], dict(args)))
    return calls, None


def _fmt_call(call: tuple[str, dict[str, Any]]) -> str:
    name, args = call
    text = ", ".join(f"{k}={short(v, 40)}" for k, v in args.items())
    return f"{name}({text})" if len(text) <= 120 else f"{name}({text[:119]}…)"


def _max_matching(n_ref: int, n_out: int, ok: Callable[[int, int], bool]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn's augmenting paths): reference index -> output index.

    Order-independent: a greedy first-fit can pair a loose reference call with the only
    output call that a stricter one could use; augmenting paths undo such choices.
    """
    adj = [[j for j in range(n_out) if ok(i, j)] for i in range(n_ref)]
    owner: dict[int, int] = {}  # output index -> reference index

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(n_ref):
        augment(i, set())
    return {i: j for j, i in owner.items()}


@evaluator("tool_call_correct", version="1", kind="structural")
def tool_call_correct(
    mode: MatchMode = "unordered", args: ArgsMode = "subset", key: str = "tool_calls"
) -> Evaluator:
    """Passes when the agent's tool calls match the reference calls (name and arguments).

    `outputs[key]` and `reference_outputs[key]` are lists of `{"name", "args"}`. Modes:
    strict = the same calls in the same order; unordered = the same calls in any order
    (a maximum matching, duplicates counted); subset = every reference call is matched by a
    distinct output call, extra output calls allowed. Args: exact = equal objects; subset =
    every reference argument present with an equal value, extra output arguments allowed.
    Numbers compare by value (1 == 1.0), strings exactly. Value = share of reference calls
    matched (1.0 when both lists are empty).
    """
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(_MODES)}")
    if args not in _ARGS_MODES:
        raise ValueError(f"args={args!r}: expected one of {', '.join(_ARGS_MODES)}")
    if not isinstance(key, str) or not key:
        raise ValueError(f"key={key!r}: expected a non-empty string")

    def args_match(got: dict[str, Any], expected: dict[str, Any]) -> bool:
        if args == "exact":
            return values_equal(got, expected)
        return all(k in got and values_equal(got[k], v) for k, v in expected.items())

    def score(
        *,
        inputs: dict[str, Any] | None = None,
        outputs: Any = None,
        reference_outputs: Any = None,
        run: RunRecord | None = None,
        example: Example | None = None,
    ) -> Score:
        if outputs is None:
            return Score(error=NO_OUTPUTS)
        ref_raw, problem = get_reference(reference_outputs, key)
        if problem is not None:
            return problem
        ref, bad = _parse_calls(ref_raw, f"reference_outputs[{key!r}]")
        if bad is not None:
            return Score(error=bad)
        out_raw, problem = get_output(outputs, key)
        if problem is not None:
            return problem
        out, bad = _parse_calls(out_raw, f"outputs[{key!r}]")
        if bad is not None:
            return Score(value=0.0, passed=False, comment=bad)

        def ok(i: int, j: int) -> bool:
            return ref[i][0] == out[j][0] and args_match(out[j][1], ref[i][1])

        if mode == "strict":
            pairs = {i: i for i in range(min(len(ref), len(out))) if ok(i, i)}
        elif len(ref) <= len(out) and all(ok(i, i) for i in range(len(ref))):
            pairs = {i: i for i in range(len(ref))}  # in order: already a maximum matching
        else:
            pairs = _max_matching(len(ref), len(out), ok)
        matched = len(pairs)
        value = matched / len(ref) if ref else 1.0
        # subset: extra output calls are allowed; strict/unordered: counts must agree too.
        complete = matched == len(ref)
        passed = complete if mode == "subset" else complete and len(out) == len(ref)
        details = {"matched": matched, "expected": len(ref), "got": len(out), "mode": mode}
        comment = _explain(ref, out, pairs, mode, args, passed)
        return Score(value=value, passed=passed, comment=comment, details=details)

    return score


def _explain(
    ref: list[tuple[str, dict[str, Any]]],
    out: list[tuple[str, dict[str, Any]]],
    pairs: dict[int, int],
    mode: str,
    args: str,
    passed: bool,
) -> str:
    """The evidence: which reference calls were missed, and what came instead."""
    if passed:
        if not ref and not out:
            return "no tool calls expected, none made"
        extra = len(out) - len(ref)
        tail = f" ({extra} extra output calls allowed)" if extra else ""
        return f"all {len(ref)} reference calls matched ({mode}, args {args}){tail}"
    notes: list[str] = []
    if mode == "strict":
        for i in range(max(len(ref), len(out))):
            if i in pairs:
                continue
            if i >= len(out):
                notes.append(f"#{i + 1}: expected {_fmt_call(ref[i])}, got nothing")
            elif i >= len(ref):
                notes.append(f"#{i + 1}: unexpected {_fmt_call(out[i])}")
            else:
                notes.append(f"#{i + 1}: expected {_fmt_call(ref[i])}, got {_fmt_call(out[i])}")
    else:
        used = set(pairs.values())
        free = [j for j in range(len(out)) if j not in used]
        for i in range(len(ref)):
            if i in pairs:
                continue
            # Show the closest unmatched output call: same name first, else any.
            same = [j for j in free if out[j][0] == ref[i][0]]
            if same:
                j = same[0]
                free.remove(j)
                notes.append(f"expected {_fmt_call(ref[i])}, got {_fmt_call(out[j])}")
            elif mode == "unordered" and free:
                # Same count expected: the leftover output call is what came instead.
                notes.append(f"expected {_fmt_call(ref[i])}, got {_fmt_call(out[free.pop(0)])}")
            else:
                notes.append(f"missing {_fmt_call(ref[i])}")
        if mode == "unordered":
            notes.extend(f"unexpected {_fmt_call(out[j])}" for j in free)
        elif free:  # subset: extra calls are allowed, but they are the evidence
            notes.append("other output calls: " + ", ".join(_fmt_call(out[j]) for j in free[:3]))
    head = f"{len(pairs)}/{len(ref)} reference calls matched ({mode}, args {args}); "
    if len(notes) > 4:
        notes = [*notes[:4], f"… {len(notes) - 4} more"]
    return head + "; ".join(notes)


# -- JSON Schema ----------------------------------------------------------------------------


def _cut(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(error: ValidationError) -> str:
    """The validator's message, with a long offending value shortened."""
    text = error.message
    if len(text) > 120:
        text = text.replace(repr(error.instance), short(error.instance, 40))
    return _cut(text)


def _load_schema(schema: Any) -> dict[str, Any] | bool:
    """The schema itself: a dict (or boolean schema), or a JSON file path relative to cwd."""
    if isinstance(schema, str):
        path = Path(schema)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(
                f"schema file {schema!r} not found (resolved against {Path.cwd()})"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"schema file {schema!r}: cannot read JSON: {exc}") from None
        if not isinstance(loaded, dict | bool):
            raise ValueError(f"schema file {schema!r}: expected a JSON object")
        return loaded
    if isinstance(schema, dict | bool):
        return schema
    raise ValueError(
        f"schema={short(schema)}: expected a JSON Schema object or the path of a JSON file"
    )


@evaluator("json_schema", version="1", kind="structural")
def json_schema(schema: dict[str, Any] | str | None = None, key: str | None = None) -> Evaluator:
    """Passes when the output validates against a JSON Schema (Draft 2020-12).

    `schema` is the schema object or the path of a JSON file (relative to the current
    directory), read and checked once at build time. The whole `outputs` is validated, or
    `outputs[key]`. `format` keywords are asserted (where jsonschema has a checker).
    The comment lists the first few errors with their JSON path.
    """
    if schema is None:
        raise ValueError("json_schema needs `schema`: a JSON Schema object or a JSON file path")
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"key={key!r}: expected a non-empty string or None")
    loaded = _load_schema(schema)
    try:
        Draft202012Validator.check_schema(loaded)
    except SchemaError as exc:
        raise ValueError(
            f"invalid JSON Schema {short(schema)} at {exc.json_path}: {exc.message}"
        ) from None
    validator = Draft202012Validator(loaded, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def score(
        *,
        inputs: dict[str, Any] | None = None,
        outputs: Any = None,
        reference_outputs: Any = None,
        run: RunRecord | None = None,
        example: Example | None = None,
    ) -> Score:
        instance, problem = get_output(outputs, key)
        if problem is not None:
            return problem
        errors = sorted(validator.iter_errors(instance), key=lambda e: (e.json_path, e.message))
        if not errors:
            return Score(value=1.0, passed=True, comment="valid against the schema")
        shown = [f"{e.json_path}: {_message(e)}" for e in errors[:_MAX_ERRORS]]
        more = f"; … {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
        noun = "error" if len(errors) == 1 else "errors"
        return Score(
            value=0.0,
            passed=False,
            comment=f"{len(errors)} schema {noun}: " + "; ".join(shown) + more,
            details={"errors": shown, "n_errors": len(errors)},
        )

    return score
