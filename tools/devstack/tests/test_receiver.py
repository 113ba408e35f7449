"""The test receiver behaves as a real webhook endpoint: a request cut short by its sender
(a notify worker killed between the headers and the body) is not a delivery."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
from devstack.receiver import Receiver


def _send_raw(url: str, payload: bytes) -> bytes:
    """Send ``payload`` on a fresh connection, close our side, read until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_a_request_cut_short_is_not_a_delivery_and_a_whole_one_is() -> None:
    receiver = Receiver().start()
    try:
        path = urlsplit(receiver.url).path or "/"
        cut = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n"
        ).encode() + b'{"eventnumber"'
        assert _send_raw(receiver.url, cut) == b"", "no answer to a request never finished"
        assert receiver.received() == []

        answer = httpx.post(receiver.url, json={"eventnumber": 1}, timeout=10)
        assert answer.status_code == 200
        assert [d.json() for d in receiver.received()] == [{"eventnumber": 1}]
    finally:
        receiver.stop()
