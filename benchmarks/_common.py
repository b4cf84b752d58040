"""Shared pieces of the benchmarks: import path, dataset files, settings, tables, timers."""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `uv run python benchmarks/x.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

from benchmarks.targets import write_dataset  # noqa: E402
from evalkeeper.settings import Settings  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

EVALUATORS_TOML = """\
[[evaluators]]
name = "exact_match"
args = { key = "reply" }

[[evaluators]]
name = "tool_call_correct"

[[evaluators]]
name = "latency_ok"
"""


def bench_warehouse(path: Path | None, reuse: bool) -> tuple[Path, Path, bool]:
    """The benchmark's folder (`path`, or a new temporary one), its warehouse file and
    whether to time that file as it is (`--reuse` of an existing `--path` warehouse);
    otherwise the file is removed, to be built again."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="evalkeeper-bench-")) if path is None else path
    tmp.mkdir(parents=True, exist_ok=True)
    warehouse = tmp / "bench.duckdb"
    keep = reuse and path is not None and warehouse.exists()
    if warehouse.exists() and not keep:
        warehouse.unlink()
    return tmp, warehouse, keep


def make_dataset(directory: Path, n: int, name: str = "bench") -> Path:
    """A JSONL dataset of `n` synthetic examples, with a sidecar naming its evaluators."""
    path = write_dataset(directory / f"{name}.jsonl", n)
    path.with_suffix(".toml").write_text(EVALUATORS_TOML)
    return path


def bench_settings(directory: Path, **overrides: Any) -> Settings:
    """Settings on a fresh warehouse in `directory`; git pin given (no git subprocess)."""
    values: dict[str, Any] = {
        "warehouse": directory / "warehouse.duckdb",
        "datasets_dir": directory,
        "git_commit": "benchmark",
        "git_branch": "benchmark",
        "lock_wait_s": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


class Phases:
    """Wall time per wrapped function (cumulative), for a breakdown of one call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn: F) -> F:
        """`fn` (sync or async) timed into `self.seconds[name]`."""
        if inspect.iscoroutinefunction(fn):

            @wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

            return timed_async  # type: ignore[return-value]

        @wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

        return timed  # type: ignore[return-value]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned."""
    body = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    numeric = [all(_is_number(r[i]) for r in body) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(r) for r in body)
    return "\n".join(out)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text in ("", "-")
    return True
