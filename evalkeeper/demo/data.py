"""The demo's own copy of its sample data, so that what a user does to `data/` (a
`promote` into `data/datasets/appointments.jsonl`, say) never changes what the demo runs.

* ``demo_data_dir(settings) -> Path`` — `<warehouse stem>.demo/` beside the warehouse file
  (`data/warehouse.demo/` by default).
* ``demo_settings(settings) -> Settings`` — `settings` with `datasets_dir` pointing at the
  copy's `datasets/`, the copy made first when it is not there yet.

The copy holds what the demo reads, in the layout of `data/`: `datasets/appointments.jsonl`
and `.toml`, `labels/*.jsonl` (the calibration act) and `traces/*.jsonl` with
`deploys.json` (the monitoring act). It is made once, from `settings.datasets_dir` and its
sibling folders, into a temporary folder renamed into place (a killed copy leaves no half
folder); every later demo on that warehouse runs on it as it is. Delete the folder to take
a fresh copy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from evalkeeper.settings import Settings

DEMO_DATASET = "appointments"
_COPIED = {
    "datasets": (f"{DEMO_DATASET}.jsonl", f"{DEMO_DATASET}.toml"),
    "labels": ("*.jsonl",),
    "traces": ("*.jsonl", "deploys.json"),
}


def demo_data_dir(settings: Settings) -> Path:
    """Where the demo's copy of its data lives: beside the warehouse file."""
    wh = Path(settings.warehouse)
    return wh.with_name(f"{wh.stem}.demo")


def demo_settings(settings: Settings) -> Settings:
    """`settings` on the demo's copy of its data (made from `settings.datasets_dir` and its
    sibling `labels/` and `traces/` when the copy is not there yet)."""
    target = demo_data_dir(settings)
    if not (target / "datasets" / f"{DEMO_DATASET}.jsonl").is_file():
        _copy(Path(settings.datasets_dir).parent, Path(settings.datasets_dir), target)
    return settings.model_copy(update={"datasets_dir": target / "datasets"})


def _copy(source: Path, datasets: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for folder, patterns in _COPIED.items():
            src = datasets if folder == "datasets" else source / folder
            (staging / folder).mkdir()
            for pattern in patterns:
                for path in sorted(src.glob(pattern)):
                    shutil.copy2(path, staging / folder / path.name)
        if target.exists():  # a copy without its dataset: replaced whole
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another demo made it meanwhile: use theirs
            if not (target / "datasets" / f"{DEMO_DATASET}.jsonl").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
