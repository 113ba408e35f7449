"""A webhook receiver for tests and benchmarks: an HTTP server on loopback that records what it
is sent and can be told to misbehave (be down, answer 500, hang past the sender's timeout,
answer slowly), as a provider's endpoint would.

Deliveries are recorded with their arrival time and headers; ``verified(secret)`` checks every
Standard Webhooks signature with the off-the-shelf ``standardwebhooks`` library."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


class Mode(StrEnum):
    OK = "ok"
    ERROR = "error"  # 500
    HANG = "hang"  # answers after ``hang_seconds`` (past the sender's timeout)
    SLOW = "slow"  # answers 200 after ``slow_seconds``


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = 0
    mode: Mode = Mode.OK
    hang_seconds: float = 5.0
    slow_seconds: float = 0.3
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0
    on_delivery: Callable[[Delivery], None] | None = None
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        """Listen (again, on the same port after ``stop``)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-request (a worker killed between the
                    # headers and the body): a real endpoint never sees that as a delivery.
                    self.close_connection = True
                    return
                with receiver._lock:
                    receiver.attempts += 1
                    mode = receiver.mode
                if mode is Mode.HANG:
                    time.sleep(receiver.hang_seconds)
                elif mode is Mode.SLOW:
                    time.sleep(receiver.slow_seconds)
                status = 500 if mode is Mode.ERROR else 200
                if mode in (Mode.OK, Mode.SLOW):
                    delivery = Delivery(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                        status,
                    )
                    with receiver._lock:
                        receiver.deliveries.append(delivery)
                    if receiver.on_delivery is not None:
                        receiver.on_delivery(delivery)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set(self, mode: Mode) -> None:
        with self._lock:
            self.mode = mode

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def unique(self, key: Callable[[Delivery], Any]) -> list[Delivery]:
        """Deliveries with repeats (same ``key``, e.g. webhook-id) dropped, first arrival kept."""
        seen: set[Any] = set()
        found = []
        for delivery in self.received():
            k = key(delivery)
            if k not in seen:
                seen.add(k)
                found.append(delivery)
        return found

    def verified(self, *secrets: str) -> bool:
        """Whether every delivery verifies with at least one of ``secrets``."""
        for delivery in self.received():
            ok = False
            for secret in secrets:
                try:
                    Webhook(secret).verify(delivery.body, delivery.headers)
                    ok = True
                    break
                except Exception:
                    continue
            if not ok:
                return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
