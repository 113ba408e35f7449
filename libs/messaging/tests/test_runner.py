"""Workers started before the broker wait for it without piling up half-built clients."""

from __future__ import annotations

import socket
import threading

from rx_messaging.runner import _connect


def test_no_client_is_built_until_the_broker_answers_and_stop_ends_the_wait() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    built: list[int] = []
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert _connect(lambda: built.append(1), stop, "test", f"127.0.0.1:{port}") is None
    assert built == []


def test_the_client_is_built_once_the_broker_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        bootstrap = f"127.0.0.1:{server.getsockname()[1]}"
        client = _connect(lambda: "client", threading.Event(), "test", f"127.0.0.1:1,{bootstrap}")
    assert client == "client"
