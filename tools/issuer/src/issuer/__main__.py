"""``python -m issuer [api|rotate-key]``: serve tokens (the default), or rotate the signing key."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings
from .keys import KeyStore


def api() -> None:
    settings = get_settings()
    serve("issuer.app:create_app", settings.host, settings.port)


def rotate_key() -> None:
    """Add a new signing key; a running issuer signs with it from its next token, and keeps
    publishing the previous keys so tokens already issued stay valid until they expire."""
    settings = get_settings()
    key = KeyStore(settings.keys_file, settings.algorithm, settings.keys_kept).rotate()
    print(f"new signing key {key.kid} in {settings.keys_file}")


if __name__ == "__main__":
    raise SystemExit(
        run_process("issuer", sys.argv[1:] or ["api"], {"api": api, "rotate-key": rotate_key})
    )
