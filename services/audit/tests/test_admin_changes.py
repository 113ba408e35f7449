"""Administrators' changes to routing (RoutingConfigChanged on routing.admin.v1) on the chain:
found by type, by the administrator's organisation and by the organisation whose directory
entry changed, with who, before and after as published; the chain still verifies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from audit.config import Settings
from audit.entrypoints.api.app import create_app
from fastapi.testclient import TestClient
from rx_contracts import Actor, AdminAction, AdminSubject, Envelope, RoutingConfigChanged, wrap
from sqlalchemy.engine import Engine

from .conftest import OPS, T0, record_all, submitted

ADMIN = Actor(organisation="RXADM", practitioner="C7654321")
CHANGED = RoutingConfigChanged.EVENT_TYPE


def change(
    subject: AdminSubject,
    subject_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    minutes: int,
) -> Envelope:
    payload = RoutingConfigChanged(
        change_id=f"c-{minutes}",
        actor=ADMIN,
        subject=subject,
        subject_id=subject_id,
        action=AdminAction.CREATED if before is None else AdminAction.REPLACED,
        before=before,
        after=after,
        changed_at=T0 + timedelta(minutes=minutes),
    )
    return wrap(payload, source="/services/routing", time=payload.changed_at)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        engine: Engine = client.app.state.container.engine  # type: ignore[attr-defined]
        record_all(
            engine,
            [
                change(AdminSubject.ORGANISATION, "RXA01", {"active": True}, {"active": False}, 1),
                change(
                    AdminSubject.SLA_POLICY,
                    "urgent-community-response/*",
                    {"accept_within_seconds": 1800},
                    {"accept_within_seconds": 900},
                    2,
                ),
            ],
            "routing.admin.v1",
        )
        record_all(engine, [submitted(3)])
        yield client


def entries(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/audit/entries", params=params, headers=OPS)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_the_changes_are_on_the_chain_with_who_before_and_after(client: TestClient) -> None:
    directory, policy = entries(client, type=CHANGED)
    assert {e["topic"] for e in (directory, policy)} == {"routing.admin.v1"}
    assert (directory["referral_id"], directory["actor_org"]) == (None, "RXADM")
    assert directory["payload"]["actor"] == {"organisation": "RXADM", "practitioner": "C7654321"}
    assert (directory["payload"]["before"], directory["payload"]["after"]) == (
        {"active": True},
        {"active": False},
    )
    assert policy["payload"]["subject_id"] == "urgent-community-response/*"
    assert policy["payload"]["after"] == {"accept_within_seconds": 900}
    assert client.get("/audit/verify", headers=OPS).json()["entries"] == 3


def test_an_organisation_finds_the_changes_to_its_directory_entry(client: TestClient) -> None:
    assert [e["payload"]["subject_id"] for e in entries(client, organisation="RXA01")] == ["RXA01"]
    assert [e["type"] for e in entries(client, organisation="RXADM")] == [CHANGED, CHANGED]
