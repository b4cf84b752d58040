"""What `evalkeeper listen` checks before it serves, and the OTLP paths' bearer tokens.

- `secret_problems(settings)`: one line per configured secret that cannot be a key (empty,
  a `whsec_` that is not base64, under 16 bytes once decoded), naming its variable:
  `EVALKEEPER_WEBHOOK_SECRET`, `EVALKEEPER_ROLLBACK_SECRET`, `EVALKEEPER_REDACTION_KEY`,
  `EVALKEEPER_OTLP_TOKENS`. `listen` prints them and exits 2.
- `exposure_problem(host, settings)`: binding to an address other than loopback without
  `EVALKEEPER_OTLP_TOKENS` lets anyone who reaches the port send traces (and so drive a
  rollback); `listen` refuses unless `--insecure-no-otlp-auth`.
- `OtlpAuth`: with tokens configured, an OTLP request is served only with `Authorization:
  Bearer <one of them>` (compared in constant time); otherwise it gets 401 (a
  `google.rpc.Status` UNAUTHENTICATED in the request's encoding, `WWW-Authenticate:
  Bearer`) before its body is read. Without tokens every request is served.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

from fastapi import Response
from pydantic import SecretStr

from evalkeeper.monitor.signing import MIN_KEY_BYTES, key_problem
from evalkeeper.settings import Settings
from evalkeeper.traces.otlp import JSON, PROTOBUF, encode_status

__all__ = ["OtlpAuth", "exposure_problem", "is_loopback", "otlp_tokens", "secret_problems"]

TOKENS_VARIABLE = "EVALKEEPER_OTLP_TOKENS"
_UNAUTHENTICATED = 16  # google.rpc.Code


def otlp_tokens(tokens: SecretStr | None) -> list[str]:
    """The tokens of `EVALKEEPER_OTLP_TOKENS` (comma-separated, blanks around them ignored)."""
    if tokens is None:
        return []
    return [t.strip() for t in tokens.get_secret_value().split(",") if t.strip()]


def secret_problems(settings: Settings) -> list[str]:
    """One line per configured secret that cannot be a key; empty when all can."""
    problems = []
    monitor = settings.monitor
    for secret, variable, standard in (
        (monitor.webhook_secret, "EVALKEEPER_WEBHOOK_SECRET", True),
        (monitor.rollback_secret, "EVALKEEPER_ROLLBACK_SECRET", True),
        (settings.redaction.key, "EVALKEEPER_REDACTION_KEY", False),
    ):
        if secret is not None:
            problem = key_problem(secret.get_secret_value(), variable, standard=standard)
            if problem is not None:
                problems.append(problem)
    if settings.otlp.tokens is not None:
        tokens = otlp_tokens(settings.otlp.tokens)
        how = f'e.g. {TOKENS_VARIABLE}="$(openssl rand -hex 32)"'
        if not tokens:
            problems.append(f"{TOKENS_VARIABLE} is set but holds no token; set one ({how})")
        elif short := sum(len(t.encode()) < MIN_KEY_BYTES for t in tokens):
            problems.append(
                f"{TOKENS_VARIABLE}: {short} of its {len(tokens)} token(s) under "
                f"{MIN_KEY_BYTES} bytes; use random tokens ({how})"
            )
    return problems


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (`127.0.0.1`, `::1`, `localhost`); any other
    name or address (`0.0.0.0`, a hostname) is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, settings: Settings) -> str | None:
    """Why serving OTLP on `host` without tokens is refused, or None."""
    if is_loopback(host) or otlp_tokens(settings.otlp.tokens):
        return None
    return (
        f"--host {host} is reachable from other machines and {TOKENS_VARIABLE} is unset: "
        "anyone could send traces (and drive a rollback); set the tokens, bind to "
        "127.0.0.1, or pass --insecure-no-otlp-auth"
    )


class OtlpAuth:
    """The bearer-token check of the OTLP paths."""

    def __init__(self, tokens: SecretStr | None) -> None:
        # digests: every comparison has the same length, whatever the token's
        self._digests = [hashlib.sha256(t.encode()).digest() for t in otlp_tokens(tokens)]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def allows(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries one of the tokens (constant time)."""
        if not self._digests:
            return True
        scheme, _, given = (authorization or "").strip().partition(" ")
        digest = hashlib.sha256(given.strip().encode()).digest()
        matched = False
        for expected in self._digests:  # no early exit: the time says nothing of which
            matched |= hmac.compare_digest(digest, expected)
        return matched and scheme.lower() == "bearer"

    def refusal(self, headers: Mapping[str, str]) -> Response | None:
        """The 401 answer of a request without a valid token, or None to serve it."""
        if self.allows(headers.get("authorization")):
            return None
        kind = PROTOBUF if "protobuf" in (headers.get("content-type") or "").lower() else JSON
        given = "a wrong" if headers.get("authorization") else "no"
        message = (
            f"{given} bearer token: send Authorization: Bearer <token> with one of "
            f'{TOKENS_VARIABLE} (OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token>")'
        )
        return Response(
            encode_status(kind, _UNAUTHENTICATED, message),
            status_code=401,
            media_type=kind,
            headers={"WWW-Authenticate": "Bearer"},
        )
