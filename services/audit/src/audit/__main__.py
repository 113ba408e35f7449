"""``python -m audit api|consumer|relay|verify|checkpoint-key|migrate``."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings
from .entrypoints import checkpoint_key, migrate, verify, workers


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
                "checkpoint-key": checkpoint_key.main,
                "migrate": migrate.main,
            },
        )
    )
