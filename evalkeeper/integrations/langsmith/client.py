"""The official `langsmith` SDK client, built from `Settings` (never from ad hoc env reads).

The SDK is imported here, when a client is made, so that evalkeeper starts without it.
The client is made for synchronous, reported calls: no background batching thread, and
every error the SDK would only log (a failed run ingest) is collected and raised.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from evalkeeper.errors import EvalkeeperError
from evalkeeper.settings import Settings

if TYPE_CHECKING:
    import langsmith

DEFAULT_ENDPOINT = "https://api.smith.langchain.com"
NAMESPACE = uuid.UUID("6f1d3c1e-2b0a-5c8e-9d7a-4e5b6c7d8e9f")
"""The uuid5 namespace of every id evalkeeper gives a LangSmith object."""


class LangSmithError(EvalkeeperError, RuntimeError):
    """A LangSmith call that failed, or LangSmith not configured; the message says which
    object, what went wrong and what to do."""


def configured(settings: Settings) -> bool:
    """Whether LangSmith is configured: an API key or an endpoint (self-hosted, tests)."""
    return settings.langsmith.api_key is not None or settings.langsmith.endpoint is not None


def endpoint(settings: Settings) -> str:
    return (settings.langsmith.endpoint or DEFAULT_ENDPOINT).rstrip("/")


class Connection:
    """A `langsmith.Client` and the errors it reported in the background."""

    def __init__(self, client: langsmith.Client) -> None:
        self.client = client
        self.errors: list[Exception] = []

    def raise_errors(self, what: str) -> None:
        """Raise the first collected error as a LangSmithError naming `what`."""
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            self.errors.clear()
            raise LangSmithError(f"{what}: {type(first).__name__}: {first}{more}")


def connect(settings: Settings) -> Connection:
    """A client for `settings.langsmith.endpoint` with `settings.langsmith.api_key`."""
    if not configured(settings):
        raise LangSmithError(
            "LangSmith is not configured: set EVALKEEPER_LANGSMITH_API_KEY (and "
            "EVALKEEPER_LANGSMITH_ENDPOINT for a self-hosted LangSmith)"
        )
    import langsmith

    key = settings.langsmith.api_key
    holder: list[Connection] = []
    client = langsmith.Client(
        api_url=endpoint(settings),
        api_key=key.get_secret_value() if key is not None else None,
        auto_batch_tracing=False,
        omit_traced_runtime_info=True,
        tracing_error_callback=lambda exc: holder[0].errors.append(exc),
    )
    conn = Connection(client)
    holder.append(conn)
    return conn


@contextmanager
def quiet_deprecations() -> Iterator[None]:
    """`list_runs`/`read_run` warn that they move to `client.runs`; the calls still work."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def stable_uuid(*parts: str) -> uuid.UUID:
    """A UUID derived from evalkeeper's own ids: the same object gets the same id on every
    upload, so a resumed or repeated upload never creates a second one."""
    return uuid.uuid5(NAMESPACE, "/".join(parts))


def example_uuid(dataset: str, example_id: str) -> uuid.UUID:
    """The LangSmith id of a local example: itself when it is a UUID (it came from
    LangSmith), else derived from the dataset name and the example id."""
    try:
        return uuid.UUID(example_id)
    except ValueError:
        return stable_uuid("example", dataset, example_id)
