"""The stack's processes: a start that fails leaves nothing running; several processes per
role share each API port through the balancer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack import balancer
from devstack.polling import wait_for
from devstack.ports import free_ports, port_in_use
from devstack.stack import BALANCER, DEFAULT_PORTS, PROCESSES, Stack, StackError


def running_with(marker: str) -> list[int]:
    """Pids of live processes whose environment mentions ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(proc.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def test_a_stack_that_fails_to_start_stops_every_process_it_started(tmp_path: Path) -> None:
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    [no_broker] = free_ports(1)
    stack = Stack(tmp_path / "stack", f"127.0.0.1:{no_broker}", ports=ports)
    taken = socket.socket()
    taken.bind(("127.0.0.1", ports["audit"]))  # the audit API cannot listen: it exits
    taken.listen()
    try:
        with pytest.raises(StackError, match="audit-api exited"):
            stack.start(timeout=120)
    finally:
        taken.close()
    assert running_with(str(tmp_path / "stack")) == [], "processes of the failed start live on"
    assert stack.procs == {}


def test_with_replicas_every_role_has_numbered_processes_and_apis_their_own_ports(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, "127.0.0.1:9", replicas=2)
    names = stack.processes()
    assert len(names) == 2 * len(PROCESSES)
    assert stack.named("routing-consumer") == ["routing-consumer.1", "routing-consumer.2"]
    api = stack.env(names["referrals-api.2"], "referrals-api.2")
    assert api["REFERRALS_PORT"] == str(stack.api_ports["referrals-api.2"]) != "8001"
    worker_ports = {stack.ops_url(n) for n, spec in names.items() if not spec.is_api}
    assert len(worker_ports) == sum(1 for spec in names.values() if not spec.is_api)
    assert BALANCER.name in stack.names()
    portal = [
        stack.env(spec, n)["PORTAL_SESSION_SECRET"]
        for n, spec in names.items()
        if spec.service == "portal"
    ]
    assert len(portal) == 2 and portal[0] == portal[1], (
        "a session signed by one is good at the other"
    )
    assert Stack(tmp_path, "127.0.0.1:9").names() == ["issuer-api", *(s.name for s in PROCESSES)]


@pytest.fixture
def echo_servers() -> Iterator[list[int]]:
    """Two TCP servers on free ports, each answering any line with its own port."""
    ports = free_ports(2)
    listeners = []
    for port in ports:
        sock = socket.create_server(("127.0.0.1", port))
        listeners.append(sock)

        def serve(sock: socket.socket = sock, port: int = port) -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(100)
                    conn.sendall(str(port).encode())

        threading.Thread(target=serve, daemon=True).start()
    yield ports
    for sock in listeners:
        sock.close()


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"which?\n")
        conn.shutdown(socket.SHUT_WR)
        return conn.recv(100).decode()


def test_the_balancer_takes_the_processes_in_turn_and_skips_one_that_is_down(
    echo_servers: list[int],
) -> None:
    [front, down] = free_ports(2)  # nothing listens on ``down``
    route = f"{front}={echo_servers[0]},{down},{echo_servers[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "devstack.balancer", route])
    try:
        wait_for("the balancer to listen", lambda: port_in_use(front), timeout=30)
        answers = [ask(front) for _ in range(6)]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0, "it stops cleanly on SIGTERM"
    assert set(answers) == {str(p) for p in echo_servers}, "both processes answer"
    assert all(answers), "the one down is skipped, no caller refused"


def test_a_balancer_route_must_name_a_port_and_its_processes() -> None:
    with pytest.raises(ValueError, match="8001"):
        balancer.parse(["8001="])
