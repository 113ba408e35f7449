"""The API processes' HTTP protocol writes an answer with a Content-Length in one piece, and
answers everything else (keep-alive, HEAD, streaming, an app failing mid-answer) as uvicorn
does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from rx_web.uvicorn_server import ApiServer, OneWriteProtocol

WRITES: list[bytes] = []


class CountingProtocol(OneWriteProtocol):
    """Records every write that reaches the connection's transport."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        real = self.transport

        class Recording:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def write(self, data: bytes) -> None:
                WRITES.append(bytes(data))
                real.write(data)

        self.transport = Recording()  # type: ignore[assignment]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/fail":
        raise RuntimeError("the app fails after starting its answer")
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CountingProtocol, log_config=None
    )
    server = ApiServer(config)
    server.freeze_heap = False
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.handle_exit(15, None)
    thread.join(timeout=10)


def test_an_answer_with_a_content_length_is_one_write_and_keep_alive_holds(
    base_url: str,
) -> None:
    with httpx.Client(base_url=base_url) as client:
        WRITES.clear()
        first = client.get("/")
        second = client.get("/")
    assert first.text == second.text == "hello"
    assert first.headers["content-length"] == "5"
    assert len(WRITES) == 2, WRITES  # one per answer, the same connection kept
    assert all(
        w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"\r\n\r\nhello") for w in WRITES
    )


def test_head_answers_headers_only(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        WRITES.clear()
        answer = client.head("/")
        again = client.get("/")
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["content-length"] == "5"
    assert again.text == "hello"
    assert len(WRITES) == 2 and WRITES[0].endswith(b"\r\n\r\n")


def test_a_streamed_answer_sends_its_headers_at_once_then_its_chunks(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        WRITES.clear()
        answer = client.get("/stream")
    assert answer.text == "one,two"
    assert answer.headers["transfer-encoding"] == "chunked"
    assert WRITES[0].endswith(b"\r\n\r\n"), "the headers go out before the first chunk"
    assert len(WRITES) == 4


def test_an_app_failing_after_its_start_sends_the_headers_then_closes(base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\n"), "the headers, no body, then the connection closed"
