"""Governed administrative changes: every change an administrator makes to the directory,
the rules or the SLA policies stages a RoutingConfigChanged on routing.admin.v1 with the change
itself — who, what, before and after — and a refused or empty change stages nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from routing.entrypoints.api.app import create_app
from routing.entrypoints.seed import seed_demo
from rx_contracts import RoutingConfigChanged
from rx_contracts.topics import ROUTING_ADMIN

from .support import outbox

ADMIN = {"X-Organisation": "RX0AD", "X-Roles": "admin", "X-Practitioner": "C7654321"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}


@pytest.fixture
def client(container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as client:
        yield client


def changes(container) -> list[RoutingConfigChanged]:
    """The admin changes staged so far, oldest first (each with its Kafka key checked)."""
    found = []
    for _topic, envelope in outbox(container.engine, ROUTING_ADMIN):
        payload = envelope.payload()
        assert isinstance(payload, RoutingConfigChanged)
        assert envelope.subject == f"{payload.subject}:{payload.subject_id}"
        found.append(payload)
    return found


def summary(change: RoutingConfigChanged) -> tuple[str, str, str, str, str | None]:
    return (
        change.subject.value,
        change.subject_id,
        change.action.value,
        change.actor.organisation,
        change.actor.practitioner,
    )


def test_the_demo_seed_is_recorded_as_the_platforms_and_reseeding_records_nothing(
    container,
) -> None:
    seeded = changes(container)
    assert {c.subject.value for c in seeded} == {
        "locality",
        "organisation",
        "rule-set",
        "sla-policy",
    }
    assert {c.actor.organisation for c in seeded} == {"RX"}
    assert seed_demo(container.engine) == 0
    assert len(changes(container)) == len(seeded)


def test_a_policy_change_carries_who_and_the_settings_before_and_after(client, container) -> None:
    seeded = len(changes(container))
    first = {"accept_within_seconds": 600, "respond_within_seconds": 3600}
    assert client.put("/sla-policies/gp-review/stat", json=first, headers=ADMIN).status_code == 200
    second = {**first, "accept_within_seconds": 300, "auto_reroute": True}
    assert client.put("/sla-policies/gp-review/stat", json=second, headers=ADMIN).status_code == 200
    assert client.put("/sla-policies/gp-review/stat", json=second, headers=ADMIN).status_code == 200

    created, replaced = changes(container)[seeded:]  # the third PUT changed nothing
    assert summary(created) == ("sla-policy", "gp-review/stat", "created", "RX0AD", "C7654321")
    assert created.before is None
    assert created.after["accept_within_seconds"] == 600
    assert summary(replaced)[:3] == ("sla-policy", "gp-review/stat", "replaced")
    assert replaced.before == created.after
    assert (replaced.after["accept_within_seconds"], replaced.after["auto_reroute"]) == (300, True)


def test_a_directory_entry_change_carries_its_fields_before_and_after(client, container) -> None:
    seeded = len(changes(container))
    before = client.get("/organisations/RXA01", headers=OPS).json()
    body = {k: before[k] for k in ("name", "provider_type", "localities", "opening_hours")}
    body |= {"daily_capacity": 5, "active": False}
    assert client.put("/organisations/RXA01", json=body, headers=ADMIN).status_code == 200
    locality = {"name": "Harbour", "population": 31_000, "districts": ["BS20"]}
    assert client.put("/localities/harbour", json=locality, headers=ADMIN).status_code == 200

    organisation, new_locality = changes(container)[seeded:]
    assert summary(organisation) == ("organisation", "RXA01", "replaced", "RX0AD", "C7654321")
    assert organisation.before is not None
    assert (organisation.before["daily_capacity"], organisation.before["active"]) == (
        before["daily_capacity"],
        True,
    )
    assert (organisation.after["daily_capacity"], organisation.after["active"]) == (5, False)
    assert organisation.after["localities"] == before["localities"]
    assert summary(new_locality)[:3] == ("locality", "harbour", "created")
    assert new_locality.after == locality


def test_rules_are_recorded_when_uploaded_and_when_they_go_live(client, container) -> None:
    seeded = len(changes(container))
    rules: dict[str, Any] = {
        "description": "night team first",
        "rules": [
            {"id": "ucr", "service_types": ["urgent-community-response"], "candidates": ["RXA02"]}
        ],
    }
    assert client.post("/rule-sets/east", json=rules, headers=ADMIN).status_code == 201
    assert client.post("/rule-sets/east/2/activate", headers=ADMIN).status_code == 200

    uploaded, activated = changes(container)[seeded:]
    assert summary(uploaded) == ("rule-set", "east", "created", "RX0AD", "C7654321")
    assert uploaded.after["version"] == 2
    assert uploaded.after["rules"][0]["candidates"] == ["RXA02"]
    assert summary(activated) == ("rule-set", "east", "activated", "RX0AD", "C7654321")
    assert (activated.before, activated.after) == ({"active_version": 1}, {"active_version": 2})


def test_a_refused_change_is_not_recorded(client, container) -> None:
    seeded = len(changes(container))
    refused = client.put(
        "/sla-policies/gp-review/*", json={"accept_within_seconds": 0}, headers=ADMIN
    )
    assert refused.status_code == 422
    assert client.put("/organisations/RXA01", json={"name": "x"}, headers=OPS).status_code == 403
    taken = {"name": "Elsewhere", "population": 1000, "districts": ["BS5"]}  # east's district
    assert client.put("/localities/elsewhere", json=taken, headers=ADMIN).status_code == 422
    assert len(changes(container)) == seeded
