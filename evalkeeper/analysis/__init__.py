"""Comparison of an experiment with its baseline: paired statistics, the per-row guard,
baseline selection and the verdict. Pure analysis; reports live in `evalkeeper.report`.

Importing this package pulls in SciPy (seconds on a cold start): the faces import it where
they use it.
"""

from evalkeeper.analysis.baseline import baseline_ref, find_baseline
from evalkeeper.analysis.compare import compare
from evalkeeper.analysis.models import (
    ALL,
    Cell,
    CompareError,
    Comparison,
    LatencySummary,
    RowRegression,
    SideEstimate,
)

__all__ = [
    "ALL",
    "Cell",
    "CompareError",
    "Comparison",
    "LatencySummary",
    "RowRegression",
    "SideEstimate",
    "baseline_ref",
    "compare",
    "find_baseline",
]
