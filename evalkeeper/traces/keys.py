"""The redaction key: from settings, or generated once and kept beside the warehouse.

The key is the HMAC key of the redaction tokens and, through a derived key, of trace
sampling. When `settings.redaction.key` is unset, 32 random bytes are generated on first
use and written as hex to `<warehouse dir>/.evalkeeper-redaction.key` (owner-only, 0o600,
created atomically so two processes starting together agree on one key). The key bytes
are the file's text, so `EVALKEEPER_REDACTION_KEY=$(cat data/.evalkeeper-redaction.key)`
gives the same tokens. The key is never logged, printed or part of any repr. A configured
key that is empty or under 16 bytes is refused (`evalkeeper.monitor.signing.WeakSecret`,
naming `EVALKEEPER_REDACTION_KEY` and how to make a key): every redaction asks for the key
here, so `traces ingest`, `listen`, `promote`, a tick's ingest and a backtest all refuse it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from evalkeeper.errors import ConfigError
from evalkeeper.monitor.signing import require_key
from evalkeeper.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE_NAME = ".evalkeeper-redaction.key"
REDACTION_KEY_VARIABLE = "EVALKEEPER_REDACTION_KEY"


@dataclass(frozen=True)
class RedactionKey:
    """The key material and where it came from.

    secret: the HMAC key bytes (never shown in repr).
    generated: True when this call created the key file (say so once, never the key).
    path: the key file, or None when the key came from settings.
    """

    secret: bytes = field(repr=False)
    generated: bool = False
    path: Path | None = None


def key_path(settings: Settings) -> Path:
    """Where the generated key lives: beside the warehouse file."""
    return settings.warehouse.parent / KEY_FILE_NAME


def resolve_key(settings: Settings) -> RedactionKey:
    """The redaction key of `settings`; generate and store one if none is configured."""
    if settings.redaction.key is not None:
        # empty or under 16 bytes: refused (`WeakSecret`, naming the variable), never used
        require_key(settings.redaction.key, REDACTION_KEY_VARIABLE, standard=False)
        return RedactionKey(secret=settings.redaction.key.get_secret_value().encode())
    return load_or_create(key_path(settings))


def load_or_create(path: Path) -> RedactionKey:
    """Read the key file at `path`, or create it (0o600, atomically) if it does not exist."""
    if path.exists():
        return RedactionKey(secret=_read(path), path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(32).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process wrote
        except FileExistsError:
            return RedactionKey(secret=_read(path), path=path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.info("generated a new redaction key in %s (owner-only permissions)", path)
    return RedactionKey(secret=_read(path), generated=True, path=path)


def _read(path: Path) -> bytes:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "redaction key file %s is readable by others (mode %o); run `chmod 600 %s`",
            path,
            mode,
            path,
        )
    secret = path.read_text().strip().encode()
    if not secret:
        raise ConfigError(
            f"{path}: redaction key file is empty; delete it to generate a new key (tokens "
            "change) or restore it from a backup"
        )
    return secret
