"""``python -m notify api|worker|relay|migrate``."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings
from .entrypoints import migrate, workers


def api() -> None:
    settings = get_settings()
    serve("notify.entrypoints.api.app:create_app", settings.host, settings.port)


if __name__ == "__main__":
    raise SystemExit(
        run_process(
            "notify",
            sys.argv[1:],
            {
                "api": api,
                "worker": workers.worker,
                "relay": workers.relay,
                "migrate": migrate.main,
            },
        )
    )
