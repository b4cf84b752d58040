"""Whose fault an error is: every exception evalkeeper raises on purpose derives from
`EvalkeeperError`; the ones the user can fix derive from `InputError`.

The command line prints an `InputError` as one line, `error: <message>`, and exits 2
(`EXIT_ERROR`). Any other exception is a bug in evalkeeper (or in the code it runs): its
traceback is shown and the exit code is `EXIT_BUG` (70), never 1, which means "regression".
So an input error's message is all the user sees: it names the object (file and line, field,
option or variable), the problem and the fix.

Several classes keep a built-in exception as a second base (`DatasetError(InputError,
ValueError)`): code and tests that catch `ValueError`, `KeyError`, `LookupError` or
`RuntimeError` around them keep working, and a `ValueError` raised in a pydantic validator
still becomes a `ValidationError`. The command line decides by `InputError` alone, never by
the built-in base.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EvalkeeperError", "InputError"]


class EvalkeeperError(Exception):
    """The base of every exception evalkeeper defines."""


class InputError(EvalkeeperError):
    """The user's to fix: a bad file, line, field, option or setting, a missing
    prerequisite (no warehouse yet, no baseline), or a resource another process holds.
    The command line prints the message alone and exits 2."""


class ConfigError(InputError, ValueError):
    """An `EVALKEEPER_*` setting whose value is found unusable only where it is used (a
    redaction pattern, region or key); the message names the variable and the fix."""
