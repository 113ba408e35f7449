"""Abuse limits every service gets from rx_web.app.service_app: a per-client rate limit (429
with Retry-After), security headers on every answer, and body size limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from issuer.testing import TestIssuer
from rx_web.headers import API_CSP, HSTS

from .conftest import SERVICES

pytestmark = pytest.mark.usefixtures("tokens_env")

READS = {
    "referrals": "/referrals",
    "routing": "/organisations",
    "audit": "/audit/verify",
    "notify": "/subscriptions",
}
"""A read each service answers for the ops client (allowed everywhere)."""


@pytest.fixture
def limited(
    tmp_path: Path, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], TestClient]:
    """A service whose clients may send 3 requests at once, then one every 10 s."""
    monkeypatch.setenv("RX_RATE_LIMIT_PER_SECOND", "0.1")
    monkeypatch.setenv("RX_RATE_LIMIT_BURST", "3")

    def start(service: str) -> TestClient:
        app = SERVICES[service](f"sqlite:///{tmp_path / service}.db")
        issuer.attach(app)
        return TestClient(app)

    return start


@pytest.mark.parametrize("service", SERVICES)
def test_a_client_over_its_rate_is_told_to_retry_later_and_others_are_not_affected(
    service: str, limited: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    with limited(service) as client:
        ops = issuer.headers("ops", service)
        answers = [client.get(READS[service], headers=ops) for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        refused = answers[3]
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        assert refused.json()["title"] == "Too many requests"
        assert refused.headers["x-content-type-options"] == "nosniff", "headers on a 429 too"

        admin = issuer.headers("admin", service)
        assert client.get(READS[service], headers=admin).status_code in (200, 403), (
            "another client has its own allowance"
        )
        assert client.get("/health").status_code == 200, "probes are never limited"


def test_bad_tokens_are_counted_per_address_not_against_the_client_they_name(
    limited: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    with limited("referrals") as client:
        forged = {"Authorization": "Bearer eyJhbGciOiJFZERTQSJ9.eyJjbGllbnRfaWQiOiJyeGEwMSJ9.x"}
        statuses = [client.get("/referrals", headers=forged).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        real = issuer.headers("rxa01", "referrals")
        assert client.get("/referrals", headers=real).status_code == 200


@pytest.mark.parametrize("service", SERVICES)
def test_every_answer_carries_the_security_headers(
    service: str, service_client: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    client = service_client(service)
    for response in (
        client.get(READS[service], headers=issuer.headers("ops", service)),
        client.get(READS[service]),  # 401
        client.get("/nope"),  # 404
    ):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store", "API answers carry patient data"
        assert headers["content-security-policy"] == API_CSP
        assert "strict-transport-security" not in headers, "development serves plain HTTP"
    docs = client.get("/docs")
    assert docs.headers["content-type"].startswith("text/html")
    csp = docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_production_adds_hsts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, issuer: TestIssuer
) -> None:
    monkeypatch.setenv("RX_ENV", "production")
    app = SERVICES["routing"](f"sqlite:///{tmp_path / 'routing.db'}")
    with TestClient(app) as client:
        assert client.get("/health").headers["strict-transport-security"] == HSTS


def test_bodies_over_the_limit_are_refused_before_they_are_read(
    service_client: Callable[[str], TestClient], issuer: TestIssuer
) -> None:
    client = service_client("referrals")
    response = client.post(
        "/referrals",
        content=b"{" + b" " * 1_100_000 + b"}",
        headers={**issuer.headers("b81001", "referrals"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
