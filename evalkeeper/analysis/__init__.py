"""Comparison of an experiment with its baseline: paired statistics, the per-row guard,
baseline selection and the verdict; and the statistics of the monitor and of calibration.

Pure (arrays and frames in, results out; no warehouse): `stats`, `cells`, `paired` (the
analysis of two experiments' frames), `verdict` (the decision), `reasons`, `models`,
`sequential` (the monitor's test), `agreement` (calibration's measures), `corrected` and
`judge_rates` (judge-corrected pass rates). The entry points
take a `Warehouse` and leave the SQL to `evalkeeper.warehouse`: `compare` (load, analyse,
decide), `baseline` (the baseline rule: `find_baseline`, `baseline_ref`) and `gate` (compare,
store, exit code). Reports live in `evalkeeper.report`.

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
