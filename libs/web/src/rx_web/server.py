"""Running an API process with uvicorn, and logging set up the same way for every process."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TextIO

from .redaction import RedactingFilter


def configure_logging(process: str, stream: TextIO | None = None) -> None:
    """One handler on the root logger, for every library's records (uvicorn's included),
    scrubbed of secrets and patient identifiers (:mod:`rx_web.redaction`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), handlers=[handler], force=True
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def serve(app_factory: str, host: str, port: int) -> None:
    """Serve ``module:factory`` (a zero-argument app factory) on host:port."""
    import uvicorn

    # log_config=None: uvicorn's loggers propagate to the root handler configure_logging set
    # up, so its error tracebacks are scrubbed like everything else.
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        log_config=None,
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
