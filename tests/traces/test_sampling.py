"""Keyed, deterministic trace sampling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from scipy.stats import binom

from evalkeeper.settings import Settings
from evalkeeper.traces.redaction import build_redactor
from evalkeeper.traces.sampling import sample_point, sampled, sampling_key

KEY = b"sampling-test-key"
N = 100_000
IDS = [f"trace-{i:06d}" for i in range(N)]


def test_same_decision_in_another_process() -> None:
    ids = IDS[:300]
    here = [sampled(t, 0.3, KEY) for t in ids]
    code = (
        "import json, sys; from evalkeeper.traces.sampling import sampled; "
        "ids = json.loads(sys.stdin.read()); "
        f"print(json.dumps([sampled(t, 0.3, {KEY!r}) for t in ids]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == here
    assert 0 < sum(here) < len(here)


def test_monotone_in_the_rate() -> None:
    rates = [0.0, 0.01, 0.1, 0.2, 0.5, 0.9, 1.0]
    for t in IDS[:5000]:
        decisions = [sampled(t, r, KEY) for r in rates]
        assert decisions == sorted(decisions), t  # once kept, kept at every higher rate


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_observed_rate_within_the_binomial_interval(rate: float) -> None:
    kept = sum(sampled(t, rate, KEY) for t in IDS)
    lo, hi = binom.interval(0.999, N, rate)
    assert lo <= kept <= hi, (kept, lo, hi)


def test_decisions_under_two_keys_are_independent() -> None:
    rate = 0.1
    a = [sampled(t, rate, KEY) for t in IDS]
    b = [sampled(t, rate, b"another key") for t in IDS]
    both = sum(x and y for x, y in zip(a, b, strict=True))
    lo, hi = binom.interval(0.999, N, rate * rate)
    assert lo <= both <= hi, (both, lo, hi)


def test_edges_and_errors() -> None:
    assert not any(sampled(t, 0.0, KEY) for t in IDS[:1000])
    assert all(sampled(t, 1.0, KEY) for t in IDS[:1000])
    assert all(0.0 <= sample_point(t, KEY) < 1.0 for t in IDS[:1000])
    with pytest.raises(ValueError, match="outside"):
        sampled("x", 1.5, KEY)


def test_sampling_key_is_derived_not_the_redaction_key() -> None:
    assert sampling_key(KEY) != KEY and len(sampling_key(KEY)) == 32
    assert sampling_key(KEY) != sampling_key(b"another key")


def test_trace_redactor_samples_at_the_settings_rate(tmp_path: Path) -> None:
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        redaction_key=SecretStr("sampling-rate-test-key"),
        trace_sample_rate=0.25,
    )
    r = build_redactor(settings)
    ids = IDS[:4000]
    assert [r.sampled(t) for t in ids] == [sampled(t, 0.25, b"sampling-rate-test-key") for t in ids]
    lo, hi = binom.interval(0.999, len(ids), 0.25)
    assert lo <= sum(r.sampled(t) for t in ids) <= hi
