"""The referrals API over a real SQLite database: what a provider system sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from referrals.config import Settings
from referrals.entrypoints.api.app import create_app
from rx_contracts import decode
from rx_messaging.tables import OutboxMessage
from sqlmodel import Session, create_engine, select

BODY = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {"nhs_number": "943 476 5919", "name": "Alex Smith", "postcode": "bs5 0aa"},
    "service_type": "urgent-community-response",
    "priority": "urgent",
    "cohort": {"frailty": True},
    "reason": {"code": "129839007", "text": "Fall at home"},
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'referrals.db'}"


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url))) as c:
        yield c


def outbox(db_url: str) -> list[OutboxMessage]:
    with Session(create_engine(db_url)) as s:
        return list(s.exec(select(OutboxMessage)))


def test_a_submitted_referral_is_stored_with_its_event_in_the_outbox(
    client: TestClient, db_url: str
) -> None:
    response = client.post("/referrals", json=BODY)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "submitted"
    assert body["patient"]["postcode"] == "BS5 0AA"
    assert body["patient"]["nhs_number"] == "9434765919"
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"].endswith(f"/referrals/{body['id']}")

    [row] = outbox(db_url)
    assert row.topic == "referrals.events.v1"
    event = decode(row.key, row.value, [(n, v.encode()) for n, v in row.headers])
    assert event.subject == body["id"]
    payload = event.payload()
    assert payload.postcode_district == "BS5"
    assert payload.cohort.frailty is True
    assert "9434765919" not in row.value.decode() and "Alex" not in row.value.decode()

    assert client.get(f"/referrals/{body['id']}").json() == body
    assert [h["action"] for h in client.get(f"/referrals/{body['id']}/history").json()] == [
        "submit"
    ]


def problem(response) -> dict:
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (
            {"patient": {**BODY["patient"], "nhs_number": "9434765918"}},
            "patient.nhs_number",
            "nhs_number_check_digit",
        ),
        (
            {"patient": {**BODY["patient"], "postcode": "nowhere"}},
            "patient.postcode",
            "postcode_format",
        ),
        ({"referrer": {"organisation": "B8-1"}}, "referrer.organisation", "ods_code"),
        ({"priority": "whenever"}, "priority", "enum"),
        ({"surprise": 1}, "surprise", "extra_forbidden"),
        ({"reason": {"code": "abc"}}, "reason.code", "string_pattern_mismatch"),
    ],
)
def test_bad_input_gets_a_problem_naming_field_and_rule_and_nothing_is_stored(
    client: TestClient, db_url: str, change: dict, field: str, rule: str
) -> None:
    response = client.post("/referrals", json={**BODY, **change})
    assert response.status_code == 422
    body = problem(response)
    assert {"field": field, "rule": rule} in [
        {k: e[k] for k in ("field", "rule")} for e in body["errors"]
    ]
    assert field in body["detail"]
    assert outbox(db_url) == []
    assert client.get("/referrals").json() == []


def test_malformed_json_is_a_problem_too(client: TestClient) -> None:
    response = client.post(
        "/referrals", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert problem(response)["title"] == "Invalid request"


def test_unknown_referral_is_404_problem(client: TestClient) -> None:
    response = client.get("/referrals/no-such-id")
    assert response.status_code == 404
    assert problem(response)["title"] == "Referral not found"


def test_openapi_describes_the_create_operation_with_an_example(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schema = doc["components"]["schemas"]["ReferralCreate"]
    assert json.dumps(schema["examples"][0]).count("urgent-community-response") == 1
    assert "post" in doc["paths"]["/referrals"]
