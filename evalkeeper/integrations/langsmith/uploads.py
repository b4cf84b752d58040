"""Where an uploaded experiment lives in LangSmith, recorded beside the warehouse.

`upload` records each experiment it sent in `<warehouse folder>/langsmith-uploads/
<experiment>.json` (the session's name and id, its dataset, its web address and when),
written whole; the experiment report reads it back to link the LangSmith experiment. An
experiment never uploaded has no file, and its report shows no link. The warehouse itself
is left as it is: an upload only reads it."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from evalkeeper.settings import Settings

UPLOADS_DIR = "langsmith-uploads"


def upload_record_path(settings: Settings, experiment_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_id).strip("._") or "experiment"
    return Path(settings.warehouse).parent / UPLOADS_DIR / f"{safe}.json"


def record_upload(settings: Settings, experiment_id: str, record: dict[str, Any]) -> Path:
    """Write `record` (JSON-able) for `experiment_id`, whole (a temporary file, a rename)."""
    path = upload_record_path(settings, experiment_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"experiment_id": experiment_id, **record}, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def recorded_upload(settings: Settings, experiment_id: str) -> dict[str, Any] | None:
    """The record of `experiment_id`'s last upload, or None (never uploaded, or a record
    that cannot be read: the report then shows no link)."""
    path = upload_record_path(settings, experiment_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("experiment_id") != experiment_id:
        return None
    return data
