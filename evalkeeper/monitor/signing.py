"""HMAC signatures of webhooks, both ways: Standard Webhooks and GitHub's `X-Hub-Signature-256`.

Standard Webhooks (https://www.standardwebhooks.com/): the signed content is
`{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256, base64, sent as
`webhook-signature: v1,<sig>`; several space-separated signatures (key rotation) are
accepted when any one matches; a timestamp further than the tolerance (5 minutes) from
now is refused, so a captured request cannot be replayed later. A secret written
`whsec_<base64>` is the base64-decoded key (the spec's form); any other text is used as its
UTF-8 bytes. Signing goes through the `standardwebhooks` package itself. `key_problem` says
why a secret cannot be a key (empty, bad base64 after `whsec_`, under 16 bytes once
decoded): `evalkeeper listen` refuses to start with one, and the webhooks refuse to verify;
`require_key` raises it as a `WeakSecret` (an `InputError`: one line, exit 2) wherever a
configured key is about to be used (a rollback signed by a tick, a redaction).

GitHub signs the raw body with the webhook secret's text: `X-Hub-Signature-256:
sha256=<hex HMAC-SHA256>`.

Every comparison is constant-time (`hmac.compare_digest`); no error message carries a
secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from evalkeeper.errors import ConfigError, InputError

PREFIX = "whsec_"
TOLERANCE_S = 300.0
MIN_KEY_BYTES = 16
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
"""A command that prints a random key (32 bytes, URL-safe base64: 43 characters)."""


class SignatureError(InputError, ValueError):
    """A request that is unsigned, forged or stale; the message says which (never the secret)."""


class MalformedHeaders(InputError, ValueError):
    """Signature headers that cannot be read (a timestamp that is not a number)."""


class WeakSecret(ConfigError):
    """A configured secret that cannot be a key (`key_problem`); the message names the
    variable and how to make a key, never the secret."""


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_<base64>`, or raw text)."""
    if secret.startswith(PREFIX):
        text = secret[len(PREFIX) :]
        try:  # strict base64 (its padding may be left out)
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise ValueError(
                "the webhook secret starts with whsec_ but is not base64 after it; write "
                "whsec_ followed by the base64 key, or the secret without the prefix"
            ) from None
    return secret.encode()


def key_problem(secret: str, variable: str, *, standard: bool = True) -> str | None:
    """Why `secret` (read from `variable`) cannot be an HMAC key, or None: empty, a
    `whsec_` that is not base64 (when `standard`), or under MIN_KEY_BYTES once decoded.
    The message names the variable, never the secret."""
    how = (
        f'e.g. {variable}="whsec_$(openssl rand -base64 32)"'
        if standard
        else f'e.g. {variable}="$(openssl rand -hex 32)"'
    ) + f', or {variable}="$({MAKE_KEY})"'
    try:
        key = standard_key(secret) if standard else secret.encode()
    except ValueError:
        return (
            f"{variable} starts with whsec_ but what follows is not base64; write whsec_ "
            f"and the base64 key ({how})"
        )
    if not key:
        return (
            f"{variable} is set but empty: an empty key protects nothing; set a random key ({how})"
        )
    if len(key) < MIN_KEY_BYTES:
        return (
            f"{variable} is {len(key)} byte(s) long once decoded, under the {MIN_KEY_BYTES} a "
            f"key needs; set a random key ({how})"
        )
    return None


def require_key(secret: SecretStr | None, variable: str, *, standard: bool = True) -> None:
    """Raise `WeakSecret` when `secret` (read from `variable`) is configured but cannot be
    a key (`key_problem`); an unset one is the caller's to handle."""
    if secret is not None:
        problem = key_problem(secret.get_secret_value(), variable, standard=standard)
        if problem is not None:
            raise WeakSecret(problem)


def sign_standard(secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a request (signed by `standardwebhooks`)."""
    signature = Webhook(standard_key(secret)).sign(msg_id, timestamp, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


def verify_standard(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> str:
    """The verified `webhook-id`; SignatureError (or MalformedHeaders) otherwise."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    stamp = lower.get("webhook-timestamp", "")
    signatures = lower.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureError(
            "unsigned: webhook-id, webhook-timestamp and webhook-signature are all required"
        )
    try:
        sent = int(stamp)
    except ValueError:
        raise MalformedHeaders("webhook-timestamp: not whole seconds since 1970") from None
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - sent) > tolerance_s:
        raise SignatureError(
            f"stale: webhook-timestamp is {abs(current - sent):.0f}s from now, more than the "
            f"{tolerance_s:g}s allowed (a replay, or a clock to fix)"
        )
    to_sign = f"{msg_id}.{sent}.".encode() + body
    expected = hmac.new(standard_key(secret), to_sign, hashlib.sha256).digest()
    for versioned in signatures.split():
        version, _, value = versioned.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected, given):
            return msg_id
    raise SignatureError("forged: no webhook-signature matches the configured secret")


def github_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` of a body: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, header: str | None, body: bytes) -> None:
    """SignatureError unless `header` is the body's `X-Hub-Signature-256` under `secret`."""
    if not header:
        raise SignatureError("unsigned: X-Hub-Signature-256 is required")
    if not hmac.compare_digest(github_signature(secret, body).encode(), header.strip().encode()):
        raise SignatureError("forged: X-Hub-Signature-256 does not match the configured secret")
