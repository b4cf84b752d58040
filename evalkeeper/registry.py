"""The evaluator registry: one decorator, one signature, one `Score`.

An evaluator is registered as a *factory*: `@evaluator("exact_match", version="1")` on a
function that takes configuration keywords and returns the scoring function. The factory's
arguments are recorded (and hashed) with every score, so any stored score can be rebuilt
by name. A scoring function is an `Evaluator`: it takes the LangSmith-compatible keywords
`inputs`, `outputs`, `reference_outputs`, `run`, `example` and returns a `Score`, sync or
async. A summary evaluator (`summary=True`) scores a whole experiment: a
`SummaryEvaluator`, taking `runs` and `examples` instead. `build` makes a `BuiltEvaluator`
of a factory and its arguments.

The registry is lenient where the protocols are strict, for evaluators written elsewhere
(LangSmith's convention): a function may name only the keywords it uses, and is then passed
only those; it may return a bool, a number or a dict, which `to_score` makes a Score.

A factory may declare a `runtime` parameter: it then receives the `Runtime` (settings,
warehouse, experiment id) at build time. `runtime` is not part of the recorded arguments.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

from pydantic import ValidationError

from evalkeeper.errors import InputError
from evalkeeper.models import EvaluatorRef, Example, RunRecord, Score, content_hash

if TYPE_CHECKING:
    from evalkeeper.settings import Settings
    from evalkeeper.warehouse import Warehouse

Kind = Literal["heuristic", "structural", "judge", "groundedness", "reference"]
EXAMPLE_KWARGS = ("inputs", "outputs", "reference_outputs", "run", "example")
SUMMARY_KWARGS = ("runs", "examples")
BUILTIN_PACKAGE = "evaluators"


class Evaluator(Protocol):
    """A scoring function: one run of one example scored, sync or async.

    The runner passes every keyword; one the caller has not got (a trace has no reference
    outputs, a failed run no outputs) is None or empty."""

    def __call__(
        self,
        *,
        inputs: dict[str, Any] | None,
        outputs: dict[str, Any] | None,
        reference_outputs: dict[str, Any] | None,
        run: RunRecord | None,
        example: Example | None,
    ) -> Score | Awaitable[Score]: ...


class SummaryEvaluator(Protocol):
    """A summary scoring function: a whole experiment's runs scored at once, sync or async."""

    def __call__(
        self, *, runs: Sequence[RunRecord] | None, examples: Sequence[Example] | None
    ) -> Score | Awaitable[Score]: ...


Factory = Callable[..., Evaluator | SummaryEvaluator]
"""Configuration keywords (and `runtime`) in, a scoring function out."""
ExampleFactory = TypeVar("ExampleFactory", bound=Callable[..., Evaluator])
SummaryFactory = TypeVar("SummaryFactory", bound=Callable[..., SummaryEvaluator])


class UnknownEvaluator(InputError, KeyError):
    pass


class EvaluatorConfigError(InputError, ValueError):
    """An evaluator built with arguments its factory does not take, or refuses (a factory
    says so with a `ValueError`, which `build` turns into this error)."""


@dataclass
class Runtime:
    """What a factory may need beyond its arguments: settings, the warehouse, the run."""

    settings: Settings
    warehouse: Warehouse | None = None
    experiment_id: str | None = None
    emit: Callable[[str, dict[str, Any]], None] | None = None
    """Queue a row for a warehouse table; the runner writes it with the run's batch."""
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    kind: Kind
    summary: bool
    factory: Factory
    description: str
    settings_defaults: tuple[tuple[str, str], ...] = ()
    """(argument, setting by its flat name): an argument not given takes that setting's value."""


_REGISTRY: dict[str, Registered] = {}


@overload
def evaluator(
    name: str,
    *,
    version: str,
    kind: Kind = "heuristic",
    summary: Literal[False] = False,
    settings_defaults: dict[str, str] | None = None,
) -> Callable[[ExampleFactory], ExampleFactory]: ...


@overload
def evaluator(
    name: str,
    *,
    version: str,
    kind: Kind = "heuristic",
    summary: Literal[True],
    settings_defaults: dict[str, str] | None = None,
) -> Callable[[SummaryFactory], SummaryFactory]: ...


def evaluator(
    name: str,
    *,
    version: str,
    kind: Kind = "heuristic",
    summary: bool = False,
    settings_defaults: dict[str, str] | None = None,
) -> Callable[[Any], Any]:
    """Register an evaluator factory under `name` and `version`.

    `settings_defaults` maps a factory argument to the setting it defaults to, by its flat
    name (`{"threshold_s": "latency_p95_s"}`: EVALKEEPER_LATENCY_P95_S): `with_defaults` writes that value into the
    recorded arguments, so the stored provenance says which threshold was used."""

    def register(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"evaluator {name!r} is registered twice")
        doc = inspect.getdoc(factory) or ""
        _REGISTRY[name] = Registered(
            name,
            version,
            kind,
            summary,
            factory,
            doc.splitlines()[0] if doc else "",
            tuple((settings_defaults or {}).items()),
        )
        return factory

    return register


def unregister(name: str) -> Registered:
    """Remove an evaluator from the registry (a test's own evaluator, after the test)."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise UnknownEvaluator(f"unknown evaluator {name!r}: nothing to unregister") from None


def with_defaults(ref: EvaluatorRef, settings: Settings) -> EvaluatorRef:
    """`ref` with the arguments it leaves out that default to a setting filled in."""
    reg = get(ref.name)
    missing = {
        arg: settings.setting(field) for arg, field in reg.settings_defaults if arg not in ref.args
    }
    return ref.model_copy(update={"args": {**ref.args, **missing}}) if missing else ref


def load_builtin() -> None:
    """Import the bundled evaluators package so that its evaluators register."""
    importlib.import_module(BUILTIN_PACKAGE)


def available() -> dict[str, Registered]:
    load_builtin()
    return dict(_REGISTRY)


def get(name: str) -> Registered:
    load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownEvaluator(f"unknown evaluator {name!r} (known: {known})") from None


def to_score(result: Any) -> Score:
    """Coerce what a scoring function returned into a Score (LangSmith-style results too)."""
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score(value=float(result), passed=result)
    if isinstance(result, int | float):
        return Score(value=float(result), passed=None)
    if isinstance(result, dict):
        data = dict(result)
        if "score" in data and "value" not in data:
            data["value"] = data.pop("score")
        if isinstance(data.get("value"), bool):
            data.setdefault("passed", data["value"])
            data["value"] = float(data["value"])
        allowed = set(Score.model_fields)
        extra = {k: v for k, v in data.items() if k not in allowed}
        clean = {k: v for k, v in data.items() if k in allowed}
        if extra:
            clean["details"] = {**(clean.get("details") or {}), **extra}
        return Score(**clean)
    raise TypeError(f"evaluator returned {type(result).__name__}; expected Score, bool, number")


@dataclass
class BuiltEvaluator:
    """A built evaluator: the scoring function with its name, version and arguments."""

    name: str
    version: str
    kind: Kind
    summary: bool
    args: dict[str, Any]
    args_hash: str
    fn: Evaluator | SummaryEvaluator
    accepts: tuple[str, ...]
    is_async: bool

    async def __call__(self, **kwargs: Any) -> Score:
        """Score one run (or, for a summary evaluator, a whole experiment). Never raises."""
        try:
            # Any: a lenient evaluator may return a bool, a number or a dict (`to_score`)
            result: Any = self.fn(**{k: kwargs.get(k) for k in self.accepts})
            if self.is_async or (type(result) is not Score and inspect.isawaitable(result)):
                result = await result
            score = result if type(result) is Score else to_score(result)
        except Exception as exc:  # an evaluator bug is an error score, never a pass
            score = Score(error=f"{type(exc).__name__}: {exc}")
        # plain attribute writes: pydantic's __setattr__ costs ~3 us each, and there is
        # nothing to validate in two strings we own (this runs for every score)
        score.__dict__["name"] = self.name
        score.__dict__["version"] = self.version
        return score


def build(ref: EvaluatorRef | str, runtime: Runtime | None = None) -> BuiltEvaluator:
    """Build an evaluator from its registry name and arguments."""
    if isinstance(ref, str):
        ref = EvaluatorRef(name=ref)
    if runtime is not None:
        ref = with_defaults(ref, runtime.settings)
    reg = get(ref.name)
    params = inspect.signature(reg.factory).parameters
    unknown = set(ref.args) - set(params) - {"runtime"}
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise EvaluatorConfigError(
            f"evaluator {ref.name!r}: unknown argument(s) {sorted(unknown)}; "
            f"it takes {sorted(k for k in params if k != 'runtime')}"
        )
    kwargs = dict(ref.args)
    if "runtime" in params:
        kwargs["runtime"] = runtime
    try:
        fn = reg.factory(**kwargs)
    except InputError:
        raise
    except ValueError as exc:  # a factory refuses its arguments with a ValueError
        if isinstance(exc, ValidationError):  # a model the factory built: a bug, not input
            raise
        raise EvaluatorConfigError(str(exc)) from exc
    fn_params = inspect.signature(fn).parameters
    names: tuple[str, ...] = SUMMARY_KWARGS if reg.summary else EXAMPLE_KWARGS
    if any(p.kind is p.VAR_KEYWORD for p in fn_params.values()):
        accepts = names
    else:
        accepts = tuple(n for n in names if n in fn_params)
    return BuiltEvaluator(
        name=reg.name,
        version=reg.version,
        kind=reg.kind,
        summary=reg.summary,
        args=dict(ref.args),
        args_hash=content_hash(ref.args, 12),
        fn=fn,
        accepts=accepts,
        is_async=inspect.iscoroutinefunction(fn),
    )
