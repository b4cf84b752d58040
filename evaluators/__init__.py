"""The bundled evaluators. Importing this package registers every one of them.

The registry (`evalkeeper.registry`) imports this package on first use; each submodule
registers its evaluators with `@evaluator(...)` when it is imported.
"""

from evaluators import heuristic, reference, structural

__all__ = ["heuristic", "reference", "structural"]
from evaluators import judges  # noqa: E402, F401  isort: skip
