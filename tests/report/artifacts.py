"""Where a flow's report link points: the file behind a Prefect link artifact."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse


def linked_file(key: str) -> Path:
    """The file the latest link artifact under `key` points at (`[name](file://…)`)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert arts, f"no artifact {key}"
    found = re.search(r"\]\((file://[^)]+)\)", str(arts[0].data))
    assert found, arts[0].data
    url = urlparse(found.group(1))
    assert url.scheme == "file"
    return Path(unquote(url.path))
