"""The test session's servers (brokers, PostgreSQL) start on ports just found free: a port
another process takes before the server binds it costs another try, not the session; any
other failure ends the session at once with the server's own message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from devstack.errors import BrokerError, PortInUseError
from devstack.pytest_plugin import _PORT_ATTEMPTS, _start_on_free_ports


class Server:
    def __init__(self, port: int, failure: Exception | None) -> None:
        self.port, self.failure, self.started = port, failure, False

    @property
    def log_file(self) -> Path:
        return Path(f"/nowhere/{self.port}.log")

    def start(self) -> None:
        if self.failure is not None:
            raise self.failure
        self.started = True


def builder(
    failures: list[Exception | None],
) -> tuple[list[Server], Callable[[], tuple[Server, str]]]:
    built: list[Server] = []

    def build() -> tuple[Server, str]:
        server = Server(9000 + len(built), failures[len(built)])
        built.append(server)
        return server, f"a server at {server.port}"

    return built, build


def start(config: pytest.Config, failures: list[Exception | None]) -> list[Server]:
    built, build = builder(failures)
    _start_on_free_ports(
        config, "test server", build, port_taken=PortInUseError, failed=BrokerError
    )
    return built


def test_a_port_taken_meanwhile_is_tried_again_on_other_ports(
    pytestconfig: pytest.Config,
) -> None:
    built = start(pytestconfig, [PortInUseError("taken"), None])
    assert [(s.port, s.started) for s in built] == [(9000, False), (9001, True)]


def test_a_port_taken_every_time_fails_after_the_last_try(pytestconfig: pytest.Config) -> None:
    with pytest.raises(pytest.fail.Exception, match="the test server did not start: taken 3"):
        start(pytestconfig, [PortInUseError(f"taken {n + 1}") for n in range(_PORT_ATTEMPTS)])


def test_any_other_failure_ends_at_once(pytestconfig: pytest.Config) -> None:
    failures: list[Exception | None] = [BrokerError("no java"), None]
    with pytest.raises(pytest.fail.Exception, match="the test server did not start: no java"):
        start(pytestconfig, failures)
