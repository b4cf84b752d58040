"""LangSmith, through the official `langsmith` SDK: optional, nothing else needs it.

- `langsmith:PROJECT` trace source (`source.py`, registered with the trace sources);
- dataset sync both ways (`datasets.py`: `pull`, `push`, `list_datasets`);
- experiment upload (`experiments.py`: `upload`);
- evaluator adapters both ways (`evaluators.py`: `to_langsmith`,
  `register_langsmith_evaluator`);
- promote `--to-langsmith` (`promote.py`: `add_example_to_langsmith`).

The SDK is imported only when a client is made (`client.connect`), from `Settings`
(`EVALKEEPER_LANGSMITH_API_KEY`, `EVALKEEPER_LANGSMITH_ENDPOINT`).
"""

from evalkeeper.integrations.langsmith.client import LangSmithError, configured, connect
from evalkeeper.integrations.langsmith.datasets import (
    DatasetRow,
    SyncConflict,
    SyncReport,
    list_datasets,
    pull,
    push,
)
from evalkeeper.integrations.langsmith.evaluators import (
    EvaluatorFailed,
    from_langsmith_result,
    register_langsmith_evaluator,
    to_langsmith,
)
from evalkeeper.integrations.langsmith.experiments import UploadSummary, upload
from evalkeeper.integrations.langsmith.promote import PromotedExample, add_example_to_langsmith
from evalkeeper.integrations.langsmith.source import LangSmithSource, run_to_trace

__all__ = [
    "DatasetRow",
    "EvaluatorFailed",
    "LangSmithError",
    "LangSmithSource",
    "PromotedExample",
    "SyncConflict",
    "SyncReport",
    "UploadSummary",
    "add_example_to_langsmith",
    "configured",
    "connect",
    "from_langsmith_result",
    "list_datasets",
    "pull",
    "push",
    "register_langsmith_evaluator",
    "run_to_trace",
    "to_langsmith",
    "upload",
]
