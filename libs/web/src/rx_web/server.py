"""Running an API process with uvicorn, and logging set up the same way for every process."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable


def configure_logging(process: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def serve(app_factory: str, host: str, port: int) -> None:
    """Serve ``module:factory`` (a zero-argument app factory) on host:port."""
    import uvicorn

    uvicorn.run(
        app_factory, factory=True, host=host, port=port, log_level="warning", access_log=False
    )


def run_process(service: str, argv: list[str], roles: dict[str, Callable[[], None]]) -> int:
    """``python -m <service> <role>``: one code base, one process per role."""
    role = argv[0] if argv else ""
    if role not in roles:
        print(f"usage: python -m {service} {'|'.join(roles)}", file=sys.stderr)
        return 2
    configure_logging(f"{service}-{role}")
    roles[role]()
    return 0
