"""Reference evaluators: compare what the agent said with what the example expects.

`exact_match`, `contains` and `regex`, plus the small helpers the bundled evaluators share:
looking a key up in `outputs` (missing -> a failed score: the agent did not produce it) and
in `reference_outputs` (missing -> an error score: the dataset cannot be scored), and
comparing JSON values (numbers by value, `1 == 1.0`; booleans are not numbers; strings
exactly).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from evalkeeper.models import Example, RunRecord, Score
from evalkeeper.registry import Evaluator, evaluator

__all__ = [
    "NO_OUTPUTS",
    "contains",
    "exact_match",
    "get_output",
    "get_reference",
    "regex",
    "short",
    "values_equal",
]

NO_OUTPUTS = "no outputs (target error)"
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


# -- shared helpers -------------------------------------------------------------------------


def short(value: Any, limit: int = 80) -> str:
    """Compact JSON text of `value` for a comment, cut to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SAME_TYPE_EQ = frozenset({str, int, float, bool, type(None)})


def values_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), booleans only equal booleans, deep."""
    ta = type(a)
    if ta is type(b):  # the common case, decided without the ABC checks below
        if ta in _SAME_TYPE_EQ:
            return bool(a == b)
        if ta is dict:
            return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
        if ta is list:
            return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping | list | tuple) or isinstance(b, Mapping | list | tuple):
        return False
    return bool(a == b)


def get_output(outputs: Any, key: str | None) -> tuple[Any, Score | None]:
    """`outputs[key]` (or all of `outputs` when key is None), or the Score to return instead.

    No outputs at all means the target errored (an error score); a missing key means the
    agent did not produce it (a failed score). Evaluators check `outputs is None` first,
    then the reference (a dataset error wins over a failure), then call this.
    """
    if outputs is None:
        return None, Score(error=NO_OUTPUTS)
    if key is None:
        return outputs, None
    if not isinstance(outputs, Mapping):
        return None, Score(
            value=0.0,
            passed=False,
            comment=f"outputs is {type(outputs).__name__}, not an object with {key!r}",
        )
    if key not in outputs:
        keys = ", ".join(sorted(map(str, outputs))) or "none"
        return None, Score(
            value=0.0, passed=False, comment=f"outputs has no {key!r} (keys: {keys})"
        )
    return outputs[key], None


def get_text(outputs: Any, key: str) -> tuple[str, Score | None]:
    """`outputs[key]` as text, or the Score to return instead (as `get_output`; a value
    that is not a string is a failed score)."""
    value, problem = get_output(outputs, key)
    if problem is not None:
        return "", problem
    if not isinstance(value, str):
        return "", Score(
            value=0.0,
            passed=False,
            comment=f"{_where(key)} is {type(value).__name__}, not text: {short(value)}",
        )
    return value, None


def get_reference(reference_outputs: Any, key: str | None) -> tuple[Any, Score | None]:
    """`reference_outputs[key]` (or all of it when key is None), or an error Score.

    A missing reference is a dataset problem: the example cannot be scored, so it is an
    error, never a pass or a zero.
    """
    if reference_outputs is None:
        return None, Score(error="no reference_outputs: this evaluator needs a reference")
    if key is None:
        if isinstance(reference_outputs, Mapping) and not reference_outputs:
            return None, Score(error="reference_outputs is empty: nothing to compare with")
        return reference_outputs, None
    if not isinstance(reference_outputs, Mapping) or key not in reference_outputs:
        keys = (
            ", ".join(sorted(map(str, reference_outputs)))
            if isinstance(reference_outputs, Mapping)
            else type(reference_outputs).__name__
        )
        return None, Score(
            error=f"reference_outputs has no {key!r} (keys: {keys or 'none'}); "
            f"add it to the example or configure another key"
        )
    return reference_outputs[key], None


def _check_key(name: str, value: Any, *, optional: bool = False) -> None:
    """Build-time check of a key argument: a non-empty string (or None when optional)."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        expected = "a non-empty string or None" if optional else "a non-empty string"
        raise ValueError(f"{name}={value!r}: expected {expected}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: expected true or false")


def _normalize(value: Any) -> Any:
    """Strip, collapse whitespace and casefold every string inside `value`."""
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, Mapping):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def _where(key: str | None) -> str:
    return "outputs" if key is None else f"outputs[{key!r}]"


# -- evaluators -----------------------------------------------------------------------------


@evaluator("exact_match", version="1", kind="reference")
def exact_match(key: str | None = None, normalize: bool = False) -> Evaluator:
    """Passes when the output equals the reference (whole outputs, or one key).

    Values compare as JSON: numbers by value (1 == 1.0), strings exactly, deep for objects
    and lists. With `normalize`, every string is stripped, casefolded and has its whitespace
    collapsed first. With no key, an empty `reference_outputs` is an error.
    """
    _check_key("key", key, optional=True)
    _check_bool("normalize", normalize)

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
        expected, problem = get_reference(reference_outputs, key)
        if problem is not None:
            return problem
        got, problem = get_output(outputs, key)
        if problem is not None:
            return problem
        a, b = (_normalize(got), _normalize(expected)) if normalize else (got, expected)
        equal = values_equal(a, b)
        how = " (normalized)" if normalize else ""
        if equal:
            comment = f"{_where(key)} equals the reference{how}: {short(got)}"
        else:
            comment = f"expected {short(expected)}, got {short(got)}{how}"
        return Score(value=float(equal), passed=equal, comment=comment)

    return score


@evaluator("contains", version="1", kind="reference")
def contains(
    key: str = "reply",
    reference_key: str = "must_include",
    value: str | None = None,
    case_sensitive: bool = False,
) -> Evaluator:
    """Passes when the output text contains every required string; value is the share found.

    The required strings are `value` when given, else `reference_outputs[reference_key]`
    (a string or a list of strings). Case-insensitive (casefolded) unless `case_sensitive`.
    """
    _check_key("key", key)
    _check_key("reference_key", reference_key)
    _check_bool("case_sensitive", case_sensitive)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"value={value!r}: expected a non-empty string to look for, or None")

    def fold(text: str) -> str:
        return text if case_sensitive else text.casefold()

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
        if value is not None:
            needles = [value]
        else:
            wanted, problem = get_reference(reference_outputs, reference_key)
            if problem is not None:
                return problem
            if isinstance(wanted, str):
                wanted = [wanted]
            if not isinstance(wanted, list) or not all(isinstance(w, str) and w for w in wanted):
                return Score(
                    error=f"reference_outputs[{reference_key!r}] must be a non-empty string "
                    f"or a list of them, got {short(wanted)}"
                )
            needles = wanted
        text, problem = get_text(outputs, key)
        if problem is not None:
            return problem
        if not needles:
            return Score(value=1.0, passed=True, comment="no required strings in the reference")
        haystack = fold(text)
        missing = [n for n in needles if fold(n) not in haystack]
        found = len(needles) - len(missing)
        share = found / len(needles)
        if missing:
            comment = f"missing {len(missing)} of {len(needles)}: " + ", ".join(
                short(m, 40) for m in missing[:5]
            )
            if len(missing) > 5:
                comment += ", …"
        else:
            comment = f"found all {len(needles)}: " + ", ".join(short(n, 40) for n in needles[:5])
        return Score(
            value=share,
            passed=not missing,
            comment=comment,
            details={"missing": missing, "found": found, "required": len(needles)},
        )

    return score


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"invalid regex pattern {pattern!r}: {exc}") from None


@evaluator("regex", version="1", kind="reference")
def regex(
    pattern: str | None = None,
    key: str = "reply",
    reference_key: str | None = None,
    flags: str = "",
) -> Evaluator:
    """Passes when a regular expression is found in the output text (`re.search`).

    The pattern is given here (compiled at build time) or read per example from
    `reference_outputs[reference_key]`; exactly one of the two. `flags` combines the letters
    "i" (ignore case), "m" (multiline) and "s" (dot matches newline).
    """
    _check_key("key", key)
    _check_key("reference_key", reference_key, optional=True)
    if not isinstance(flags, str) or set(flags) - set(_FLAGS):
        raise ValueError(f"flags={flags!r}: expected letters among 'i', 'm', 's' (e.g. 'im')")
    re_flags = 0
    for letter in flags:
        re_flags |= _FLAGS[letter]
    if (pattern is None) == (reference_key is None):
        raise ValueError(
            "regex needs exactly one of `pattern` (fixed) or `reference_key` (per example); "
            f"got pattern={pattern!r}, reference_key={reference_key!r}"
        )
    if pattern is not None and not isinstance(pattern, str):
        raise ValueError(f"pattern={pattern!r}: expected a regular expression string")
    fixed = _compile(pattern, re_flags) if pattern is not None else None

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
        compiled = fixed
        if compiled is None:
            source, problem = get_reference(reference_outputs, reference_key)
            if problem is not None:
                return problem
            if not isinstance(source, str):
                return Score(
                    error=f"reference_outputs[{reference_key!r}] must be a regex string, "
                    f"got {short(source)}"
                )
            try:
                compiled = _compile(source, re_flags)
            except ValueError as exc:
                return Score(error=f"reference_outputs[{reference_key!r}]: {exc}")
        text, problem = get_text(outputs, key)
        if problem is not None:
            return problem
        match = compiled.search(text)
        if match is None:
            comment = f"/{compiled.pattern}/ not found in {_where(key)}: {short(text)}"
            return Score(value=0.0, passed=False, comment=comment)
        comment = f"/{compiled.pattern}/ matched {short(match.group(0), 60)} at {match.start()}"
        return Score(value=1.0, passed=True, comment=comment)

    return score
