"""What every detector returns (`detectors`, `phones`, `names`): a `Hit`.

A hit is a span, a kind and the normalised value that the token is computed from. It lives
only inside one redaction call; the value is never stored.
"""

from __future__ import annotations

from typing import NamedTuple


class Hit(NamedTuple):
    """A detected value: `text[start:end]` is of `kind`; `value` is its normalised form."""

    start: int
    end: int
    kind: str
    value: str
