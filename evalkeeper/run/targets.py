"""Targets: the system under test, behind one async call, with its pin.

Specs:
- `module:function` — a sync or async callable taking the inputs dict, returning a dict.
  The callable may carry `__evalkeeper_pin__ = {"agent_version": …, "model": …}`.
- `http://…` / `https://…` — POST the inputs as JSON, read the outputs as JSON.
- `replay:PATH.jsonl` — recorded outputs, one line per example:
  `{"id", "outputs", "latency_ms"?, "error"?}`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evalkeeper.datasets import json_problem
from evalkeeper.errors import EvalkeeperError, InputError
from evalkeeper.models import TargetPin


class TargetError(EvalkeeperError, RuntimeError):
    """The target failed on one example. `transient` errors are retried."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TargetSpecError(InputError, ValueError):
    """A target spec that cannot be loaded; the message says how to fix it."""


@dataclass
class Reply:
    outputs: dict[str, Any]
    latency_ms: float | None = None  # set when the target reports its own (replay)


class Target:
    pin: TargetPin

    async def __call__(self, example_id: str, inputs: dict[str, Any]) -> Reply:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def git_info(cwd: Path | None = None) -> tuple[str | None, str | None]:
    """(commit, branch) of the repository around `cwd`, or (None, None) outside git."""

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() or None

    return run("rev-parse", "HEAD"), run("rev-parse", "--abbrev-ref", "HEAD")


def _ensure_dict(value: Any, spec: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TargetError(f"{spec} returned {type(value).__name__}, expected a dict of outputs")
    return value


class CallableTarget(Target):
    def __init__(self, spec: str, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.spec = spec
        self.is_async = inspect.iscoroutinefunction(fn)
        meta = getattr(fn, "__evalkeeper_pin__", None) or {}
        self.pin = TargetPin(
            spec=spec,
            kind="callable",
            agent_version=meta.get("agent_version"),
            model=meta.get("model"),
        )

    async def __call__(self, example_id: str, inputs: dict[str, Any]) -> Reply:
        if self.is_async:
            result = await self.fn(inputs)
        else:
            result = await asyncio.to_thread(self.fn, inputs)
        return Reply(_ensure_dict(result, self.spec))


class HttpTarget(Target):
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.client = httpx.AsyncClient(timeout=timeout_s)
        self.pin = TargetPin(spec=url, kind="http")

    async def __call__(self, example_id: str, inputs: dict[str, Any]) -> Reply:
        try:
            resp = await self.client.post(self.url, json=inputs)
        except httpx.TransportError as exc:
            raise TargetError(
                f"POST {self.url}: {type(exc).__name__}: {exc}", transient=True
            ) from exc
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TargetError(f"POST {self.url}: HTTP {resp.status_code}", transient=True)
        if resp.status_code >= 400:
            raise TargetError(f"POST {self.url}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise TargetError(
                f"POST {self.url}: response is not JSON: {resp.text[:200]!r}"
            ) from exc
        return Reply(_ensure_dict(body, self.url))

    async def aclose(self) -> None:
        await self.client.aclose()


class ReplayTarget(Target):
    def __init__(self, spec: str, path: Path) -> None:
        if not path.exists():
            raise TargetSpecError(f"{spec}: no such file {path}")
        if path.is_dir():
            raise TargetSpecError(
                f"{spec}: {path} is a directory; pass the .jsonl file of recorded outputs "
                "(replay:PATH.jsonl)"
            )
        self.records: dict[str, dict[str, Any]] = {}
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TargetSpecError(
                        f"{path}:{lineno}: not valid JSON ({json_problem(exc)})"
                    ) from exc
                if not isinstance(rec, dict) or "id" not in rec:
                    raise TargetSpecError(f'{path}:{lineno}: missing field "id"')
                if "outputs" not in rec and "error" not in rec:
                    raise TargetSpecError(f'{path}:{lineno}: missing field "outputs"')
                self.records[str(rec["id"])] = rec
        self.pin = TargetPin(spec=spec, kind="replay")

    async def __call__(self, example_id: str, inputs: dict[str, Any]) -> Reply:
        rec = self.records.get(example_id)
        if rec is None:
            raise TargetError(f"replay has no recorded output for example {example_id!r}")
        if rec.get("error"):
            raise TargetError(str(rec["error"]))
        latency = rec.get("latency_ms")
        return Reply(
            _ensure_dict(rec.get("outputs"), "replay"),
            float(latency) if latency is not None else None,
        )


def load_target(
    spec: str,
    *,
    timeout_s: float = 60.0,
    git_commit: str | None = None,
    git_branch: str | None = None,
    pin_git: bool = True,
) -> Target:
    """Build a target from its spec and pin it to the current git commit and branch
    (`pin_git=False` skips the two git calls: for a target whose pin is already recorded)."""
    target: Target
    if spec.startswith(("http://", "https://")):
        target = HttpTarget(spec, timeout_s)
    elif spec.startswith("replay:"):
        target = ReplayTarget(spec, Path(spec.removeprefix("replay:")))
    elif ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TargetSpecError(
                f"target {spec!r}: cannot import module {module_name!r} ({exc}); "
                "is it on PYTHONPATH?"
            ) from exc
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise TargetSpecError(f"target {spec!r}: {module_name} has no callable {attr!r}")
        target = CallableTarget(spec, fn)
    else:
        raise TargetSpecError(
            f"target {spec!r}: expected module:function, http(s)://…, or replay:PATH.jsonl"
        )
    commit, branch = (git_commit, git_branch)
    if pin_git and (commit is None or branch is None):
        found_commit, found_branch = git_info()
        commit, branch = commit or found_commit, branch or found_branch
    target.pin = target.pin.model_copy(update={"git_commit": commit, "git_branch": branch})
    return target
