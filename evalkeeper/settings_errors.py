"""Settings that fail validation, said in one line per problem naming where the value came
from (`EVALKEEPER_CONCURRENCY=0`, `--warehouse=…`), the value and what is allowed.

`settings_or_error(**overrides)` is `Settings(**overrides)` for callers that are not the
command line (flows, tasks, scripts): it raises `SettingsInvalid`, a ValueError whose message
is those lines. The command line prints the same lines and exits 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import annotated_types
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from evalkeeper.errors import InputError
from evalkeeper.settings import ENV_PREFIX, GROUPS, SETTINGS, Settings

_TYPE_PHRASES = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "path_type": "a file path",
    "string_type": "text",
    "list_type": "a JSON list",
}
_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_SOURCE_ERROR = re.compile(r'error parsing value for field "(\w+)"')


class SettingsInvalid(InputError, ValueError):
    """Settings that failed validation; the message has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def env_name(field: str) -> str:
    """The environment variable a setting is read from (`EVALKEEPER_<FLAT NAME>`, or its
    alias: `GITHUB_STEP_SUMMARY`), by its flat name (`judge_model`)."""
    where = SETTINGS.get(field)
    return where.env if where else ENV_PREFIX + field.upper()


def _field_of(loc: tuple[Any, ...]) -> str:
    """A setting's flat name from an error's location: (`judge`, `model`) is `judge_model`,
    (`GITHUB_STEP_SUMMARY`,) is `github_step_summary`."""
    names = [str(part) for part in loc[:2]]
    group = names[0] if names[0] in GROUPS and len(names) > 1 else None
    name = names[1] if group else names[0]
    for flat, where in SETTINGS.items():
        if where.group == group and name in where.aliases:
            return flat
    return "_".join(names) if group else name


def _info(field: str) -> FieldInfo | None:
    where = SETTINGS.get(field)
    return where.info if where else None


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def allowed_range(info: FieldInfo | None) -> str | None:
    """`at least 1`, `greater than 0 and less than 1`: the field's bounds, if it has any."""
    if info is None:
        return None
    parts = []
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            parts.append(f"at least {_number(m.ge)}")
        elif isinstance(m, annotated_types.Gt):
            parts.append(f"greater than {_number(m.gt)}")
        elif isinstance(m, annotated_types.Le):
            parts.append(f"at most {_number(m.le)}")
        elif isinstance(m, annotated_types.Lt):
            parts.append(f"less than {_number(m.lt)}")
    return " and ".join(parts) or None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def describe_error(error: Mapping[str, Any], origin: Callable[[str], str]) -> tuple[str, str]:
    """(field, one line) for one pydantic error; `origin(field)` names where it came from."""
    field = _field_of(tuple(error["loc"])) if error.get("loc") else "?"
    info = _info(field)
    value = error.get("input")
    if isinstance(value, SecretStr) or (info is not None and "SecretStr" in str(info.annotation)):
        shown = "***"
    else:
        shown = str(value)
    bounds = allowed_range(info)
    kind = str(error.get("type", ""))
    if kind in _BOUND_ERRORS and bounds:
        rule = f"must be {bounds}"
    elif kind in _TYPE_PHRASES:
        rule = f"must be {_TYPE_PHRASES[kind]}" + (f", {bounds}" if bounds else "")
    elif kind == "literal_error":
        rule = f"must be {error.get('ctx', {}).get('expected', 'one of the allowed values')}"
    else:
        rule = "is not valid"
    msg = _lower_first(str(error.get("msg", "")))
    return field, f"{origin(field)}={shown}: {rule} ({msg})"


def describe(
    exc: ValidationError | SettingsError,
    overrides: Mapping[str, object],
    option: Callable[[str], str] = lambda field: field,
) -> list[str]:
    """One line per invalid field. A field given in `overrides` is named by `option(field)`
    (the CLI says `--warehouse`), any other by its environment variable."""

    def origin(field: str) -> str:
        return option(field) if overrides.get(field) is not None else env_name(field)

    if isinstance(exc, SettingsError):
        return [_not_json(exc, ())]
    lines: dict[str, str] = {}
    for error in exc.errors():
        if error.get("type") == "none_required":  # the `None` branch of `X | None`
            continue
        source = error.get("ctx", {}).get("error")
        if isinstance(source, SettingsError):  # a sub-model could not read its variables
            line = _not_json(source, tuple(error.get("loc", ())))
            lines.setdefault(line.split(":", 1)[0], line)
            continue
        field, line = describe_error(error, origin)
        lines.setdefault(field, line)  # one line per field, its first problem
    return list(lines.values()) or [str(exc)]


def _not_json(exc: SettingsError, loc: tuple[Any, ...]) -> str:
    """`EVALKEEPER_REDACTION_PATTERNS: not valid JSON (…)`: a variable the settings source
    could not decode; `loc` is the sub-model it belongs to (empty: Settings itself)."""
    match = _SOURCE_ERROR.search(str(exc))
    field = _field_of((*loc, match.group(1))) if match else "?"
    cause = f" ({_lower_first(str(exc.__cause__))})" if exc.__cause__ else ""
    return (
        f"{env_name(field)}: not valid JSON{cause}; write a JSON value, "
        'e.g. ["US", "GB"] for a list'
    )


def validated_settings(
    overrides: Mapping[str, object], option: Callable[[str], str] = lambda field: field
) -> Settings:
    """`Settings(**overrides)` (a None override is left out), or SettingsInvalid naming each
    bad value; an override by `option(field)`, anything else by its environment variable."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except (ValidationError, SettingsError) as exc:
        raise SettingsInvalid(describe(exc, given, option)) from None


def settings_or_error(**overrides: object) -> Settings:
    """`Settings(**overrides)`, or SettingsInvalid (a ValueError) whose message has one line
    per bad value: `EVALKEEPER_CONCURRENCY=0: must be at least 1 (input should be greater
    than or equal to 1)`. For flows, tasks and scripts."""
    return validated_settings(overrides)
