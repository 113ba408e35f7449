"""``python -m audit api|consumer|relay|verify|migrate``."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from . import cli
from .config import get_settings
from .workers import consumer, relay


def api() -> None:
    settings = get_settings()
    serve("audit.api:create_app", settings.host, settings.port)


def verify() -> None:
    raise SystemExit(cli.verify())


if __name__ == "__main__":
    raise SystemExit(
        run_process(
            "audit",
            sys.argv[1:],
            {
                "api": api,
                "consumer": consumer,
                "relay": relay,
                "verify": verify,
                "migrate": cli.migrate,
            },
        )
    )
