"""``python -m portal api``: serve the portal."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings


def api() -> None:
    settings = get_settings()
    serve("portal.entrypoints.app:create_app", settings.host, settings.port)


if __name__ == "__main__":
    raise SystemExit(run_process("portal", sys.argv[1:] or ["api"], {"api": api}))
