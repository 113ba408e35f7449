"""``python -m routing api|relay|consumer|clock|seed|replay``."""

from __future__ import annotations

import sys

from rx_web.server import run_process, serve

from .config import get_settings
from .entrypoints import replay_cli, seed, workers


def api() -> None:
    settings = get_settings()
    serve("routing.entrypoints.api.app:create_app", settings.host, settings.port)


if __name__ == "__main__":
    raise SystemExit(
        run_process(
            "routing",
            sys.argv[1:],
            {
                "api": api,
                "relay": workers.relay,
                "consumer": workers.consumer,
                "clock": workers.clock,
                "seed": seed.main,
                "replay": replay_cli.run,
            },
        )
    )
