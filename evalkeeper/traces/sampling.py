"""Deterministic trace sampling by a keyed hash of the trace id.

`sampled(trace_id, rate, key)` keeps a trace when the first 8 bytes of
HMAC-SHA256(sampling key, trace id), read as an unsigned integer and divided by 2**64, are
below `rate`. Every process and every rerun decides the same; the decision is monotone in
the rate (a trace kept at 10% is kept at 20%); without the key the choice cannot be
predicted or steered by whoever picks trace ids. The sampling key is derived from the
redaction key with its own label, so a sampling decision reveals nothing about the tokens.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

SAMPLING_LABEL = b"evalkeeper/trace-sampling/v1"
_SCALE = 2.0**64


@lru_cache(maxsize=16)
def sampling_key(key: bytes) -> bytes:
    """The sampling key derived from the redaction `key` (HMAC of a distinct label)."""
    return hmac.new(key, SAMPLING_LABEL, hashlib.sha256).digest()


def sample_point(trace_id: str, key: bytes) -> float:
    """Where `trace_id` falls in [0, 1): the trace is kept at every rate above this."""
    digest = hmac.new(sampling_key(key), trace_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def sampled(trace_id: str, rate: float, key: bytes) -> bool:
    """Whether the trace `trace_id` is kept at sampling `rate` (0..1) under redaction `key`."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sampling rate {rate!r} is outside [0, 1]; use e.g. 0.1 for 10%")
    if rate >= 1.0:
        return True
    return sample_point(trace_id, key) < rate
