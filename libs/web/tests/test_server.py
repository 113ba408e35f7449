"""The API processes' server: its loop sleeps when idle, yet answers with a current Date
header and stops when told to."""

from __future__ import annotations

import signal
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import uvicorn
from rx_web.uvicorn_server import TICK_SECONDS, ApiServer


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_idle_server_keeps_its_date_header_current_and_stops_when_told() -> None:
    port = free_port()
    server = ApiServer(
        uvicorn.Config(hello, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.freeze_heap = False
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started

    time.sleep(4 * TICK_SECONDS)  # idle: a Date set at start-up would be 4 s old now
    answer = httpx.get(f"http://127.0.0.1:{port}/")
    assert answer.text == "hello"
    age = time.time() - parsedate_to_datetime(answer.headers["date"]).timestamp()
    assert -1 <= age <= 2 * TICK_SECONDS + 0.5, f"Date header {age:.1f} s old"

    server.handle_exit(signal.SIGTERM, None)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the server did not stop"
