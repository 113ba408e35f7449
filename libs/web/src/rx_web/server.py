"""Running an API process with uvicorn, and logging set up the same way for every process."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TextIO

from rx_telemetry.logs import JsonFormatter
from rx_telemetry.settings import telemetry_settings
from rx_telemetry.tracing import configure_tracing

from .redaction import RedactingFilter


def configure_logging(process: str, stream: TextIO | None = None) -> None:
    """One handler on the root logger, for every library's records (uvicorn's included),
    scrubbed of secrets and patient identifiers (:mod:`rx_web.redaction`), written as JSON
    lines with the process's service and role and the ids of what it was doing
    (:mod:`rx_telemetry.logs`), or as plain text with ``RX_LOG_FORMAT=text``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if telemetry_settings().log_format == "json":
        service, _, role = process.partition("-")
        handler.setFormatter(JsonFormatter(service, role))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
        )
    handler.addFilter(RedactingFilter())
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), handlers=[handler], force=True
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings become records too: every line is one format


def serve(app_factory: str, host: str, port: int) -> None:
    """Serve ``module:factory`` (a zero-argument app factory) on host:port."""
    import uvicorn

    from .uvicorn_server import ApiServer, http_protocol

    # log_config=None: uvicorn's loggers propagate to the root handler configure_logging set
    # up, so its error tracebacks are scrubbed like everything else.
    config = uvicorn.Config(
        app_factory,
        factory=True,
        host=host,
        port=port,
        http=http_protocol(),
        log_level="warning",
        access_log=False,
        log_config=None,
    )
    ApiServer(config).run()


def run_process(service: str, argv: list[str], roles: dict[str, Callable[[], None]]) -> int:
    """``python -m <service> <role>``: one code base, one process per role."""
    role = argv[0] if argv else ""
    if role not in roles:
        print(f"usage: python -m {service} {'|'.join(roles)}", file=sys.stderr)
        return 2
    configure_logging(f"{service}-{role}")
    configure_tracing(f"{service}-{role}")
    roles[role]()
    return 0
