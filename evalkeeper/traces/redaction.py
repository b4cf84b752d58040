"""PII redaction of production traces: keyed, stable tokens in place of personal values.

Every detected value is replaced by `<KIND:8hex>`, the first 4 bytes of
HMAC-SHA256(key, KIND + NUL + normalised value) in hex: the same person gets the same token
in every trace, format and day (phones to E.164, emails lowercased, cards and IBANs
compacted), nobody without the key can confirm a guess, and two keys give unrelated tokens.

    redactor = build_redactor(settings)          # once per process
    trace = redactor.redact_json(trace)          # every string, recursively
    redactor.stats                               # {"EMAIL": 3, "PHONE": 1, ...}
    if redactor.key_generated: ...               # tell the user once (never the key)

The detection is pluggable: anything with `redact(text) -> (text, findings)` is a `Redactor`
(docs/redaction.md shows one around Presidio); `BuiltinRedactor` is the default.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from evalkeeper.settings import DEFAULT_REDACTION_REGIONS, Settings
from evalkeeper.traces import detectors as d
from evalkeeper.traces.hits import Hit
from evalkeeper.traces.keys import RedactionKey, resolve_key
from evalkeeper.traces.names import NameIndex
from evalkeeper.traces.phones import PhoneDetector, PhonePolicy
from evalkeeper.traces.sampling import sampled

_DIGIT_RE = re.compile(r"\d")
SHORT_TEXT = 32  # texts up to this long are redacted once per process (`redact_key`)
KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "NAME", "PATTERN")


@dataclass(frozen=True, slots=True)
class Finding:
    """One redacted value: `kind`, its span `[start, end)` in the original text, and the
    `token` that replaced it. The raw value is never kept."""

    kind: str
    start: int
    end: int
    token: str


@runtime_checkable
class Redactor(Protocol):
    """Anything that turns a text into its redacted form and says what it replaced."""

    def redact(self, text: str) -> tuple[str, list[Finding]]: ...


def token_for(key: bytes, kind: str, value: str) -> str:
    """The stable token of a normalised `value` of `kind` under `key`."""
    digest = hmac.digest(key, f"{kind}\x00{value}".encode(), hashlib.sha256)
    return f"<{kind}:{digest[:4].hex()}>"


class _TokenHasher:
    """`token_for` under one key, its HMAC (RFC 2104) written out: the inner and outer
    SHA-256 states after the padded key (and, inner, after `KIND` NUL) are computed once
    per kind and copied for each value, which gives the same digest as `hmac.digest` in
    less than half its time (the one-shot call sets the key up again for every value)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:  # RFC 2104: a long key is hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))
        self._kinds: dict[str, Any] = {}

    def token(self, kind: str, value: str) -> str:
        inner = self._kinds.get(kind)
        if inner is None:
            inner = self._kinds[kind] = self._inner.copy()
            inner.update(f"{kind}\x00".encode())
        h = inner.copy()
        h.update(value.encode())
        outer = self._outer.copy()
        outer.update(h.digest())
        return f"<{kind}:{outer.digest()[:4].hex()}>"


_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class RedactionConfig(BaseModel):
    """What the built-in redactor looks for."""

    model_config = ConfigDict(frozen=True)

    regions: tuple[str, ...] = Field(
        DEFAULT_REDACTION_REGIONS,
        description="Regions (ISO 3166) whose national phone formats are recognised, in order "
        "of preference for reading a national number.",
    )
    names: tuple[str, ...] = Field((), description="Names always redacted (whole words).")
    patterns: tuple[str, ...] = Field((), description="Extra regular expressions to redact.")
    phone_policy: PhonePolicy = Field(
        "hybrid",
        description="possible, valid, or hybrid (valid; or possible when formatted like a "
        "phone number). See evalkeeper.traces.phones.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactionConfig:
        """The configuration named by `settings` (regions, names, patterns)."""
        return cls(
            regions=tuple(settings.redaction.regions),
            names=tuple(settings.redaction.names),
            patterns=tuple(settings.redaction.patterns),
        )


class BuiltinRedactor:
    """Emails, IBANs, card numbers, phone numbers, configured names and patterns.

    Order: emails, then IBANs, then cards, then phones, each on a text where the earlier
    findings are masked (phones also mask dates, times, prices and ids around their
    candidates); names and patterns on the original text. Overlaps: longest first.
    """

    def __init__(self, config: RedactionConfig, key: bytes) -> None:
        if not key:
            raise ValueError("BuiltinRedactor: empty key; pass the bytes of resolve_key()")
        self.config = config
        self._key = key
        self._phones = PhoneDetector(config.regions, config.phone_policy)
        self._names = NameIndex(config.names)
        self._patterns = d.compile_patterns(config.patterns)
        self._tokens: dict[tuple[str, str], str] = {}
        self._hasher = _TokenHasher(key)
        self._keys: dict[str, tuple[str, tuple[str, ...]]] = {}

    def __reduce__(self) -> tuple[type[BuiltinRedactor], tuple[RedactionConfig, bytes]]:
        """Pickled as its configuration and key (a worker process rebuilds it, caches empty)."""
        return (BuiltinRedactor, (self.config, self._key))

    def detect(self, text: str) -> list[Hit]:
        """The non-overlapping values in `text` (internal: hits carry raw values)."""
        hits: list[Hit] = []
        tokens = [(m.start(), m.end()) for m in d.TOKEN_RE.finditer(text)] if "<" in text else []
        has_digit = _DIGIT_RE.search(text) is not None
        if not has_digit and "@" not in text and not self._names and not self._patterns:
            return hits
        # each detector on the text with the earlier findings masked (no mask: no copy)
        masked = d.mask(text, tokens) if tokens else text
        hits += d.find_emails(masked)
        if has_digit:
            if hits:
                masked = d.mask(masked, [(h.start, h.end) for h in hits])
            ibans = d.find_ibans(masked)
            if ibans:
                masked = d.mask(masked, [(h.start, h.end) for h in ibans])
            cards = d.find_cards(masked)
            if cards:
                masked = d.mask(masked, [(h.start, h.end) for h in cards])
            hits += ibans + cards
            hits += self._phones.find(masked)  # masks dates, prices, ids around candidates
        names = self._names.find(text) if self._names else []
        names += d.find_patterns(text, self._patterns)
        if names:
            if tokens:  # a name inside an existing token is no name
                names = [h for h in names if all(h.end <= s or h.start >= e for s, e in tokens)]
            hits += names
            hits = _longest_first(hits)
        else:
            hits.sort(key=_START)
        return hits

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        out, hits, tokens = self._redacted(text)
        return out, [Finding(h.kind, h.start, h.end, t) for h, t in zip(hits, tokens, strict=True)]

    def redact_kinds(self, text: str) -> tuple[str, list[str]]:
        """`redact`, with the kind of each finding rather than the finding (what
        `redact_json` counts: no `Finding` built)."""
        out, hits, _ = self._redacted(text)
        return out, [h.kind for h in hits]

    def _redacted(self, text: str) -> tuple[str, list[Hit], list[str]]:
        """`text` with every value found replaced by its token; the hits and their tokens."""
        hits = self.detect(text)
        if not hits:
            return text, [], []
        tokens = [self._token(h.kind, h.value) for h in hits]
        return _replace(text, hits, tokens), hits, tokens

    def redact_key(self, key: str) -> tuple[str, tuple[str, ...]]:
        """A dict key or a short text (`SHORT_TEXT` characters at most) redacted, and the
        kinds found in it: `redact`, cached (a few keys and values repeat in every trace:
        `role`, `content`, `user`, a tool's name, `prod`…)."""
        done = self._keys.get(key)
        if done is None:
            if len(self._keys) >= 8192:
                self._keys.clear()
            text, kinds = self.redact_kinds(key)
            done = self._keys[key] = (text, tuple(kinds))
        return done

    def _token(self, kind: str, value: str) -> str:
        token = self._tokens.get((kind, value))
        if token is None:
            if len(self._tokens) >= 65536:
                self._tokens.clear()
            token = self._tokens[(kind, value)] = self._hasher.token(kind, value)
        return token


def _replace(text: str, hits: list[Hit], tokens: list[str]) -> str:
    """`text` with each hit's span (in order, not overlapping) replaced by its token."""
    out: list[str] = []
    pos = 0
    for h, token in zip(hits, tokens, strict=True):
        out.append(text[pos : h.start])
        out.append(token)
        pos = h.end
    out.append(text[pos:])
    return "".join(out)


def _longest_first(hits: list[Hit]) -> list[Hit]:
    """The hits that survive overlaps, longest first (then by `KINDS`, then leftmost), in
    text order. When no two hits overlap (nearly always) every hit survives: that is the
    hits in text order, without the greedy pass."""
    hits = sorted(hits, key=_START)
    if all(a.end <= b.start for a, b in itertools.pairwise(hits)):
        return hits
    chosen: list[Hit] = []
    for h in sorted(hits, key=lambda h: (h.start - h.end, _RANK[h.kind], h.start)):
        if all(h.end <= c.start or h.start >= c.end for c in chosen):
            chosen.append(h)
    chosen.sort(key=_START)
    return chosen


_START = operator.attrgetter("start")
_RANK = {kind: i for i, kind in enumerate(KINDS)}


def redact_json(value: Any, redactor: Redactor) -> tuple[Any, Counter[str]]:
    """`value` with every string in it redacted, dict keys included (non-strings kept), and
    the number of findings per kind. Tuples come back as lists (JSON has only arrays).

    Two keys of one object that redact to the same text (`Ann@x.org` and `ann@x.org`) are
    both kept: the second and later get ` #2`, ` #3`… in their order in the object."""
    found: list[str] = []  # the kind of every finding, counted once at the end
    text_of: Callable[[str], tuple[str, Sequence[str]]]
    short_of: Callable[[str], tuple[str, Sequence[str]]]
    keys: Mapping[str, tuple[str, Sequence[str]]]
    if isinstance(redactor, BuiltinRedactor):
        text_of = redactor.redact_kinds
        short_of = redactor.redact_key  # cached: keys and short values repeat
        keys = redactor._keys  # its cache, read here first (no call when it holds `k`)
    else:
        plain = redactor

        def text_of(v: str) -> tuple[str, Sequence[str]]:
            text, findings = plain.redact(v)
            return text, [f.kind for f in findings]

        short_of = text_of
        keys = {}

    def key_of(k: str) -> str:
        done = keys.get(k)
        text, kinds = done if done is not None else short_of(k)
        if kinds:
            found.extend(kinds)
        return text

    def long_of(v: str) -> str:
        text, kinds = text_of(v)
        if kinds:
            found.extend(kinds)
        return text

    def walk(v: Any) -> Any:
        # by exact type first (JSON's own types), then the general checks for the rest
        t = type(v)
        if t is str:
            return key_of(v) if len(v) <= SHORT_TEXT else long_of(v)
        if t in _SCALARS:
            return v
        if t is dict or isinstance(v, Mapping):
            out: dict[Any, Any] = {}
            for k, x in v.items():
                if isinstance(k, str):
                    k = key_of(k)
                    if k in out:
                        k = _free_key(out, k)
                out[k] = walk(x)
            return out
        if t is list or isinstance(v, list | tuple):
            return [walk(x) for x in v]
        if isinstance(v, str):  # a subclass of str
            return key_of(v) if len(v) <= SHORT_TEXT else long_of(v)
        return v

    result = walk(value)
    return result, Counter(found)


_SCALARS = frozenset({int, float, bool, type(None)})


def _free_key(taken: Mapping[Any, Any], key: str) -> str:
    n = 2
    while f"{key} #{n}" in taken:
        n += 1
    return f"{key} #{n}"


class TraceRedactor:
    """What trace sources call: redact JSON and text, count findings, sample trace ids."""

    def __init__(self, redactor: Redactor, key: RedactionKey, sample_rate: float = 1.0) -> None:
        self.redactor = redactor
        self.stats: Counter[str] = Counter()
        self.key_generated = key.generated
        self.key_path: Path | None = key.path
        self.sample_rate = sample_rate
        self._key = key.secret

    def redact_json(self, value: Any) -> Any:
        """`value` with every string redacted, dict keys included; non-strings are kept."""
        out, counts = redact_json(value, self.redactor)
        if counts:
            self.stats.update(counts)
        return out

    def redact_text(self, text: str) -> str:
        """`text` redacted."""
        out, findings = self.redactor.redact(text)
        self.stats.update(f.kind for f in findings)
        return out

    def sampled(self, trace_id: str) -> bool:
        """Whether the trace is kept at `settings.redaction.sample_rate` (keyed, deterministic)."""
        return sampled(trace_id, self.sample_rate, self._key)

    @property
    def notice(self) -> str | None:
        """One line for the user when a key was generated (it names the file, not the key)."""
        if not self.key_generated:
            return None
        return (
            f"generated a redaction key in {self.key_path} (owner-only); keep it with the "
            "warehouse: tokens stay stable only while the key does"
        )


def build_redactor(settings: Settings, redactor: Redactor | None = None) -> TraceRedactor:
    """The trace redactor of `settings`: its key (generated on first use if unset), the
    built-in detectors configured by it (or `redactor`), and its sampling rate."""
    key = resolve_key(settings)
    if redactor is None:
        redactor = BuiltinRedactor(RedactionConfig.from_settings(settings), key.secret)
    return TraceRedactor(redactor, key, settings.redaction.sample_rate)
