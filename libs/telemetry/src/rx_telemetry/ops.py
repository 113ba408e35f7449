"""``/metrics``, ``/health`` and ``/ready`` for worker processes, on a port of their own.

A small threaded HTTP server beside the worker loop: the loop never waits for it, and a
scrape never waits for the loop. Readiness is the worker's own checks (its database answers,
the broker accepts connections)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .metrics import render
from .settings import telemetry_settings

log = logging.getLogger(__name__)

_STOP_CHECK_SECONDS = 3600.0

Check = Callable[[], None]
"""Raises if what it checks is not reachable."""


class OpsServer:
    def __init__(
        self, process: str, checks: Mapping[str, Check], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.process, self.checks = process, dict(checks)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # The interval is only how often the loop looks for a stop request (the default
            # wakes an idle worker twice a second); stop() wakes it with a connection instead.
            kwargs={"poll_interval": _STOP_CHECK_SECONDS},
            name=f"{process}-ops",
            daemon=True,
        )

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("%s serves /metrics, /health and /ready on port %d", self.process, self.port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            shutdown = threading.Thread(target=self._server.shutdown, daemon=True)
            shutdown.start()
            host, port = str(self._server.server_address[0]), self.port
            while shutdown.is_alive():
                # Wakes the loop from its wait; it sees the stop request and exits.
                with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
                    pass
                shutdown.join(0.05)
        self._server.server_close()

    def readiness(self) -> tuple[int, dict[str, str]]:
        body = {"status": "ready", "process": self.process}
        for name, check in self.checks.items():
            try:
                check()
                body[name] = "ok"
            except Exception as exc:
                body[name] = str(exc)[:200] or type(exc).__name__
                body["status"] = "unavailable"
        return (200 if body["status"] == "ready" else 503), body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, content_type = render()
                    self._answer(200, body, content_type)
                elif path == "/health":
                    self._json(200, {"status": "ok", "process": ops.process})
                elif path == "/ready":
                    self._json(*ops.readiness())
                else:
                    self._json(404, {"status": "not found"})

            def _json(self, status: int, body: dict[str, str]) -> None:
                self._answer(status, json.dumps(body).encode(), "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds are not news

        return Handler


def serve_ops(process: str, checks: Mapping[str, Check]) -> OpsServer | None:
    """Start the worker's ops endpoints on ``RX_METRICS_PORT`` (none set: nothing served).
    A port already taken is logged and the worker runs on without them."""
    settings = telemetry_settings()
    if settings.metrics_port is None:
        return None
    try:
        return OpsServer(process, checks, settings.metrics_host, settings.metrics_port).start()
    except OSError as exc:
        log.error("%s: cannot serve /metrics on port %s: %s", process, settings.metrics_port, exc)
        return None
