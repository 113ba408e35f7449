"""The services' apps in-process, verifying real tokens from an in-process issuer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from audit.config import Settings as AuditSettings
from audit.entrypoints.api.app import create_app as audit_app
from fastapi import FastAPI
from fastapi.testclient import TestClient
from issuer.testing import TestIssuer
from notify.config import Settings as NotifySettings
from notify.entrypoints.api.app import create_app as notify_app
from referrals.config import Settings as ReferralsSettings
from referrals.entrypoints.api.app import create_app as referrals_app
from routing.config import Settings as RoutingSettings
from routing.entrypoints.api.app import create_app as routing_app

AppFactory = Callable[[str], FastAPI]


def no_dns(host: str, port: int) -> list[str]:
    """Endpoint names resolve to nothing here: these tests never look a name up."""
    raise OSError(f"{host} is not resolved in these tests")


SERVICES: dict[str, AppFactory] = {
    "referrals": lambda url: referrals_app(ReferralsSettings(database_url=url)),
    "routing": lambda url: routing_app(RoutingSettings(database_url=url)),
    "audit": lambda url: audit_app(AuditSettings(database_url=url)),
    "notify": lambda url: notify_app(NotifySettings(database_url=url), resolver=no_dns),
}
"""Every service's API, built as its ``python -m <service> api`` builds it."""


@pytest.fixture
def issuer(tmp_path: Path) -> TestIssuer:
    return TestIssuer(tmp_path / "issuer")


@pytest.fixture
def tokens_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built now take tokens (development, so the demo clients work), no rate limit."""
    monkeypatch.setenv("RX_ENV", "development")
    monkeypatch.delenv("RX_AUTH", raising=False)
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", "0")


@pytest.fixture
def service_client(
    tmp_path: Path, issuer: TestIssuer, tokens_env: None
) -> Iterator[Callable[[str], TestClient]]:
    """``service_client("referrals")``: that service's app on a fresh SQLite database, taking
    tokens from ``issuer``; started (lifespan) and stopped with the test."""
    clients: list[TestClient] = []

    def start(service: str) -> TestClient:
        app = SERVICES[service](f"sqlite:///{tmp_path / service}.db")
        issuer.attach(app)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)
