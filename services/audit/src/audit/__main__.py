"""``python -m audit api|consumer|relay|verify|migrate``."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings
from .entrypoints import migrate, verify, workers


def api() -> None:
    settings = get_settings()
    serve("audit.entrypoints.api.app:create_app", settings.host, settings.port)


def verify_chain() -> None:
    raise SystemExit(verify.main())


if __name__ == "__main__":
    raise SystemExit(
        run_process(
            "audit",
            sys.argv[1:],
            {
                "api": api,
                "consumer": workers.consumer,
                "relay": workers.relay,
                "verify": verify_chain,
                "migrate": migrate.main,
            },
        )
    )
