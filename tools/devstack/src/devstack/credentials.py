"""Kafka passwords of the local stack: generated once, kept in a file only its owner may read.

``make run`` keeps them next to the broker's data (``.run/kafka/credentials.json``), so they
live exactly as long as the users they belong to: delete the broker's data and both go.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .errors import BrokerError

FILE_NAME = "credentials.json"


class CredentialsError(BrokerError):
    """The credentials file is unreadable or not a mapping of names to passwords."""


def new_password() -> str:
    """32 URL-safe random characters (192 bits): safe inside JAAS strings and URLs."""
    return secrets.token_urlsafe(24)


def load(path: Path) -> dict[str, str]:
    """Passwords by user name from ``path``; empty if the file does not exist."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read Kafka credentials from {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise CredentialsError(f"{path} is not a JSON object of user name -> password")
    return data


def load_or_create(path: Path, names: Iterable[str]) -> dict[str, str]:
    """Passwords for ``names``: those in ``path`` are kept, missing ones are generated (a new
    provider type gets its user on the next start) and the file is rewritten mode 0600."""
    passwords = load(path)
    missing = [name for name in names if name not in passwords]
    if missing or (path.exists() and path.stat().st_mode & 0o077):
        passwords.update({name: new_password() for name in missing})
        _write_private(path, passwords)
    return passwords


def _write_private(path: Path, passwords: dict[str, str]) -> None:
    """Write via a 0600 temporary file and rename, so the secrets are never readable by others,
    not even for a moment, and a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # a leftover could have other permissions
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(passwords, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)
