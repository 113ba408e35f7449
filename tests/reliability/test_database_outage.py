"""The referrals database goes away mid-traffic: callers get 503 with Retry-After (not a 500),
nothing half-written stays behind, and a retry with the same Idempotency-Key after recovery
stores the referral exactly once."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack.ports import free_ports
from devstack.postgres import PostgresServer, ensure_postgres_installed
from fastapi.testclient import TestClient
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_web.testing import use_dev_headers
from sqlalchemy import create_engine, text

GP = {"X-Organisation": "B81001", "X-Roles": "provider"}
REFERRAL = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
}


@pytest.fixture(autouse=True)
def _dev_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app is driven in-process with the development identity (tokens: tests/security)."""
    use_dev_headers(monkeypatch)


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    bin_dir = ensure_postgres_installed()
    # Under /tmp, not pytest's root-private dirs: as root the server runs as `postgres`.
    data_dir = Path(tempfile.mkdtemp(prefix="rx-pytest-postgres-outage-"))
    [port] = free_ports(1)
    pg = PostgresServer(data_dir, port=port, bin_dir=bin_dir)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def post(client: TestClient, key: str) -> tuple[int, dict]:
    response = client.post("/referrals", json=REFERRAL, headers={**GP, "Idempotency-Key": key})
    return response.status_code, response


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("referral", "referral_transition", "outbox", "idempotency_key")
            }
    finally:
        engine.dispose()


def test_an_unavailable_database_is_503_and_a_retry_after_recovery_stores_once(
    server: PostgresServer,
) -> None:
    url = server.create_database("referrals_outage")
    with TestClient(create_app(Settings(database_url=url))) as client:
        status, _ = post(client, str(uuid.uuid4()))
        assert status == 201

        server.stop()  # clean shutdown: the test server trades crash durability for speed
        key = str(uuid.uuid4())
        status, response = post(client, key)
        assert status == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert "nothing of this request was stored" in response.json()["detail"]
        read = client.get("/referrals", headers=GP)
        assert read.status_code == 503
        assert client.get("/ready").status_code == 503

        server.start()
        status, first = post(client, key)  # the caller's retry, same key
        assert status == 201, first.text
        status, again = post(client, key)  # and a duplicate of it: replayed, not stored
        assert status == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]

    assert counts(url) == {
        "referral": 2,
        "referral_transition": 2,
        "outbox": 2,
        "idempotency_key": 2,
    }
