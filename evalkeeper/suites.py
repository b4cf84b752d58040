"""Suites: `full` is every example; `smoke` is a deterministic, stratified subset.

Smoke keeps every `critical` example, then from each category a fixed share (at least
`min_per_category`, at most all of it), chosen by a seeded hash of the example id. The
same dataset version and seed always give the same subset; adding an example to a
category only ever adds, never reshuffles, the others' order.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

from evalkeeper.models import Example, Suite


def _rank(seed: int, example_id: str) -> str:
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def smoke_subset(
    examples: list[Example], *, share: float, min_per_category: int, seed: int
) -> list[Example]:
    by_category: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_category[e.metadata.category].append(e)
    chosen = {e.id for e in examples if e.metadata.critical}
    for members in by_category.values():
        want = min(len(members), max(min_per_category, math.ceil(share * len(members))))
        ranked = sorted(members, key=lambda e: _rank(seed, e.id))
        # critical examples already count towards the category's share
        have = sum(1 for e in members if e.id in chosen)
        for e in ranked:
            if have >= want:
                break
            if e.id not in chosen:
                chosen.add(e.id)
                have += 1
    return [e for e in examples if e.id in chosen]  # file order


def select(
    examples: list[Example], suite: Suite, *, share: float, min_per_category: int, seed: int
) -> list[Example]:
    if suite == "full":
        return list(examples)
    if suite == "smoke":
        return smoke_subset(examples, share=share, min_per_category=min_per_category, seed=seed)
    raise ValueError(f"unknown suite {suite!r}: use full or smoke")
