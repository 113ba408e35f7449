"""The routing API as administrators, ops and providers use it: who may do what, and
problem+json naming the field and the rule for every bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from routing.entrypoints.api.app import create_app

ADMIN = {"X-Organisation": "RX0AD", "X-Roles": "admin"}
OPS = {"X-Organisation": "RX0PS", "X-Roles": "ops"}
PROVIDER = {"X-Organisation": "RXA01", "X-Roles": "provider"}

NEW_TEAM = {
    "ods_code": "RXA03",
    "name": "East Night Team",
    "provider_type": "rapid-response",
    "localities": ["east"],
    "opening_hours": {"mon": ["20:00-24:00"], "tue": ["00:00-08:00", "20:00-24:00"]},
    "daily_capacity": 12,
}
UCR_RULES = {
    "description": "night team first at night",
    "rules": [
        {
            "id": "ucr-night",
            "service_types": ["urgent-community-response"],
            "hours": {"from": "20:00", "to": "08:00"},
            "candidates": ["RXA02", "RXA01"],
        },
        {"id": "ucr", "service_types": ["urgent-community-response"], "candidates": ["RXA01"]},
    ],
}


@pytest.fixture
def client(container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as client:
        yield client


def fields(response) -> set[tuple[str, str]]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


def test_the_directory_is_read_by_any_authenticated_caller(client) -> None:
    assert client.get("/organisations").status_code == 401
    orgs = client.get("/organisations", headers=PROVIDER).json()
    by_code = {o["ods_code"]: o for o in orgs}
    assert {o["provider_type"] for o in orgs} == {
        "primary-care",
        "rapid-response",
        "social-care",
        "acute",
    }
    assert by_code["SCC01"]["opening_hours"]["mon"] == ["09:00-17:00"]
    assert by_code["RXA01"]["daily_capacity"] == 40
    assert [
        o["ods_code"]
        for o in client.get(
            "/organisations",
            params={"provider_type": "rapid-response", "locality": "north"},
            headers=PROVIDER,
        ).json()
    ] == ["RXA02"]
    localities = client.get("/localities", headers=PROVIDER).json()
    assert all(30_000 <= loc["population"] <= 50_000 for loc in localities)
    assert {
        "code": "east",
        "name": "East",
        "population": 38_900,
        "districts": ["BS15", "BS16", "BS5"],
    } in localities


def test_only_administrators_change_the_directory(client) -> None:
    assert client.post("/organisations", json=NEW_TEAM, headers=OPS).status_code == 403
    assert client.post("/organisations", json=NEW_TEAM, headers=PROVIDER).status_code == 403
    created = client.post("/organisations", json=NEW_TEAM, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["opening_hours"] == NEW_TEAM["opening_hours"]
    assert client.post("/organisations", json=NEW_TEAM, headers=ADMIN).status_code == 409
    closed = client.put(
        "/organisations/RXA03",
        json={**NEW_TEAM, "active": False} | {"ods_code": None},
        headers=ADMIN,
    )
    assert closed.status_code == 422 and ("ods_code", "extra_forbidden") in fields(closed)
    body = {k: v for k, v in NEW_TEAM.items() if k != "ods_code"}
    assert (
        client.put("/organisations/RXA03", json={**body, "active": False}, headers=ADMIN).json()[
            "active"
        ]
        is False
    )
    assert client.put("/organisations/NOPE9", json=body, headers=ADMIN).status_code == 404


def test_a_bad_organisation_is_refused_naming_every_field_and_rule(client) -> None:
    bad = {
        **NEW_TEAM,
        "ods_code": "rx-3",
        "localities": ["east", "atlantis"],
        "opening_hours": {
            "mon": ["20:00-08:00"],
            "funday": ["09:00-10:00"],
            "tue": ["08:00-12:00", "11:00-13:00"],
        },
        "daily_capacity": -1,
        "colour": "blue",
    }
    response = client.post("/organisations", json=bad, headers=ADMIN)
    assert response.status_code == 422
    assert {
        ("ods_code", "string_pattern_mismatch"),
        ("daily_capacity", "greater_than_equal"),
        ("colour", "extra_forbidden"),
    } <= fields(response)
    semantic = client.post(
        "/organisations",
        json={k: v for k, v in bad.items() if k != "colour"}
        | {"ods_code": "RXA03", "daily_capacity": 5},
        headers=ADMIN,
    )
    assert semantic.status_code == 422
    assert fields(semantic) == {
        ("localities.1", "unknown_locality"),
        ("opening_hours.mon.0", "opening_hours_shape"),
        ("opening_hours.funday", "weekday"),
        ("opening_hours.tue", "overlapping_hours"),
    }
    assert client.get("/organisations/RXA03", headers=ADMIN).status_code == 404, (
        "nothing half-written"
    )


def test_a_locality_cannot_take_another_localitys_district(client) -> None:
    response = client.put(
        "/localities/harbour",
        json={"name": "Harbour", "population": 31000, "districts": ["BS5", "bs99", "BS20"]},
        headers=ADMIN,
    )
    assert fields(response) == {
        ("districts.0", "district_taken"),
        ("districts.1", "postcode_district"),
    }
    ok = client.put(
        "/localities/harbour",
        json={"name": "Harbour", "population": 31000, "districts": ["BS20"]},
        headers=ADMIN,
    )
    assert ok.status_code == 200 and ok.json()["districts"] == ["BS20"]


def test_rule_sets_are_versioned_per_locality_and_activated_explicitly(client) -> None:
    assert client.get("/rule-sets", headers=PROVIDER).status_code == 403
    [live] = client.get("/rule-sets", params={"locality": "east"}, headers=OPS).json()
    assert (live["version"], live["active"]) == (1, True)
    created = client.post("/rule-sets/east", json=UCR_RULES, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert (created.json()["version"], created.json()["active"], created.json()["created_by"]) == (
        2,
        False,
        "RX0AD",
    )
    assert created.json()["rules"][0]["hours"] == {"from": "20:00", "to": "08:00"}
    assert client.post("/rule-sets/east/2/activate", headers=OPS).status_code == 403
    activated = client.post("/rule-sets/east/2/activate", headers=ADMIN)
    assert activated.json()["active"] is True
    versions = client.get("/rule-sets", params={"locality": "east"}, headers=OPS).json()
    assert [(v["version"], v["active"]) for v in versions] == [(1, False), (2, True)]
    missing = client.post("/rule-sets/east/7/activate", headers=ADMIN)
    assert missing.status_code == 404 and "no rule set version 7" in missing.json()["detail"]
    assert client.post("/rule-sets/atlantis", json=UCR_RULES, headers=ADMIN).status_code == 404


def test_a_bad_rule_set_is_refused_naming_every_field_and_rule(client) -> None:
    typed = client.post(
        "/rule-sets/east",
        json={
            "rules": [
                {
                    "id": "x",
                    "service_types": ["dentistry"],
                    "cohorts": ["teenager"],
                    "hours": {"from": "8am", "to": "20:00", "days": ["someday"]},
                    "candidates": ["RXA01"],
                    "weight": 3,
                }
            ]
        },
        headers=ADMIN,
    )
    assert {
        ("rules.0.service_types.0", "enum"),
        ("rules.0.cohorts.0", "literal_error"),
        ("rules.0.hours.days.0", "literal_error"),
        ("rules.0.weight", "extra_forbidden"),
    } <= fields(typed)
    semantic = client.post(
        "/rule-sets/east",
        json={
            "rules": [
                {
                    "id": "a",
                    "hours": {"from": "8am", "to": "20:00"},
                    "candidates": ["NOPE1", "SCC02"],
                },
                {"id": "a", "candidates": ["RXA01", "RXA01"]},
            ]
        },
        headers=ADMIN,
    )
    assert fields(semantic) == {
        ("rules.0.hours.from", "time_of_day"),
        ("rules.0.candidates.0", "unknown_organisation"),
        ("rules.0.candidates.1", "candidate_serves_locality"),
        ("rules.1.id", "duplicate_rule_id"),
        ("rules.1.candidates", "duplicate_candidate"),
    }
    assert [
        v["version"]
        for v in client.get("/rule-sets", params={"locality": "east"}, headers=OPS).json()
    ] == [1]


def test_sla_policies_are_set_by_administrators_and_checked(client) -> None:
    policy = {"accept_within_seconds": 600, "respond_within_seconds": 3600, "auto_reroute": True}
    assert (
        client.put(
            "/sla-policies/urgent-community-response/stat", json=policy, headers=OPS
        ).status_code
        == 403
    )
    stored = client.put("/sla-policies/urgent-community-response/stat", json=policy, headers=ADMIN)
    assert stored.status_code == 200 and stored.json()["version"] == 1
    again = client.put("/sla-policies/urgent-community-response/stat", json=policy, headers=ADMIN)
    assert again.json()["version"] == 2
    listed = client.get("/sla-policies", headers=OPS).json()
    assert {"urgent-community-response/*", "urgent-community-response/stat"} <= {
        f"{p['service_type']}/{p['priority']}" for p in listed
    }
    bad = client.put(
        "/sla-policies/urgent-community-response/*",
        json={"accept_within_seconds": 0, "warn_at_fraction": 1.5},
        headers=ADMIN,
    )
    assert fields(bad) == {("accept_within_seconds", "positive"), ("warn_at_fraction", "fraction")}
    no_limit = client.put(
        "/sla-policies/gp-review/routine", json={"auto_reroute": True}, headers=ADMIN
    )
    assert fields(no_limit) == {
        ("accept_within_seconds", "limit_required"),
        ("auto_reroute", "needs_acceptance_limit"),
    }
    assert fields(client.put("/sla-policies/gp-review/soon", json=policy, headers=ADMIN)) == {
        ("priority", "enum")
    }
    assert client.put("/sla-policies/dentistry/*", json=policy, headers=ADMIN).status_code == 422


def test_decisions_are_for_ops_and_admin(client, deliver) -> None:
    from .support import submitted

    deliver(submitted("r-9"))
    assert client.get("/decisions", headers=PROVIDER).status_code == 403
    [decision] = client.get("/decisions", params={"referral_id": "r-9"}, headers=OPS).json()
    assert (decision["assigned_org"], decision["rule_id"], decision["rule_version"]) == (
        "RXA01",
        "east/ucr",
        1,
    )
